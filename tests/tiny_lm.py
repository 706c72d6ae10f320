"""A tiny random Llama (2 layers x 32 wide) saved with a given `tokenizers` tokenizer.

Shared by the generate, LLM-teacher and rationale tests: each builds the tokenizer its texts
need (word-level over a toy vocabulary, or character-level), and the model is built here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]  # ids 0-3: pad, bos, eos, unk


def word_level(words: list[str]) -> Any:
    """A whitespace word-level tokenizer over SPECIALS + `words` (repeats dropped)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(dict.fromkeys(SPECIALS + words))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def save_tiny_llama(
    out: Path,
    tokenizer: Any,
    seed: int = 0,
    attention_dropout: float = 0.0,
    max_positions: int = 512,
    chat_template: str | None = None,
) -> Path:
    """Save `tokenizer` (SPECIALS first) and a random Llama over its vocabulary into `out`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    if chat_template is not None:
        fast.chat_template = chat_template
    fast.save_pretrained(out)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        attention_dropout=attention_dropout,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(cfg).save_pretrained(out, safe_serialization=True)
    return out
