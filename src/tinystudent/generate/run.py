"""The generate stage: grow the transfer set beyond the pool, within a budget, resumably.

A tiny student is limited by how much teacher-labelled text it sees, not by its capacity
(docs/architecture.md: ~2.5 points per doubling), so this stage adds texts for the teacher to label:
LM samples (`generated`) and cheap edits of real texts (`augmented`), each through the
filters, with the held-out test split guarded against. The gold texts stay with the caller.

Order matters for resuming: pool first, then generated (their shards depend only on the
generation settings), then augmented (recomputed every call: it is fast and deterministic).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from tqdm.auto import tqdm

from tinystudent.data.split import Split
from tinystudent.generate.augment import augment_texts, build_augmenters
from tinystudent.generate.filters import LeakGuard, TransferFilter
from tinystudent.generate.generator import Generator, make_generator
from tinystudent.generate.shards import ShardStore
from tinystudent.generate.strategies import FinetuneSampler, PromptSampler
from tinystudent.io import recipe_key, write_json, write_text

log = logging.getLogger(__name__)

Source = Literal["pool", "generated", "augmented"]
#: Settings that do not change what a given shard holds: budget, augmentation, labeling.
_NOT_IN_SHARD_KEY = {
    "enabled",
    "num_examples",
    "time_limit_s",
    "augment",
    "augment_per_text",
    "augment_prob",
    "min_confidence",
    "max_batches_factor",
    "threads",
}


class GenerationConfig(BaseModel):
    """The recipe's `generate` section. Off by default: the pipeline then uses the pool only."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    strategy: Literal["finetune", "prompt", "none"] = Field(
        "finetune", description="finetune-then-sample (the paper), label prompts, or none"
    )
    backend: Literal["transformers", "openai", "llama_cpp"] = "transformers"
    model: str = Field("smollm2-135m", description="packaged SmolLM2, a folder, a hub id")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint (backend openai)")
    api_key_env: str = Field("OPENAI_API_KEY", description="env variable holding the API key")

    num_examples: int = Field(1000, ge=0, description="generated texts to keep (after filters)")
    time_limit_s: float | None = Field(None, gt=0, description="stop cleanly after this long")
    batch_size: int = Field(8, ge=1, le=1024, description="texts per generation call / shard")
    threads: int | None = Field(
        None, ge=1, description="torch threads while generating (None: leave as is)"
    )
    max_batches_factor: float = Field(
        10.0, ge=1, description="give up after this many times the batches the budget needs"
    )
    max_new_tokens: int = Field(64, ge=1, le=4096)
    temperature: float = Field(1.0, ge=0, description="0 = greedy")
    top_p: float = Field(0.95, gt=0, le=1)

    finetune_steps: int = Field(30, ge=0, description="optimizer steps before sampling")
    finetune_lr: float = Field(3e-4, gt=0, description="30 steps at 3e-4 move SmolLM2 to RT")
    finetune_batch_size: int = Field(8, ge=1)
    finetune_max_length: int = Field(64, ge=8, description="tokens per training document")
    prefix: str | None = Field(
        None, description="what samples start from; default: the assistant-turn opening or BOS"
    )

    shots: int = Field(4, ge=1, description="examples of the class shown in each prompt")
    domain: str = Field("texts", description='prompt wording, e.g. "movie review snippets"')
    item: str = Field("text", description='one item, e.g. "review snippet"')

    augment: list[Literal["mask", "ngram", "swap"]] = Field(
        default_factory=list, description="augmenters applied in turn to gold + pool texts"
    )
    augment_per_text: int = Field(1, ge=0, description="augmented variants per source text")
    augment_prob: float = Field(0.15, gt=0, le=1, description="per-word mask/swap probability")

    leak_guard: bool = Field(True, description="drop texts too close to any test text")
    leak_threshold: float = Field(0.5, gt=0, le=1, description="word 3-shingle Jaccard")
    near_dup_threshold: float = Field(0.8, gt=0, le=1, description="word 3-shingle Jaccard")
    min_words: int = Field(3, ge=0)
    max_words: int = Field(256, ge=1)
    min_confidence: float | None = Field(
        None, ge=0, le=1, description="after labeling: keep texts whose teacher max prob >= this"
    )
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> GenerationConfig:
        if self.max_words < self.min_words:
            raise ValueError(f"max_words ({self.max_words}) < min_words ({self.min_words})")
        return self


