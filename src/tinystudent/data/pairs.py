"""`bbc_pairs`: a multi-label set built honestly from BBC News, two topics per paired text.

No multi-label text set of useful size ships in a package, so one is made from the 5-topic
BBC corpus: each article's lead (its first `LEAD_WORDS` words: the title and opening, which
carry the topic) is used exactly once, either alone (one label) or joined with the lead of an
article of another topic (both labels). Pairing is seeded and fixed, so the set is the same on
every machine. Every text records the articles it is made of (`groups`), and the split keeps
groups apart: no article of a test text appears in any train or pool text.
"""

from __future__ import annotations

import random

import numpy as np

from tinystudent.data.builtin import load_bbc_news
from tinystudent.data.multilabel import MultiLabelDataset

#: Words kept of each article: two leads fit the teacher's 256 tokens, so both topics are read.
LEAD_WORDS = 80
#: Share of articles kept alone (the rest are paired across topics).
SINGLE_SHARE = 0.5
SEED = 0


def lead(text: str, words: int = LEAD_WORDS) -> str:
    return " ".join(text.split()[:words])


def pair_across_topics(
    articles: list[int], topic: list[int], rng: random.Random
) -> tuple[list[list[int]], list[int]]:
    """Pairs of articles from two different topics, and the articles left unpaired.

    Each pair takes one article from each of the two topics with the most articles left, so
    as many articles as possible are paired (only one topic can run over)."""
    buckets: dict[int, list[int]] = {}
    for a in articles:
        buckets.setdefault(topic[a], []).append(a)
    pairs: list[list[int]] = []
    while sum(1 for b in buckets.values() if b) >= 2:
        first, second = sorted((t for t in buckets if buckets[t]), key=lambda t: -len(buckets[t]))[
            :2
        ]
        pair = [buckets[first].pop(), buckets[second].pop()]
        rng.shuffle(pair)  # which topic comes first carries no signal
        pairs.append(pair)
    return pairs, [a for b in buckets.values() for a in b]


def load_bbc_pairs() -> MultiLabelDataset:
    """Single-topic and two-topic texts from BBC News leads (see the module docstring)."""
    news = load_bbc_news()
    leads: list[str] = []
    topic: list[int] = []
    seen: set[str] = set()
    for text, y in zip(news.texts, news.labels):
        head = lead(text)
        if head not in seen:  # the corpus repeats some stories: one lead, one article
            seen.add(head)
            leads.append(head)
            topic.append(y)
    rng = random.Random(SEED)
    order = list(range(len(leads)))
    rng.shuffle(order)
    n_single = int(len(order) * SINGLE_SHARE)
    pairs, unpaired = pair_across_topics(order[n_single:], topic, rng)
    groups = [[a] for a in order[:n_single] + unpaired] + pairs
    rng.shuffle(groups)
    texts = ["\n\n".join(leads[a] for a in g) for g in groups]
    targets = np.zeros((len(groups), len(news.label_names)), dtype=np.uint8)
    for i, g in enumerate(groups):
        targets[i, [topic[a] for a in g]] = 1
    return MultiLabelDataset("bbc_pairs", texts, targets, list(news.label_names), [], groups=groups)


MULTI_LABEL_BUILTIN = {"bbc_pairs": load_bbc_pairs}
