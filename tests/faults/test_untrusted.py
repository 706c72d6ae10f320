"""No untrusted code runs: weights load from safetensors, pickle is refused unless opted in (and
even then only torch's weights-only loader sees it), model folders' own Python never runs by
default, and recipes cannot construct Python objects.

Every "attack" here is a file that would create a sentinel file if it were ever executed.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tinystudent.cli import main
from tinystudent.errors import TinyStudentError
from tinystudent.recipe import parse_recipe
from tinystudent.safety import ALLOW_PICKLE_ENV, UnsafeWeightsError
from tinystudent.students import build_student, load_student
from tinystudent.teachers import EncoderTeacher, EncoderTeacherConfig

SRC = Path(__file__).resolve().parents[2] / "src" / "tinystudent"


def evil_pickle(sentinel: Path) -> bytes:
    """A protocol-0 pickle whose loading calls open(sentinel, "w"): code execution, made
    visible. Written as bytes: nothing in this repository calls pickle.dump or torch.save."""
    return b"cbuiltins\nopen\n(S'%s'\nS'w'\ntR." % str(sentinel).encode()


@pytest.fixture()
def pickle_only_model(tiny_teacher_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The tiny teacher with its safetensors replaced by a malicious pytorch_model.bin."""
    d = tmp_path / "pickle_model"
    shutil.copytree(tiny_teacher_dir, d)
    (d / "model.safetensors").unlink()
    sentinel = tmp_path / "PWNED"
    (d / "pytorch_model.bin").write_bytes(evil_pickle(sentinel))
    return d, sentinel