def split_fingerprint(split: Split) -> str:
    """Changes whenever the texts a generation run learns from or guards against change."""
    h = hashlib.sha256()
    for part in (split.label_names, split.train_texts, split.train_labels, split.pool):
        h.update(json.dumps(part, ensure_ascii=False).encode("utf-8"))
    h.update(json.dumps(split.test_texts, ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()[:16]


def shard_key(split: Split, cfg: GenerationConfig, generator_name: str) -> str:
    """Everything that decides what shard N holds; anything else may change between runs."""
    settings = cfg.model_dump(mode="json", exclude=_NOT_IN_SHARD_KEY)
    payload = {"settings": settings, "split": split_fingerprint(split), "gen": generator_name}
    return recipe_key(payload)


def batch_seed(seed: int, index: int) -> int:
    """Seed of batch `index`: distinct per batch, the same on every rerun (resume = replay)."""
    return seed * 1_000_003 + index * 4096  # a backend adds < batch_size <= 1024 per row


def _make_strategy(
    cfg: GenerationConfig, generator: Generator, split: Split
) -> FinetuneSampler | PromptSampler:
    if cfg.strategy == "finetune":
        return FinetuneSampler(
            generator, cfg.max_new_tokens, cfg.temperature, cfg.top_p, prefix=cfg.prefix
        )
    return PromptSampler(
        generator,
        split.label_names,
        split.train_texts,
        split.train_labels,
        shots=cfg.shots,
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        domain=cfg.domain,
        item=cfg.item,
    )


def _max_batches(cfg: GenerationConfig) -> int:
    """Batch count after which a run gives up (filters rejecting nearly everything)."""
    return math.ceil(cfg.max_batches_factor * math.ceil(cfg.num_examples / cfg.batch_size))


def _generated_name(cfg: GenerationConfig, generator: Generator | None) -> str:
    if generator is not None:
        return generator.name
    return f"{cfg.backend}:{cfg.model}:{cfg.base_url or ''}"


def generate_texts(
    split: Split,
    cfg: GenerationConfig,
    out_dir: Path,
    filt: TransferFilter,
    corpus: list[str],
    generator: Generator | None = None,
    deadline: float | None = None,
    device: str = "cpu",
) -> tuple[list[str], dict[str, Any]]:
    """Kept generated texts (from earlier shards first, then new batches) and a run summary;
    a generator built here runs on `device`."""
    store = ShardStore(out_dir)
    key = shard_key(split, cfg, _generated_name(cfg, generator))
    store.sync_manifest(key, {"config": cfg.model_dump(mode="json")})
    kept: list[str] = []
    for old in store.read():  # re-filtered: the index must know them, and it is cheap
        if filt.accept(old["text"]):
            kept.append(old["text"])
    resumed = len(kept)
    info: dict[str, Any] = {"resumed": resumed, "candidates": 0, "seconds": 0.0}
    index = store.next_index()
    if len(kept) >= cfg.num_examples or index >= _max_batches(cfg):
        info["stopped"] = "done" if len(kept) >= cfg.num_examples else "max_batches"
        return kept[: cfg.num_examples], info

    from tinystudent.evaluate.speed import torch_threads

    with torch_threads(cfg.threads):
        return _generate_more(
            split, cfg, store, filt, corpus, kept, index, generator, deadline, info, device
        )


def _generate_more(
    split: Split,
    cfg: GenerationConfig,
    store: ShardStore,
    filt: TransferFilter,
    corpus: list[str],
    kept: list[str],
    index: int,
    generator: Generator | None,
    deadline: float | None,
    info: dict[str, Any],
    device: str = "cpu",
) -> tuple[list[str], dict[str, Any]]:
    """Fine-tune if asked, then sample batch after batch until the budget is met."""
    resumed = len(kept)
    max_batches = _max_batches(cfg)
    start = time.perf_counter()
    gen = generator or make_generator(
        cfg.backend, cfg.model, cfg.base_url, cfg.api_key_env, cfg.batch_size, device
    )
    strategy = _make_strategy(cfg, gen, split)
    filt.set_echo(strategy.echo_texts)
    if isinstance(strategy, FinetuneSampler) and cfg.finetune_steps > 0:
        t0 = time.perf_counter()
        losses = strategy.fine_tune(
            corpus,
            cfg.finetune_steps,
            cfg.finetune_lr,
            cfg.finetune_batch_size,
            cfg.finetune_max_length,
            cfg.seed,
            deadline,
        )
        info["finetune"] = {"losses": losses, "seconds": time.perf_counter() - t0}
    stopped = "max_batches"
    t_sample = time.perf_counter()
    bar = tqdm(
        total=cfg.num_examples, initial=len(kept), unit="text", desc=f"generating ({strategy.name})"
    )
    try:
        while index < max_batches:
            if len(kept) >= cfg.num_examples:
                stopped = "done"
                break
            if deadline is not None and time.perf_counter() > deadline:
                stopped = "time_limit"
                log.info("generation stopped by the time limit with %d texts kept", len(kept))
                break
            cands = strategy.propose(cfg.batch_size, batch_seed(cfg.seed, index))
            intended = getattr(strategy, "last_labels", None) or [None] * len(cands)
            records = []
            for text, y in zip(cands, intended):
                if filt.accept(text):
                    rec: dict[str, Any] = {"text": text, "batch": index}
                    if y is not None:
                        rec["intended"] = split.label_names[y]
                    records.append(rec)
            store.write(index, records)
            index += 1
            info["candidates"] += len(cands)
            kept.extend(r["text"] for r in records)
            bar.update(len(records))
            bar.set_postfix(dropped=sum(filt.dropped.values()))
    finally:
        bar.close()
    sampling = time.perf_counter() - t_sample
    info.update(
        stopped=stopped,
        seconds=time.perf_counter() - start,
        sampling_seconds=sampling,
        candidates_per_s=info["candidates"] / sampling if sampling > 0 else 0.0,
        kept_per_s=(len(kept) - resumed) / sampling if sampling > 0 else 0.0,
    )
    return kept[: cfg.num_examples], info


def build_transfer_set(
    split: Split,
    cfg: GenerationConfig,
    out_dir: str | Path,
    generator: Generator | None = None,
    device: str = "cpu",
) -> list[tuple[str, str]]:
    """(text, source) pairs for the teacher to label, source in pool / generated / augmented.

    The gold texts are not included (the caller adds them with their labels) but are used to
    fine-tune, prompt and deduplicate against. With `cfg.enabled` False only the pool comes
    back (still leak-guarded). A generator built here (not `generator`) runs on `device`
    (the recipe's `device`: cpu, cuda, auto). Writes `out_dir/shard-*.jsonl` (generated
    texts, resumable), `out_dir/augmented.jsonl` and `out_dir/summary.json` (counts, drop
    reasons, speed).
    """
    start = time.perf_counter()
    deadline = start + cfg.time_limit_s if cfg.time_limit_s else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gold = list(dict.fromkeys(split.train_texts))
    gold_set = set(gold)
    leak = LeakGuard(split.test_texts, cfg.leak_threshold) if cfg.leak_guard else None

    # The pool is real in-domain text: only test leaks (datasets repeat snippets) are removed.
    pool: list[str] = []
    pool_leaks = 0
    for t in dict.fromkeys(split.pool):
        if t in gold_set:
            continue
        if leak is not None and leak.is_leak(t):
            pool_leaks += 1
            continue
        pool.append(t)
    summary: dict[str, Any] = {"pool": {"kept": len(pool), "test_leaks": pool_leaks}}
    generated: list[str] = []
    augmented: list[str] = []
    wants_gen = cfg.enabled and cfg.strategy != "none" and cfg.num_examples > 0
    wants_aug = cfg.enabled and bool(cfg.augment) and cfg.augment_per_text > 0
    if wants_gen or wants_aug:
        filt = TransferFilter(
            leak=leak,
            known=gold + pool,
            near_dup_threshold=cfg.near_dup_threshold,
            min_words=cfg.min_words,
            max_words=cfg.max_words,
            seed=cfg.seed,
        )
        if wants_gen:
            generated, info = generate_texts(
                split, cfg, out, filt, gold + pool, generator, deadline, device
            )
            info.update(kept=len(generated), dropped=dict(filt.dropped))
            summary["generated"] = info
        if wants_aug:
            filt.dropped.clear()
            t0 = time.perf_counter()
            sources = gold + pool
            augmenters = build_augmenters(cfg.augment, sources, p=cfg.augment_prob)
            cands = augment_texts(sources, augmenters, cfg.augment_per_text, cfg.seed)
            augmented = [c for c in cands if filt.accept(c, quality=False)]
            write_text(
                out / "augmented.jsonl",
                "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in augmented),
            )
            summary["augmented"] = {
                "kept": len(augmented),
                "candidates": len(cands),
                "dropped": dict(filt.dropped),
                "seconds": time.perf_counter() - t0,
            }
    summary["seconds"] = time.perf_counter() - start
    write_json(out / "summary.json", summary)
    return (
        [(t, "pool") for t in pool]
        + [(t, "generated") for t in generated]
        + [(t, "augmented") for t in augmented]
    )
