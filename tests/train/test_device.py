"""The `device` option: one resolver, the engine moving model and batches, the recipe key.

There is no GPU on the machines these tests run on: CUDA is only ever pretended (through
`torch.cuda.is_available` / `device_count`) to check which device is chosen, never used.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tinystudent.cli import main
from tinystudent.devices import DeviceError, resolve_device, to_device
from tinystudent.errors import RecipeError
from tinystudent.pipeline import run
from tinystudent.recipe import parse_recipe
from tinystudent.train import FitResult, Strategy, engine
from tinystudent.train.engine import Fit, Hooks

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def _pretend_gpus(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


@pytest.mark.parametrize(
    ("name", "gpus", "expected"),
    [
        ("cpu", 0, "cpu"),
        ("cpu", 1, "cpu"),
        ("auto", 0, "cpu"),
        ("auto", 1, "cuda"),
        ("cuda", 1, "cuda"),
        ("cuda:1", 2, "cuda:1"),
    ],
)
def test_resolve_device(monkeypatch: pytest.MonkeyPatch, name: str, gpus: int, expected: str):
    _pretend_gpus(monkeypatch, gpus)
    assert str(resolve_device(name)) == expected


@pytest.mark.parametrize(
    ("name", "gpus", "fragment"),
    [
        ("cuda", 0, "this machine has no CUDA GPU"),
        ("cuda:0", 0, "use --device cpu or device: auto"),
        ("cuda:2", 2, "this machine has 2 CUDA GPU(s)"),
        ("gpu", 1, "choose cpu, cuda, cuda:N or auto"),
        ("", 0, "choose cpu, cuda, cuda:N or auto"),
    ],
)
def test_unusable_devices_are_one_line_errors(
    monkeypatch: pytest.MonkeyPatch, name: str, gpus: int, fragment: str
) -> None:
    _pretend_gpus(monkeypatch, gpus)
    with pytest.raises(DeviceError) as e:
        resolve_device(name)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_to_device_moves_every_tensor_it_finds() -> None:
    @dataclasses.dataclass
    class Batch:
        x: torch.Tensor
        note: str
        fn: object = None

    meta = torch.device("meta")
    moved = to_device(
        ({"a": torch.ones(2)}, [torch.zeros(1), 3], Batch(torch.ones(1), "n", len)), meta
    )
    assert moved[0]["a"].device == meta and moved[1][0].device == meta and moved[1][1] == 3
    assert moved[2].x.device == meta and moved[2].note == "n" and moved[2].fn is len
    same = torch.ones(1)
    assert to_device(same, torch.device("cpu")) is same  # already there: no copy


def test_the_engine_moves_the_model_and_every_prepared_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The model goes to the strategy's device when the run is set up; each batch goes
    through `prepare`, then `to_device(..., fit.device)`, then `step`."""
    meta = torch.device("meta")
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    Fit(model, opt, list(model.parameters()), 1, strategy=Strategy(meta), progress=False)
    assert {p.device for p in model.parameters()} == {meta}

    seen: list[tuple[object, torch.device]] = []
    real = engine.to_device

    def spy(obj: object, device: torch.device) -> object:
        seen.append((obj, device))
        return real(obj, device)

    monkeypatch.setattr(engine, "to_device", spy)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    fit = Fit(model, opt, list(model.parameters()), 2, progress=False)
    x = torch.randn(4, 3)
    steps: list[object] = []

    def step(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        steps.append(batch)
        return {"loss": model(batch["x"]).pow(2).mean()}

    hooks = Hooks(lambda e: [[0, 1], [2, 3]], step, prepare=lambda rows: {"x": x[rows]})
    fit.run(hooks)
    assert [d for _, d in seen] == [torch.device("cpu")] * 2
    assert all(torch.equal(o["x"], s["x"]) for (o, _), s in zip(seen, steps))  # type: ignore


def _recipe(toy_csv: Path, teacher_dir: Path, **top: object):
    return parse_recipe(
        {
            "name": "device",
            "data": {"dataset": str(toy_csv), "k": 8, "test_size": 40, "max_pool": 80},
            "teacher": {"model": str(teacher_dir), "epochs": 1, "batch_size": 8},
            "student": {
                "kind": "pqrnn",
                "hidden": 8,
                "bottleneck": 16,
                "features": 32,
                "max_tokens": 16,
            },
            "train": {"epochs": 2, "batch_size": 32},
            "threads": 1,
            **top,
        }
    )


def test_device_auto_without_a_gpu_trains_as_cpu_does(
    toy_csv: Path, tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    """`device: auto` on a machine without CUDA fine-tunes the teacher and trains the student
    on the CPU, to the very same weights as `device: cpu` (the device is in no stage hash)."""
    if torch.cuda.is_available():
        pytest.skip("auto means CUDA here")
    cpu, auto = tmp_path / "cpu", tmp_path / "auto"
    r_cpu = _recipe(toy_csv, tiny_teacher_dir)
    r_auto = _recipe(toy_csv, tiny_teacher_dir, device="auto")
    assert r_cpu.device == "cpu" and r_auto.device == "auto"
    assert r_cpu.section_hash("train", "student") == r_auto.section_hash("train", "student")
    reports = [run(r_cpu, cpu), run(r_auto, auto)]
    assert [r["device"] for r in reports] == ["cpu", "cpu"]
    for part in ("student/student.safetensors", "teacher/teacher.safetensors"):
        a, b = load_file(str(cpu / part)), load_file(str(auto / part))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part


def test_a_bad_device_in_a_recipe_names_the_field(toy_csv: Path, tiny_teacher_dir: Path) -> None:
    with pytest.raises(RecipeError) as e:
        _recipe(toy_csv, tiny_teacher_dir, device="tpu")
    assert "device" in str(e.value) and "choose cpu, cuda, cuda:N or auto" in str(e.value)


@pytest.mark.parametrize(
    "argv",
    [
        ["run", str(RECIPES / "rotten_tomatoes.yaml")],
        ["bench", "rt"],
        ["embed-distill", str(RECIPES / "embed_minilm_bag.yaml")],
        ["rationale", str(RECIPES / "rationale_chain_sum.yaml")],
    ],
)
def test_device_cuda_without_a_gpu_exits_2_before_any_work(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "out"
    assert main([*argv, "--device", "cuda", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "this machine has no CUDA GPU" in err[0], err
    assert "use --device cpu" in err[0]
    assert not out.exists()  # nothing ran


def test_device_flag_is_validated_and_shown_by_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--data", "reviews.csv", "--device", "auto"]) == 0
    assert "\ndevice: auto\n" in capsys.readouterr().out
    assert main(["check", str(RECIPES / "rotten_tomatoes.yaml")]) == 0
    assert "\ndevice: cpu\n" in capsys.readouterr().out  # the default, spelled out
    assert main(["check", "--data", "reviews.csv", "--device", "gpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --device 'gpu' (device): Value error, choose cpu, cuda, cuda:N or auto"]
    assert main(["embed-distill", str(RECIPES / "embed_minilm_bag.yaml"), "--device", "x"]) == 2
    assert "device 'x': choose cpu, cuda, cuda:N or auto" in capsys.readouterr().err


def test_ddp_ranks_pick_their_device_and_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    from tinystudent.scale.ddp import default_backend, train_student_ddp
    from tinystudent.train import TrainConfig
    from tinystudent.train.ddp import DDPStrategy

    _pretend_gpus(monkeypatch, 0)
    assert default_backend("cpu") == "gloo" and default_backend("auto") == "gloo"
    assert DDPStrategy.from_env(0, "auto").device == torch.device("cpu")
    _pretend_gpus(monkeypatch, 1)
    assert default_backend("cuda") == "nccl" and default_backend("cpu") == "gloo"
    assert DDPStrategy.from_env(0, "auto").device == torch.device("cuda")  # no group: no ops
    with pytest.raises(DeviceError, match="1 CUDA GPU"):
        train_student_ddp(2, "bag", {}, ["a", "b"], [], None, None, TrainConfig(), "x", None,
                          device="cuda")  # fmt: skip


def test_ray_workers_get_the_device_string_and_gpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver sends `device` unresolved (each worker resolves it on its node) and asks
    Ray for one GPU per worker when it names cuda, none otherwise."""
    import numpy as np

    from tinystudent.scale import ray_label
    from tinystudent.teachers.lexical import TfidfTeacher, TfidfTeacherConfig

    teacher = TfidfTeacher(["neg", "pos"], TfidfTeacherConfig())
    teacher.fit(["bad film", "awful plot", "great film", "lovely plot"], [0, 0, 1, 1])
    teacher.save(tmp_path / "teacher")
    asked: list[dict] = []

    def local_pool(factory, items, num_workers, batch_size, **kw):
        asked.append(kw)
        fn = factory()
        assert fn.teacher.fingerprint == teacher.fingerprint
        for i in range(0, len(items), batch_size):
            yield i, list(items[i : i + batch_size]), fn(list(items[i : i + batch_size]))

    monkeypatch.setattr(ray_label, "map_batches_actors", local_pool)
    texts = ["bad plot", "great film"]
    for device, gpus in (("auto", 0.0), ("cuda", 1.0)):
        _pretend_gpus(monkeypatch, int(gpus))  # the worker's node: one GPU when Ray gave one
        probs, _ = ray_label.label_texts_ray(
            tmp_path / "teacher", texts, tmp_path / f"cache-{device}", device=device
        )
        assert asked[-1]["num_gpus"] == gpus
        np.testing.assert_allclose(probs, teacher.predict_proba(texts), rtol=1e-6)
    with pytest.raises(DeviceError):
        ray_label.label_texts_ray(tmp_path / "teacher", texts, tmp_path / "c", device="gpu")


def test_every_training_run_returns_the_engines_result() -> None:
    """One result class: the student's is the engine's; the embedding and rationale runs
    extend it by a few fields; `log()` and `from_log` round-trip what DDP hands back."""
    from tinystudent.embeddings.train import EmbedFitResult
    from tinystudent.rationale.train import RationaleFitResult

    assert issubclass(EmbedFitResult, FitResult) and issubclass(RationaleFitResult, FitResult)
    done = FitResult(steps=6, epochs=3, resumed_epochs=1, best_epoch=2, best_score=0.75)
    done.history, done.score_name = [{"epoch": 1.0, "kd": 0.5}], "val_agreement"
    log = done.log()
    assert log["best_val_agreement"] == 0.75 and log["resumed_from_epoch"] == 1
    back = FitResult.from_log(log, "val_agreement")
    assert back.log() == log and back.resumed_from_epoch == 1
    extended = done.extend(EmbedFitResult, train_texts=5, val_texts=1)
    assert extended.best_score == 0.75 and extended.log()["train_texts"] == 5


def test_checkpoints_keep_the_cuda_random_state_once_cuda_is_in_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dropout on a GPU draws from CUDA's generator: a run that uses CUDA saves and restores
    its state; a CPU run's checkpoint holds none (pretended CUDA: no CUDA call is made)."""
    from tinystudent import checkpoint

    assert "cuda" not in checkpoint.rng_state()
    restored: list[object] = []
    _pretend_gpus(monkeypatch, 1)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [torch.arange(3)])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    state = checkpoint.rng_state()
    assert torch.equal(state["cuda"][0], torch.arange(3))
    checkpoint.set_rng_state(state)
    assert len(restored) == 1 and torch.equal(restored[0][0], torch.arange(3))  # type: ignore
    _pretend_gpus(monkeypatch, 2)  # another machine, another GPU count: not restored
    checkpoint.set_rng_state(state)
    assert len(restored) == 1
