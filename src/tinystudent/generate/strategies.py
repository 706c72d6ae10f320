"""How new in-domain texts are asked for: two strategies behind one `propose(n, seed)` call.

- `FinetuneSampler`, the Generation-Distillation method (Melas-Kyriazi et al., 2020): first
  fine-tune the causal LM on the in-domain texts we have (k labeled + the unlabeled pool) as
  `BOS text EOS` documents, then sample unconditionally from the bare BOS prefix. The LM learns
  the domain's topics, length and style; the teacher decides the labels later, so no label is
  needed here. A few dozen full-parameter steps on CPU are enough to move a 135M model's
  register (LoRA would save memory, not time, at this size).
- `PromptSampler`, label-conditioned prompting: a chat instruction with a few examples of one
  class asks an instruction-tuned LM for one new example of that class. It needs no training
  and covers rare classes on purpose, but a 135M model follows instructions loosely, so its
  answers are cleaned (preambles, quotes, numbering) and the filters do the rest.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from tinystudent.generate.generator import ChatMessage, GenerationError, Generator, Prompt

log = logging.getLogger(__name__)


class Strategy(Protocol):
    """Candidate texts on demand; `echo_texts` are prompt parts a candidate must not repeat."""

    name: str
    echo_texts: list[str]

    def propose(self, n: int, seed: int) -> list[str]: ...


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------- fine-tune, sample


def document_prefix(tokenizer: Any) -> str:
    """The text every training document and every sample starts with.

    For a chat model, the opening of an assistant turn (SmolLM2: `<|im_start|>assistant\\n`):
    the pretrained model already begins well-formed text there, so a few fine-tuning steps only
    have to move the topic and style. A bare `<|im_start|>` would first have to unlearn that a
    role name follows, and samples start mid-sentence. Without a chat template: BOS, else EOS.
    """
    if getattr(tokenizer, "chat_template", None):
        try:
            turn = [{"role": "user", "content": "x"}]
            with_gen = str(
                tokenizer.apply_chat_template(turn, tokenize=False, add_generation_prompt=True)
            )
            without = str(tokenizer.apply_chat_template(turn, tokenize=False))
            if with_gen.startswith(without) and len(with_gen) > len(without):
                return with_gen[len(without) :]
        except Exception:  # a template that needs other roles or variables: fall back
            log.debug("chat template gave no assistant prefix; using BOS", exc_info=True)
    tok = tokenizer.bos_token or tokenizer.eos_token
    if not tok:
        raise GenerationError("the tokenizer has neither a BOS nor an EOS token")
    return str(tok)


def finetune_causal_lm(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    steps: int = 30,
    lr: float = 3e-4,
    batch_size: int = 8,
    max_length: int = 64,
    seed: int = 0,
    prefix: str | None = None,
    deadline: float | None = None,
) -> list[float]:
    """Causal-LM fine-tuning in place on `prefix + text + EOS` documents; returns step losses.

    Batches are drawn at random (with replacement across steps) so the number of steps, not
    the corpus size, sets the cost. Stops early, cleanly, at `deadline` (a perf_counter time).
    """
    import torch

    from tinystudent.devices import module_device
    from tinystudent.train.causal_lm import pad_right
    from tinystudent.train.engine import Fit, Hooks
    from tinystudent.train.strategy import Strategy

    if not texts:
        raise GenerationError("fine-tuning the generator needs at least one in-domain text")
    if steps <= 0:
        return []
    prefix = document_prefix(tokenizer) if prefix is None else prefix
    eos = tokenizer.eos_token or ""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rng = random.Random(seed)
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    # Minutes of work on a CPU before the first text appears: show it.
    fit = Fit(
        model,
        opt,
        params,
        steps,
        schedule="warmup_linear",
        deadline=deadline,
        desc="fine-tuning generator",
        leave=False,
        strategy=Strategy(module_device(model)),  # where the generator was loaded
    )
    losses: list[float] = []

    def batches(epoch: int) -> Iterator[list[str]]:
        for _ in range(steps):  # drawn lazily: a deadline stop draws no further
            yield [texts[rng.randrange(len(texts))] for _ in range(batch_size)]

    def prepare(batch: list[str]) -> tuple[Any, Any, Any]:
        ids = [
            tokenizer.encode(prefix + _one_line(t) + eos, add_special_tokens=False)[:max_length]
            for t in batch
        ]
        return pad_right(ids, None, pad)  # no loss on padding

    def step(batch: tuple[Any, Any, Any]) -> dict[str, Any]:
        input_ids, mask, labels = batch  # on the generator's device (the engine moved them)
        out = model(input_ids=input_ids, attention_mask=mask, labels=labels)
        losses.append(float(out.loss.detach()))
        return {"loss": out.loss}

    if fit.run(Hooks(batches, step, prepare=prepare)).stopped_by_time:
        log.info("generator fine-tuning stopped by the time limit after %d steps", len(losses))
    return losses


class FinetuneSampler:
    """Unconditional samples from a (fine-tuned) LM, each started from the document prefix.

    `fine_tune` is explicit (not done in `__init__`) so a run that already has all its samples
    never pays for it; `propose` works without it too (samples from the pretrained LM).
    """

    name = "finetune"

    def __init__(
        self,
        generator: Generator,
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        top_p: float = 0.95,
        prefix: str | None = None,
    ) -> None:
        self.generator = generator
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        tokenizer = getattr(generator, "tokenizer", None)
        self.prefix = (
            prefix if prefix is not None else (document_prefix(tokenizer) if tokenizer else "")
        )
        self.echo_texts: list[str] = []
        self.losses: list[float] = []

    def fine_tune(
        self,
        texts: Sequence[str],
        steps: int,
        lr: float = 3e-4,
        batch_size: int = 8,
        max_length: int = 64,
        seed: int = 0,
        deadline: float | None = None,
    ) -> list[float]:
        model = getattr(self.generator, "model", None)
        tokenizer = getattr(self.generator, "tokenizer", None)
        if model is None or tokenizer is None:
            raise GenerationError(
                f"the finetune strategy trains a local model; backend {self.generator.name!r} "
                "cannot be fine-tuned: use backend 'transformers' or strategy 'prompt'"
            )
        self.losses = finetune_causal_lm(
            model, tokenizer, texts, steps, lr, batch_size, max_length, seed, self.prefix, deadline
        )
        return self.losses

    def propose(self, n: int, seed: int) -> list[str]:
        outs = self.generator.generate(
            [self.prefix] * n, self.max_new_tokens, self.temperature, self.top_p, seed
        )
        return [_one_line(o) for o in outs]


# --------------------------------------------------------------------------- prompting

DEFAULT_INSTRUCTION = (
    'Here are examples of {domain} labeled "{label}":\n\n{examples}\n\n'
    'Write one new {item} that would also be labeled "{label}". Make it different from the '
    "examples but similar in style and length. Reply with the {item} only."
)
# Chatty openings a small instruct model puts before the answer ("Sure! Here is ...:").
_PREAMBLE = re.compile(
    r"^(sure|certainly|of course|okay|ok|here('s| is| are)|new (example|text|review)|example|"
    r"text|review|answer|output)\b[^:\n]{0,80}:\s*",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^\s*(\d+[.)]|[-*•])\s+")
_QUOTES = "\"'“”‘’«»`"


def clean_completion(text: str) -> str:
    """The answer inside a chatty completion: first substantive line, without preamble,
    numbering or surrounding quotes."""
    for line in text.splitlines():
        line = _BULLET.sub("", _PREAMBLE.sub("", line.strip())).strip()
        line = line.strip(_QUOTES).strip()
        if line and not line.endswith(":"):
            return _one_line(line)
    return ""


def _shorten(text: str, max_words: int) -> str:
    w = text.split()
    return " ".join(w) if len(w) <= max_words else " ".join(w[:max_words]) + " ..."


class PromptSampler:
    """Few-shot, label-conditioned chat prompts; classes are visited in turn for balance."""

    name = "prompt"

    def __init__(
        self,
        generator: Generator,
        label_names: Sequence[str],
        texts: Sequence[str],
        labels: Sequence[int],
        shots: int = 4,
        example_words: int = 60,
        max_new_tokens: int = 64,
        temperature: float = 0.9,
        top_p: float = 0.95,
        domain: str = "texts",
        item: str = "text",
        instruction: str = DEFAULT_INSTRUCTION,
    ) -> None:
        self.generator = generator
        self.label_names = list(label_names)
        self.by_class: dict[int, list[str]] = {}
        for t, y in zip(texts, labels):
            self.by_class.setdefault(int(y), []).append(t)
        if not self.by_class:
            raise GenerationError("the prompt strategy needs labeled examples to show the model")
        self.classes = sorted(self.by_class)
        self.shots = shots
        self.example_words = example_words
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.domain, self.item, self.instruction = domain, item, instruction
        # The fixed wording of the instruction: a candidate that repeats it is an echo.
        self.echo_texts = [
            instruction.format(domain=domain, item=item, label=name, examples="")
            for name in self.label_names
        ]
        self.last_labels: list[int] = []

    def messages(self, label: int, rng: random.Random) -> list[ChatMessage]:
        pool = self.by_class[label]
        shown = rng.sample(pool, min(self.shots, len(pool)))
        examples = "\n".join(f"- {_shorten(_one_line(t), self.example_words)}" for t in shown)
        content = self.instruction.format(
            domain=self.domain, item=self.item, label=self.label_names[label], examples=examples
        )
        return [{"role": "user", "content": content}]

    def propose(self, n: int, seed: int) -> list[str]:
        rng = random.Random(seed)
        first = seed % len(self.classes)
        labels = [self.classes[(first + i) % len(self.classes)] for i in range(n)]
        prompts: list[Prompt] = [self.messages(y, rng) for y in labels]
        outs = self.generator.generate(
            prompts, self.max_new_tokens, self.temperature, self.top_p, seed
        )
        self.last_labels = labels
        return [clean_completion(o) for o in outs]