# -- trust_remote_code -------------------------------------------------------------------
def test_trust_remote_code_is_off_by_default_and_passed_through(
    tiny_teacher_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers

    seen: list[tuple[str, object, object]] = []
    for cls_name in ("AutoModel", "AutoTokenizer"):
        cls = getattr(transformers, cls_name)
        original = cls.from_pretrained

        def spy(*args, _name=cls_name, _orig=original, **kwargs):  # type: ignore[no-untyped-def]
            seen.append((_name, kwargs.get("trust_remote_code"), kwargs.get("use_safetensors")))
            return _orig(*args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", spy)

    assert EncoderTeacherConfig().trust_remote_code is False
    assert parse_recipe({}).teacher.trust_remote_code is False
    EncoderTeacher.from_pretrained(["a", "b"], EncoderTeacherConfig(model=str(tiny_teacher_dir)))
    assert seen == [("AutoTokenizer", False, None), ("AutoModel", False, True)]
    seen.clear()
    cfg = EncoderTeacherConfig(model=str(tiny_teacher_dir), trust_remote_code=True)
    EncoderTeacher.from_pretrained(["a", "b"], cfg)
    assert seen == [("AutoTokenizer", True, None), ("AutoModel", True, True)]


@pytest.mark.parametrize("model_type", ["bert", "evil-bert"])
def test_model_folder_code_never_runs(tiny_teacher_dir: Path, tmp_path: Path, model_type: str):
    """A config whose auto_map points at the folder's own module: a known model type loads the
    library's class instead; an unknown one is refused with a clear error. Never imported."""
    d = tmp_path / "custom_code"
    shutil.copytree(tiny_teacher_dir, d)
    sentinel = tmp_path / "PWNED"
    (d / "evil_model.py").write_text(
        f"open({str(sentinel)!r}, 'w').close()\n"
        "from transformers import BertConfig as EvilConfig, BertModel as EvilModel\n"
    )
    config = json.loads((d / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": "evil_model.EvilConfig",
        "AutoModel": "evil_model.EvilModel",
    }
    config["model_type"] = model_type
    (d / "config.json").write_text(json.dumps(config))
    cfg = EncoderTeacherConfig(model=str(d))
    if model_type == "bert":
        teacher = EncoderTeacher.from_pretrained(["a", "b"], cfg)
        assert type(teacher.backbone).__module__.startswith("transformers.models.bert")
    else:
        with pytest.raises(TinyStudentError, match="custom code"):
            EncoderTeacher.from_pretrained(["a", "b"], cfg)
    assert not sentinel.exists()


# -- pickle: teacher ---------------------------------------------------------------------
def test_pickle_only_teacher_is_refused_from_the_cli(
    pickle_only_model: tuple[Path, Path],
    toy_csv: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model, sentinel = pickle_only_model
    recipe = {
        "data": {"dataset": str(toy_csv), "k": 4, "test_size": 20},
        "teacher": {"model": str(model), "epochs": 1},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(lines) == 1, lines
    assert "pytorch_model.bin" in lines[0] and "teacher.allow_pickle: true" in lines[0]
    assert not sentinel.exists()
    assert not (tmp_path / "out" / "teacher").exists()


def test_opted_in_pickle_goes_through_the_weights_only_loader(
    pickle_only_model: tuple[Path, Path],
) -> None:
    model, sentinel = pickle_only_model
    cfg = EncoderTeacherConfig(model=str(model), allow_pickle=True)
    with pytest.raises(TinyStudentError, match="cannot load.*Weights only load failed"):
        EncoderTeacher.from_pretrained(["a", "b"], cfg)
    assert not sentinel.exists()
    assert "allow_pickle" not in cfg.model_dump()  # a format choice: not part of stage hashes


@pytest.mark.parametrize("allow_pickle", [False, True])
def test_safetensors_win_over_a_pickle_beside_them(
    tiny_teacher_dir: Path, tmp_path: Path, allow_pickle: bool
) -> None:
    d = tmp_path / "both"
    shutil.copytree(tiny_teacher_dir, d)
    sentinel = tmp_path / "PWNED"
    (d / "pytorch_model.bin").write_bytes(evil_pickle(sentinel))
    cfg = EncoderTeacherConfig(model=str(d), allow_pickle=allow_pickle)
    EncoderTeacher.from_pretrained(["a", "b"], cfg)
    assert not sentinel.exists()


def test_saved_teacher_without_safetensors_is_refused(
    tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    teacher = EncoderTeacher.from_pretrained(
        ["a", "b"], EncoderTeacherConfig(model=str(tiny_teacher_dir))
    )
    out = tmp_path / "teacher"
    teacher.save(out)
    (out / "teacher.safetensors").unlink()
    sentinel = tmp_path / "PWNED"
    (out / "teacher.pt").write_bytes(evil_pickle(sentinel))
    with pytest.raises(UnsafeWeightsError, match="teacher.pt"):
        EncoderTeacher.load(out)
    assert not sentinel.exists()


# -- pickle: student ---------------------------------------------------------------------
@pytest.fixture()
def pickle_only_student(tmp_path: Path) -> tuple[Path, Path]:
    d = tmp_path / "student"
    build_student("pqrnn", {"hidden": 8, "bottleneck": 16, "features": 32}, ["a", "b"]).save(d)
    (d / "student.safetensors").unlink()
    sentinel = tmp_path / "PWNED"
    (d / "student.pt").write_bytes(evil_pickle(sentinel))
    return d, sentinel


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".pth", ".pkl", ".joblib", ".ckpt"])
def test_student_pickle_is_refused_without_the_env_var(
    pickle_only_student: tuple[Path, Path], suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    d, sentinel = pickle_only_student
    (d / "student.pt").rename(d / f"weights{suffix}")
    monkeypatch.delenv(ALLOW_PICKLE_ENV, raising=False)
    with pytest.raises(UnsafeWeightsError, match=f"weights\\{suffix}.*{ALLOW_PICKLE_ENV}=1"):
        load_student(d)
    assert not sentinel.exists()


def test_student_pickle_refused_from_the_cli_and_opt_in_stays_weights_only(
    pickle_only_student: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    d, sentinel = pickle_only_student
    monkeypatch.delenv(ALLOW_PICKLE_ENV, raising=False)
    assert main(["predict", str(d), "some text"]) == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(lines) == 1 and "student.pt" in lines[0] and ALLOW_PICKLE_ENV in lines[0]
    monkeypatch.setenv(ALLOW_PICKLE_ENV, "1")
    with pytest.raises(UnsafeWeightsError, match="not loadable as plain torch weights"):
        load_student(d)
    assert not sentinel.exists()


# -- recipes and the source itself -------------------------------------------------------
def test_recipe_cannot_construct_python_objects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sentinel = tmp_path / "PWNED"
    path = tmp_path / "recipe.yaml"
    path.write_text(f"name: !!python/object/apply:os.system ['touch {sentinel}']\n")
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert not sentinel.exists()


UNSAFE_CALLS = re.compile(
    r"\btorch\.(save|load)\(|\bpickle\.(load|loads|dump|Unpickler)\("
    r"|\b(joblib|dill|cloudpickle)\.(load|dump)|allow_pickle=True|trust_remote_code=True"
    r"|yaml\.(load|unsafe_load|full_load)\(|(?<![.\w])(eval|exec)\("
)


def test_source_never_unpickles_or_executes_data() -> None:
    """Only safety.py may call torch.load, and only with weights_only=True."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            code = line.split("#", 1)[0]
            if not UNSAFE_CALLS.search(code):
                continue
            if path.name == "safety.py" and "torch.load(" in code and "weights_only=True" in code:
                continue
            offenders.append(f"{path.relative_to(SRC)}:{no}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
