"""The one training engine: epochs x batches, the optimizer step, and what runs around it.

Every loop in the toolkit (student, encoder teacher, embedding student, rationale student,
generator fine-tune) supplies only its `Hooks`: which batches an epoch has, the named loss
parts of one batch, and optionally a score per epoch. The engine owns the rest in one place,
so the loops cannot drift apart: gradient clipping, the LR schedule, keeping the best epoch
(with patience), checkpoints per epoch or every N steps with bit-identical resume (weights,
optimizer, scheduler, RNG states, the hooks' own state), a progress bar and a deadline.
Where a step runs is the `Strategy` (`train/strategy.py`): one process, or one DDP rank
(`train/ddp.py`), which wraps the model, reduces gradients and sums the epoch's numbers.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from tinystudent.checkpoint import Checkpoint, rng_state, set_rng_state, slow_step
from tinystudent.devices import to_device
from tinystudent.errors import DataError
from tinystudent.train.strategy import Strategy

#: Bump when what a checkpoint holds changes: older checkpoints are then ignored, not misread.
ENGINE_FORMAT = 1

Schedule = Literal["one_cycle", "warmup_linear", "warmup_times_decay", "constant"]


def warmup_fraction(total_steps: int) -> float:
    """OneCycleLR's warm-up share; torch divides by zero when it is exactly one step."""
    return 0.1 if 0.1 * total_steps != 1 else 0.2


def warmup_linear_decay(
    opt: torch.optim.Optimizer, steps: int, warmup: int | None = None
) -> torch.optim.lr_scheduler.LambdaLR:
    """Short warmup then linear decay to zero: a few large steps would otherwise knock a small
    pretrained LM off its behaviour (it forgets how to stop, or collapses on one phrase)."""
    warm = max(1, steps // 10) if warmup is None else max(1, warmup)
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm)))
    )


