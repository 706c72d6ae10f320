"""The transfer set of an embedding student: unlabelled text from datasets and text files.

Labels are never used for training. A labelled dataset contributes every text outside its
fixed test split (the same split the classification pipeline uses for a given `test_size` and
`split_seed`) plus its unlabelled texts; the test split is kept aside as the held-out texts the
evaluation scores on, and any training text equal to a held-out text is dropped, whichever
source it came from.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tinystudent.data import TextDataset, load_dataset, make_split
from tinystudent.data.builtin import split_sentences
from tinystudent.embeddings.evaluate import EvalTask
from tinystudent.errors import DataError


class TextSource(BaseModel):
    """One source of training text: a dataset (built-in name or labelled file) or a text file."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(None, description="built-in name or a labelled csv/jsonl file")
    file: str | None = Field(None, description="plain text file, one text per line")
    text_column: str = "text"
    label_column: str = "label"
    test_size: float | int = Field(0.2, gt=0, description="held-out split: fraction or count")
    split_seed: int = Field(0, ge=0)
    evaluate: bool = Field(True, description="score the student on this dataset's test split")
    sentences: bool = Field(False, description="split long texts into sentences for training")
    max_texts: int | None = Field(None, ge=1, description="cap on texts taken from this source")

    @model_validator(mode="after")
    def _one_kind(self) -> TextSource:
        if (self.dataset is None) == (self.file is None):
            raise ValueError("give exactly one of `dataset` or `file`")
        if self.file is not None:
            only = {"text_column", "label_column", "test_size", "split_seed", "evaluate"}
            extra = sorted(only & self.model_fields_set)
            if extra:
                raise ValueError(f"{', '.join(extra)} only apply to a `dataset` source")
        return self

    @property
    def label(self) -> str:
        return str(self.dataset or self.file)


class EmbedDataSpec(BaseModel):
    """All sources, the overall cap and the sampling seed."""

    model_config = ConfigDict(extra="forbid")

    sources: list[TextSource] = Field(
        default_factory=lambda: [TextSource(dataset="rotten_tomatoes", test_size=2000)],
        min_length=1,
    )
    max_texts: int | None = Field(20_000, ge=1, description="cap on training texts overall")
    min_chars: int = Field(1, ge=1, description="drop shorter training texts")
    seed: int = Field(0, ge=0, description="seed of the caps' samples")


@dataclass
class TransferSet:
    """Training texts (deduplicated, shuffled) and the held-out tasks to evaluate on."""

    texts: list[str]
    tasks: list[EvalTask]
    per_source: dict[str, int] = field(default_factory=dict)


def read_text_file(path: str | Path) -> list[str]:
    """Non-empty stripped lines of a UTF-8 text file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{p}: no such text file")
    texts = [line.strip() for line in p.read_text(encoding="utf-8").splitlines()]
    texts = [t for t in texts if t]
    if not texts:
        raise DataError(f"{p}: no non-empty line")
    return texts


def heldout_task(ds: TextDataset, test_size: float | int, split_seed: int = 0) -> EvalTask:
    """The dataset's fixed test split (as `make_split` draws it) and every other labelled text."""
    split = make_split(ds, k=1, seed=0, test_size=test_size, split_seed=split_seed)
    test = set(split.test_texts)
    train = [(t, y) for t, y in zip(ds.texts, ds.labels) if t not in test]
    return EvalTask(
        name=ds.name,
        train_texts=[t for t, _ in train],
        train_labels=[y for _, y in train],
        test_texts=split.test_texts,
        test_labels=split.test_labels,
    )


def _cap(texts: list[str], cap: int | None, seed: int) -> list[str]:
    if cap is None or len(texts) <= cap:
        return texts
    return random.Random(seed).sample(texts, cap)


def _sentences(texts: list[str]) -> list[str]:
    """Each text's sentences; a text with no sentence of 20+ characters is kept whole."""
    return [s for t in texts for s in (split_sentences(t) or [t])]


def collect_texts(spec: EmbedDataSpec) -> TransferSet:
    """Read every source, hold out the test splits, dedupe, cap and shuffle (all seeded)."""
    candidates: list[str] = []
    tasks: list[EvalTask] = []
    held_out: set[str] = set()  # every test split, evaluated or not: never trained on
    per_source: dict[str, int] = {}
    for src in spec.sources:
        if src.dataset is not None:
            ds = load_dataset(src.dataset, src.text_column, src.label_column)
            task = heldout_task(ds, src.test_size, src.split_seed)
            held_out.update(task.test_texts)
            if src.evaluate:
                tasks.append(task)
            texts = task.train_texts + list(ds.unlabeled)
        else:
            texts = read_text_file(str(src.file))
        if src.sentences:
            texts = _sentences(texts)
        texts = _cap(list(dict.fromkeys(texts)), src.max_texts, spec.seed)
        per_source[src.label] = len(texts)
        candidates.extend(texts)
    kept = [
        t
        for t in dict.fromkeys(candidates)
        if t not in held_out and len(t.strip()) >= spec.min_chars
    ]
    random.Random(spec.seed).shuffle(kept)
    kept = kept[: spec.max_texts] if spec.max_texts else kept
    if not kept:
        raise DataError("data.sources: no training text left after holding out the test splits")
    return TransferSet(kept, tasks, per_source)
