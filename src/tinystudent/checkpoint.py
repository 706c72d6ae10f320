"""Per-epoch training checkpoints: tensors in safetensors, everything else in JSON, no pickle.

A checkpoint directory holds `state-<serial>.safetensors` and `state.json`. The JSON is
written last and names the tensor file and its SHA-256, so it is the commit record: a crash at
any moment leaves either the previous checkpoint or the new one, never a mix. The JSON also
carries a key (a hash of everything the training depends on); a checkpoint whose key differs
from the current run's is stale and ignored, so changed inputs never resume old work.

Any nested state (model, optimizer and scheduler state dicts, RNG states) is flattened into a
JSON tree whose tensors are replaced by references into the safetensors file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinystudent.io import read_json, remove_stale_temps, save_safetensors, write_json

log = logging.getLogger(__name__)

FORMAT = 1
_TENSOR, _TUPLE, _DICT, _ARRAY = "__tensor__", "__tuple__", "__dict__", "__ndarray__"

#: Test hook: seconds to sleep per training step and per teacher labeling call, so the crash
#: tests (tests/faults/test_kill_resume.py) can land a SIGKILL inside a stage. Unset = no sleep.
SLOW_STEP_ENV = "TINYSTUDENT_SLOW_STEP_SECONDS"


def slow_step() -> None:
    """Sleep `$TINYSTUDENT_SLOW_STEP_SECONDS` (test hook; a no-op when unset)."""
    delay = os.environ.get(SLOW_STEP_ENV)
    if delay:
        time.sleep(float(delay))


# -- flattening ------------------------------------------------------------------------------
def flatten(obj: Any, tensors: dict[str, torch.Tensor], path: str = "") -> Any:
    """A JSON-able tree for `obj`; its tensors are moved into `tensors` under their path."""
    if isinstance(obj, torch.Tensor):
        name = path or "tensor"
        # A copy: state dicts may share storage, which safetensors refuses to write.
        tensors[name] = obj.detach().cpu().clone().contiguous()
        return {_TENSOR: name}
    if isinstance(obj, np.ndarray):
        return {_ARRAY: obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, tuple):
        return {_TUPLE: [flatten(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: flatten(v, tensors, f"{path}/{k}") for k, v in obj.items()}
        return {_DICT: [[k, flatten(v, tensors, f"{path}/{k}")] for k, v in obj.items()]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    raise TypeError(f"checkpoint: cannot store {type(obj).__name__} at {path or '/'}")


def unflatten(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `flatten`."""
    if isinstance(tree, list):
        return [unflatten(v, tensors) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if _TENSOR in tree:
        return tensors[tree[_TENSOR]]
    if _ARRAY in tree:
        return np.asarray(tree[_ARRAY], dtype=tree["dtype"])
    if _TUPLE in tree:
        return tuple(unflatten(v, tensors) for v in tree[_TUPLE])
    if _DICT in tree:
        return {k: unflatten(v, tensors) for k, v in tree[_DICT]}
    return {k: unflatten(v, tensors) for k, v in tree.items()}


# -- random number generators ----------------------------------------------------------------
def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every generator a training loop draws from, so a resumed run draws the same numbers
    (CUDA's too, once a run on a GPU has started it: dropout there draws from it)."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=False),
    }
    if generator is not None:
        state["generator"] = generator.get_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(state["numpy"])
    if generator is not None:
        generator.set_state(state["generator"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)  # elsewhere (other GPUs, none): CPU streams only


# -- keys ------------------------------------------------------------------------------------
def hash_weights(h: Any, named: Any) -> None:
    """Feed (name, tensor) pairs, sorted by name, into hash `h`: a model's weight fingerprint.
    The bytes fed (name, then raw values) are what every teacher's cache key is built on."""
    for name, t in sorted(named, key=lambda kv: kv[0]):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())


def fingerprint(*parts: Any) -> str:
    """SHA-256 over strings, bytes, arrays, tensors and (recursively) lists/dicts of them."""
    h = hashlib.sha256()

    def feed(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().contiguous()
            h.update(f"T{x.dtype}{tuple(x.shape)}".encode())
            h.update(x.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(x, np.ndarray):
            h.update(f"A{x.dtype}{x.shape}".encode())
            h.update(np.ascontiguousarray(x).tobytes())
        elif isinstance(x, bytes):
            h.update(b"B%d:" % len(x) + x)
        elif isinstance(x, dict):
            h.update(b"D%d" % len(x))
            for k in sorted(x, key=str):
                feed(str(k))
                feed(x[k])
        elif isinstance(x, (list, tuple)):
            h.update(b"L%d" % len(x))
            for v in x:
                feed(v)
        else:
            s = str(x).encode()
            h.update(b"S%d:" % len(s) + s)

    for p in parts:
        feed(p)
    return h.hexdigest()[:32]


# -- the checkpoint directory ----------------------------------------------------------------
def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Checkpoint:
    """The last finished epoch of one training run, valid only for the same `key`."""

    def __init__(self, directory: str | Path, key: str) -> None:
        self.dir = Path(directory)
        self.key = key
        self._record = self.dir / "state.json"

    def load(self) -> Any | None:
        """The saved state, or None when there is none or it is stale or damaged."""
        if not self._record.exists():
            return None
        remove_stale_temps(self.dir)  # a killed writer's leftovers
        try:
            record = read_json(self._record)
            if record.get("format") != FORMAT or record.get("key") != self.key:
                log.warning("%s: checkpoint is from other inputs; starting afresh", self.dir)
                return None
            path = self.dir / record["tensors"]
            if _sha256_file(path) != record["sha256"]:
                raise ValueError("checksum mismatch")
            from safetensors.torch import load_file

            return unflatten(record["state"], load_file(str(path)))
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
            log.warning("%s: checkpoint is damaged (%s); starting afresh", self.dir, e)
            return None

    def save(self, state: Any) -> None:
        """Write the tensors, then commit with the JSON record, then drop older tensor files."""
        tensors: dict[str, torch.Tensor] = {}
        tree = flatten(state, tensors)
        serial = 0
        if self._record.exists():
            try:
                serial = int(read_json(self._record).get("serial", 0)) + 1
            except (OSError, ValueError, AttributeError):
                serial = 0
        name = f"state-{serial:06d}.safetensors"
        save_safetensors(self.dir / name, tensors, {"format": "pt"})
        record = {
            "format": FORMAT,
            "key": self.key,
            "serial": serial,
            "tensors": name,
            "sha256": _sha256_file(self.dir / name),
            "state": tree,
        }
        write_json(self._record, record)
        for old in self.dir.glob("state-*.safetensors"):
            if old.name != name:
                old.unlink(missing_ok=True)

    def clear(self) -> None:
        """Remove the directory: called once the trained model itself is saved."""
        shutil.rmtree(self.dir, ignore_errors=True)


def open_checkpoint(directory: str | Path | None, key: str) -> Checkpoint | None:
    return Checkpoint(directory, key) if directory is not None else None