def build_schedule(
    kind: Schedule, opt: torch.optim.Optimizer, steps: int, warmup: int | None = None
) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate shapes in use, by name, sized to `steps` optimizer steps.

    `one_cycle` (students) peaks at each group's lr after a tenth of the steps;
    `warmup_times_decay` (encoder teacher) multiplies a linear warmup into a linear decay;
    `warmup_linear` (causal LMs) is `warmup_linear_decay`."""
    if kind == "one_cycle":
        lrs = [g["lr"] for g in opt.param_groups]
        max_lr = lrs[0] if len(lrs) == 1 else lrs
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=max_lr, total_steps=steps, pct_start=warmup_fraction(steps)
        )
    if kind == "warmup_times_decay":
        warm = max(1, steps // 10) if warmup is None else max(1, warmup)
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, 1 - s / steps)
        )
    if kind == "warmup_linear":
        return warmup_linear_decay(opt, steps, warmup)
    if kind == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    raise ValueError(f"unknown learning-rate schedule {kind!r}")


def _no_score(epoch: int, means: dict[str, float]) -> float | None:
    return None


def _no_state() -> dict[str, Any]:
    return {}


def _ignore(state: dict[str, Any]) -> None:
    return None


def _as_is(batch: Any) -> Any:
    return batch


@dataclass
class Hooks:
    """What one training run supplies; everything else is the engine's.

    `prepare` turns one of `batches`' items into CPU tensors (tokenised texts, targets);
    the engine moves every tensor in what it returns to the run's device and hands that to
    `step`, which returns named loss parts, summed and backpropagated. `size` is a batch's
    row count (of the item `batches` gave), the weight of its parts in the epoch means
    handed to `score`; `save`/`load` carry the run's own state (history, objectives)
    through checkpoints.
    """

    batches: Callable[[int], Iterable[Any]]
    step: Callable[[Any], dict[str, Tensor]]
    score: Callable[[int, dict[str, float]], float | None] = _no_score
    size: Callable[[Any], int] = len
    prepare: Callable[[Any], Any] = _as_is
    save: Callable[[], dict[str, Any]] = _no_state
    load: Callable[[dict[str, Any]], None] = _ignore


@dataclass
class FitResult:
    """How a run went: the one result every training run in the toolkit returns.

    The engine fills the counters; a run that scores its epochs adds its per-epoch `history`
    rows and names what `best_score` measures (`score_name`: `val_agreement` for a student,
    `val_cosine` for an embedding student). Runs with more to say extend it by a few fields
    (`extend`), so the counters keep one name everywhere.
    """

    steps: int = 0
    epochs: int = 0  # finished epochs
    resumed_step: int = 0
    resumed_epochs: int = 0  # epochs restored from a checkpoint (0: a fresh start)
    best_epoch: int = 0  # 0: no epoch was scored
    best_score: float = float("nan")  # nan: nothing was held out to score on
    stopped_early: bool = False  # patience ran out
    stopped_by_time: bool = False  # the deadline passed
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    score_name: str = "score"

    @property
    def resumed_from_epoch(self) -> int:
        """`resumed_epochs` under the name `train_log.json` has always used."""
        return self.resumed_epochs

    def extend(self, cls: type[R], **extra: Any) -> R:
        """This result as `cls` (a subclass with a few more fields), those fields set."""
        base = {f.name: getattr(self, f.name) for f in fields(FitResult)}
        return cls(**base, **extra)

    def log(self) -> dict[str, Any]:
        """What lands in `train_log.json` and the report (keys as they have always been)."""
        return {
            "history": self.history,
            "best_epoch": self.best_epoch,
            f"best_{self.score_name}": self.best_score,
            "seconds": self.seconds,
            "resumed_from_epoch": self.resumed_epochs,
            "steps": self.steps,
            "epochs": self.epochs,
            "stopped_early": self.stopped_early,
            "stopped_by_time": self.stopped_by_time,
        }

    @classmethod
    def from_log(cls, log: dict[str, Any], score_name: str = "score") -> FitResult:
        """Back from `log()` (a DDP run's rank 0 writes it; the launcher reads it)."""
        return cls(
            steps=int(log.get("steps", 0)),
            epochs=int(log.get("epochs", 0)),
            resumed_epochs=int(log["resumed_from_epoch"]),
            best_epoch=int(log["best_epoch"]),
            best_score=float(log[f"best_{score_name}"]),
            stopped_early=bool(log.get("stopped_early", False)),
            stopped_by_time=bool(log.get("stopped_by_time", False)),
            seconds=float(log["seconds"]),
            history=list(log["history"]),
            score_name=score_name,
        )


R = TypeVar("R", bound=FitResult)


@dataclass
class _State:
    """What moves between steps; saved whole in a checkpoint."""

    step: int = 0
    epochs: int = 0
    in_epoch: int = 0  # steps done in the unfinished epoch
    sums: dict[str, float] = field(default_factory=dict)
    rows: int = 0
    best: dict[str, Tensor] | None = None
    best_score: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped: bool = False
    seconds: float = 0.0
    epoch_rng: dict[str, Any] | None = None


@dataclass
class Fit:
    """One run's fixed settings; `run(hooks)` trains `model` in place.

    `max_grad_norm` None skips clipping; `patience` None never stops early; a `score` hook
    that returns numbers makes the best-scoring epoch's weights the result. A checkpoint is
    written after every epoch (`checkpoint_epochs`), every `checkpoint_every` steps and when
    the `deadline` (a `time.perf_counter()` value) stops the run; `trainable_only` saves just
    the parameters that train (LoRA adapters), not the whole model. `strategy` says where
    the step runs, on which device (`model` is moved there, and so is every batch);
    `module` is `model` as the strategy wraps it (DDP), for the forward pass.
    """

    model: nn.Module
    opt: torch.optim.Optimizer
    params: list[nn.Parameter]
    total_steps: int
    epochs: int = 1
    schedule: Schedule = "one_cycle"
    warmup: int | None = None
    max_grad_norm: float | None = 1.0
    patience: int | None = None
    checkpoint: Checkpoint | None = None
    checkpoint_epochs: bool = True
    checkpoint_every: int = 0
    trainable_only: bool = False
    generator: torch.Generator | None = None
    deadline: float | None = None
    desc: str = "train"
    progress: bool = True
    leave: bool = True
    strategy: Strategy = field(default_factory=Strategy)
    module: nn.Module = field(init=False)
    sched: torch.optim.lr_scheduler.LRScheduler = field(init=False)
    state: _State = field(init=False, default_factory=_State)
    _stopped_by_time: bool = field(init=False, default=False)
    _now_rng: dict[str, Any] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.sched = build_schedule(self.schedule, self.opt, self.total_steps, self.warmup)
        # In place: the optimizer's parameters stay the same objects (it holds no state yet).
        self.model.to(self.device)
        self.module = self.strategy.wrap(self.model)

    @property
    def device(self) -> torch.device:
        """Where the model and every batch live during the run."""
        return self.strategy.device

    @property
    def is_main(self) -> bool:
        """The process that writes checkpoints and shows progress."""
        return self.strategy.is_main

    @property
    def step(self) -> int:
        """Optimizer steps taken so far (the running one not yet counted)."""
        return self.state.step

    def run(self, hooks: Hooks) -> FitResult:
        """Restore, train the remaining epochs, keep the best; always leaves `model` in eval."""
        started = time.perf_counter()
        result = FitResult()
        resumed = self._restore(hooks)
        result.resumed_step, result.resumed_epochs = self.state.step, self.state.epochs
        bar = tqdm(
            total=self.total_steps,
            initial=self.state.step,
            desc=self.desc,
            unit="step",
            leave=self.leave,
            disable=not (self.progress and self.is_main),
        )
        try:
            last = self.state.epochs if self.state.stopped else self.epochs
            for epoch in range(self.state.epochs + 1, last + 1):
                skip = self.state.in_epoch if resumed else 0
                if not self._epoch(hooks, epoch, skip, bar, started):
                    break
                resumed = False
        finally:
            bar.close()
            self.model.eval()
            self.opt.zero_grad(set_to_none=True)
        if self.state.best is not None:
            self.model.load_state_dict(self.state.best)
        return self._result(result, started)

    def _epoch(self, hooks: Hooks, epoch: int, skip: int, bar: Any, started: float) -> bool:
        """One epoch (from batch `skip` when resuming inside it); False: stop the run."""
        st = self.state
        if skip and st.epoch_rng is not None:
            set_rng_state(st.epoch_rng, self.generator)  # redraw the epoch's batches ...
        elif not skip:
            st.sums, st.rows, st.in_epoch = {}, 0, 0
            st.epoch_rng = rng_state(self.generator) if self.checkpoint_every else None
        self.model.train()
        batches = iter(hooks.batches(epoch))
        if skip:
            for _ in itertools.islice(batches, skip):  # ... pass those already trained on ...
                pass
            set_rng_state(self._now_rng, self.generator)  # ... and go on where the run was
        for batch in batches:
            if self.deadline is not None and time.perf_counter() > self.deadline:
                self._stopped_by_time = True
                self._save(hooks, started)
                return False
            self._train_step(hooks, batch, bar)
            if self.checkpoint_every and st.step % self.checkpoint_every == 0:
                self._save(hooks, started)
        self._finish_epoch(hooks, epoch, bar)
        if self.checkpoint_epochs:
            self._save(hooks, started)
        return not st.stopped

    def _train_step(self, hooks: Hooks, batch: Any, bar: Any) -> None:
        st = self.state
        parts = hooks.step(to_device(hooks.prepare(batch), self.device))
        loss = sum(parts.values())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[union-attr]
        self.strategy.after_backward(self.params)
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        self.opt.step()
        self.sched.step()
        n = hooks.size(batch)
        for k, v in parts.items():
            st.sums[k] = st.sums.get(k, 0.0) + float(v.detach()) * n
        st.rows += n
        st.step += 1
        st.in_epoch += 1
        bar.update(1)
        bar.set_postfix({k: f"{float(v.detach()):.3f}" for k, v in parts.items()})
        slow_step()

    def _finish_epoch(self, hooks: Hooks, epoch: int, bar: Any) -> None:
        """Epoch means, the score, best-epoch keeping and patience."""
        st = self.state
        keys = list(st.sums)
        totals = self.strategy.all_sum([st.sums[k] for k in keys])
        means = {k: v / st.rows for k, v in zip(keys, totals)} if st.rows else {}
        st.epochs, st.in_epoch = epoch, 0
        score = hooks.score(epoch, means)
        if score is None:
            return
        bar.set_postfix(score=f"{score:.3f}")
        if score > st.best_score:
            st.best_score, st.best_epoch, st.bad_epochs = score, epoch, 0
            st.best = copy.deepcopy(self.model.state_dict())
        else:
            st.bad_epochs += 1
            st.stopped = self.patience is not None and st.bad_epochs >= self.patience

    def _weights(self) -> dict[str, Tensor]:
        if self.trainable_only:
            return {n: p.detach() for n, p in self.model.named_parameters() if p.requires_grad}
        return self.model.state_dict()

    def _save(self, hooks: Hooks, started: float) -> None:
        if self.checkpoint is None:
            return
        # Every rank's random state (its own dropout masks), gathered before rank 0 writes.
        rngs = self.strategy.gather(rng_state(self.generator))
        if not self.is_main:
            return
        st = self.state
        self.checkpoint.save(
            {
                "engine": ENGINE_FORMAT,
                "model": self._weights(),
                "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(),
                "rng": rngs[0],
                "rank_rngs": rngs[1:],
                "progress": {
                    "step": st.step,
                    "epochs": st.epochs,
                    "in_epoch": st.in_epoch,
                    "sums": st.sums,
                    "rows": st.rows,
                    "best_score": None if st.best is None else st.best_score,
                    "best_epoch": st.best_epoch,
                    "bad_epochs": st.bad_epochs,
                    "stopped": st.stopped,
                    "seconds": st.seconds + time.perf_counter() - started,
                },
                "best": st.best,
                "epoch_rng": st.epoch_rng,
                "hooks": hooks.save(),
            }
        )

    def _restore(self, hooks: Hooks) -> bool:
        """Load the checkpoint, if any; True when a run was resumed."""
        saved: dict[str, Any] | None = self.checkpoint.load() if self.checkpoint else None
        if saved is None or saved.get("engine") != ENGINE_FORMAT:
            return False
        self._load_weights(saved["model"])
        self.opt.load_state_dict(saved["optimizer"])
        self.sched.load_state_dict(saved["scheduler"])
        self._now_rng = self._own_rng(saved)
        set_rng_state(self._now_rng, self.generator)
        p = saved["progress"]
        best_score = p["best_score"]
        self.state = _State(
            step=int(p["step"]),
            epochs=int(p["epochs"]),
            in_epoch=int(p["in_epoch"]),
            sums={k: float(v) for k, v in p["sums"].items()},
            rows=int(p["rows"]),
            best=saved["best"],
            best_score=-math.inf if best_score is None else float(best_score),
            best_epoch=int(p["best_epoch"]),
            bad_epochs=int(p["bad_epochs"]),
            stopped=bool(p["stopped"]),
            seconds=float(p["seconds"]),
            epoch_rng=saved["epoch_rng"],
        )
        hooks.load(saved["hooks"])
        return True

    def _own_rng(self, saved: dict[str, Any]) -> dict[str, Any]:
        """This rank's saved random state; rank 0's when the checkpoint came from another
        number of ranks (then only a run without dropout resumes to the very same numbers)."""
        others = saved.get("rank_rngs") or []
        rank, world = self.strategy.rank, self.strategy.world
        if rank == 0 or len(others) != world - 1:
            return dict(saved["rng"])
        return dict(others[rank - 1])

    def _load_weights(self, weights: dict[str, Tensor]) -> None:
        if not self.trainable_only:
            self.model.load_state_dict(weights)
            return
        params = {n: p for n, p in self.model.named_parameters() if p.requires_grad}
        missing = set(params) - set(weights)
        if missing:
            where = self.checkpoint.dir if self.checkpoint is not None else "the checkpoint"
            raise DataError(f"checkpoint lacks {sorted(missing)[:3]}...; remove {where}")
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(weights[n])

    def _result(self, result: FitResult, started: float) -> FitResult:
        st = self.state
        result.steps, result.epochs = st.step, st.epochs
        result.best_epoch = st.best_epoch
        result.best_score = st.best_score if st.best is not None else float("nan")
        result.stopped_by_time = self._stopped_by_time
        result.stopped_early = st.stopped
        result.seconds = st.seconds + time.perf_counter() - started
        return result
