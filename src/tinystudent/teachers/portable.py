"""Teachers as small picklable recipes that another process (a Ray actor) rebuilds.

Why: a worker must never receive the model itself (it is big and device-bound); it receives
where the saved weights are and how to put them together, loads them on its own device, and
answers with the fingerprint of what it built, so the driver can refuse results from a teacher
that differs from its own (a stale copy of a directory on another node).

- `SavedTeacher`: one saved teacher of any kind (its directory and its `teacher.json`).
- `SavedAmalgam`: several saved members and how the driver combined them (spec, names, label
  set and the weights it fitted on gold), so the worker's `AmalgamatedTeacher` is the
  driver's, fingerprint included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tinystudent.errors import TinyStudentError
from tinystudent.io import read_json
from tinystudent.teachers.amalgamate import AmalgamatedTeacher, AmalgamationSpec
from tinystudent.teachers.base import Teacher


class PortableTeacher(Protocol):
    """What a worker needs to rebuild a teacher, and what the driver checks it against."""

    @property
    def fingerprint(self) -> str: ...

    @property
    def n_classes(self) -> int: ...

    def open(self, cache_root: str, device: str) -> Teacher: ...

    def mismatch(self, worker_fingerprint: str) -> str: ...


def _saved_dir(path: str | Path) -> Path:
    d = Path(path).expanduser().resolve()
    if not (d / "teacher.json").is_file():
        raise TinyStudentError(f"{d}: no teacher.json; is this a saved teacher?")
    return d


@dataclass(frozen=True)
class SavedTeacher:
    """One saved teacher of any kind; its fingerprint as its `teacher.json` records it."""

    path: str
    fingerprint: str
    n_classes: int

    @classmethod
    def at(cls, path: str | Path) -> SavedTeacher:
        d = _saved_dir(path)
        meta = read_json(d / "teacher.json")
        return cls(str(d), str(meta["fingerprint"]), len(meta["label_names"]))

    def open(self, cache_root: str, device: str) -> Teacher:
        from tinystudent.teachers.registry import load_saved

        teacher: Teacher = load_saved(self.path, cache_root, device)
        return teacher

    def mismatch(self, worker_fingerprint: str) -> str:
        return (
            f"{self.path}: a Ray worker loaded a teacher with fingerprint {worker_fingerprint}, "
            f"but teacher.json says {self.fingerprint}; is the directory the same on every node?"
        )


@dataclass(frozen=True)
class SavedAmalgam:
    """Saved members plus everything the driver's `AmalgamatedTeacher` was built with."""

    members: tuple[str, ...]
    spec: AmalgamationSpec
    names: tuple[str, ...]
    label_names: tuple[str, ...]
    weights: tuple[float, ...]
    fingerprint: str

    @classmethod
    def of(cls, teacher: AmalgamatedTeacher, member_dirs: Sequence[str | Path]) -> SavedAmalgam:
        """`teacher` as it is now (weights fitted), its members saved in `member_dirs`."""
        if len(member_dirs) != len(teacher.teachers):
            raise TinyStudentError(
                f"{len(member_dirs)} member directories for {len(teacher.teachers)} teachers"
            )
        return cls(
            tuple(str(_saved_dir(d)) for d in member_dirs),
            teacher.spec,
            tuple(teacher.names),
            tuple(teacher.label_names),
            tuple(float(w) for w in teacher.weights),  # float64 -> float: exact
            teacher.fingerprint,
        )

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    def open(self, cache_root: str, device: str) -> AmalgamatedTeacher:
        from tinystudent.teachers.registry import load_saved

        return AmalgamatedTeacher(
            [load_saved(d, cache_root, device) for d in self.members],
            self.spec,
            self.names,
            self.label_names,
            weights=self.weights,
        )

    def mismatch(self, worker_fingerprint: str) -> str:
        return (
            f"{', '.join(self.members)}: a Ray worker amalgamated these teachers into fingerprint "
            f"{worker_fingerprint}, but the driver's amalgamated teacher has {self.fingerprint}; "
            "are the member directories the same on every node?"
        )
