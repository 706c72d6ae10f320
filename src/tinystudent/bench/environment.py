"""What every benchmark result records beside its numbers: machine, versions, commit, command.

One function for the `tinystudent bench` protocols and the scripts in `bench/`, so every
result file says the same things about where it was measured."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "tinystudent",
    "torch",
    "transformers",
    "numpy",
    "scikit-learn",
    "fasttext-wheel",
    "model2vec",
    "setfit",
)


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _git(root: Path | None, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def environment(root: Path | None = None, command: str | None = None) -> dict[str, Any]:
    """The machine, the package versions, the git commit of `root` (default: the working
    directory; None outside a checkout) and whether tracked files differ from it, and the
    command line that is running (or `command`, as the caller wants it cited)."""
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "git_commit": commit,
        "git_dirty": None if status is None else bool(status),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
        "versions": {p: _version(p) for p in PACKAGES},
        "python": platform.python_version(),
    }
