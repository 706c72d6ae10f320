"""Weights are data, never code: pickle-based files are refused unless the user opts in.

Unpickling (`torch.load`, joblib, `pickle.load`) can run arbitrary code, so teacher and
student directories must hold safetensors. A user who trusts a pickle-only checkpoint opts in
explicitly: `teacher.allow_pickle: true` in the recipe, or `TINYSTUDENT_ALLOW_PICKLE=1` for
saved students. Even then only torch's restricted `weights_only` loader is used.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from tinystudent.errors import TinyStudentError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".joblib", ".ckpt")
ALLOW_PICKLE_ENV = "TINYSTUDENT_ALLOW_PICKLE"


class UnsafeWeightsError(TinyStudentError):
    """A model directory offers only pickle-based weights and the user has not opted in."""


def one_line(err: BaseException, limit: int = 300) -> str:
    """A library's exception message as one short line (no newlines, no terminal colours)."""
    msg = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(err)).split())
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def pickle_files(directory: str | Path) -> list[Path]:
    d = Path(directory)
    return sorted(p for p in d.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES and p.is_file())


def has_safetensors(directory: str | Path) -> bool:
    return any(Path(directory).glob("*.safetensors"))


def env_allows_pickle() -> bool:
    return os.environ.get(ALLOW_PICKLE_ENV, "").strip().lower() in {"1", "true", "yes"}


def check_weights_dir(directory: str | Path, what: str, allow_pickle: bool, opt_in: str) -> None:
    """Refuse a directory whose only weights are pickle files, naming them and the opt-in."""
    d = Path(directory)
    if not d.is_dir() or has_safetensors(d) or allow_pickle:
        return
    found = pickle_files(d)
    if found:
        raise pickle_refused(what, d, found, opt_in)


def pickle_refused(what: str, d: Path, found: list[Path], opt_in: str) -> UnsafeWeightsError:
    names = ", ".join(p.name for p in found)
    return UnsafeWeightsError(
        f"{what}: {d} has no .safetensors weights, only pickle-based files ({names}); "
        f"loading pickle can run arbitrary code. Convert them to safetensors, or, if you "
        f"trust the file, {opt_in}"
    )


def load_pickled_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """An opted-in pickle file, read with torch's restricted loader (tensors and plain data)."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, ... for a bad file
        raise UnsafeWeightsError(
            f"{path}: not loadable as plain torch weights ({one_line(e)})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UnsafeWeightsError(f"{path}: does not hold a state dict of tensors")
    return state
