"""Generation on the Ray actor pool that labeling uses (`scale.map_batches_actors`).

Each actor builds the generator once (`make_generator`, on the actor's own device); the
driver sends batches of `(index, prompt)` and places the texts by index. A batch is the
generator's own batch and is seeded by its first index, exactly as `Generator.generate`
seeds its batches, so the texts are those one process writes, whatever the number of
workers (same thread count: each actor runs as many torch threads as CPUs it reserved).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import closing
from functools import partial

from tinystudent.generate.generator import Prompt, make_generator


def _pool_generator(
    backend: str,
    model: str,
    base_url: str | None,
    api_key_env: str,
    batch_size: int,
    device: str,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
) -> Callable[[list[tuple[int, Prompt]]], list[str]]:
    """Runs inside an actor: load the generator once, return the batch function."""
    generator = make_generator(backend, model, base_url, api_key_env, batch_size, device)

    def run(batch: list[tuple[int, Prompt]]) -> list[str]:
        prompts = [p for _, p in batch]
        return generator.generate(prompts, max_new_tokens, temperature, top_p, seed + batch[0][0])

    return run


def generate_on_ray(
    prompts: Sequence[Prompt],
    num_workers: int = 2,
    *,
    backend: str = "transformers",
    model: str = "smollm2-135m",
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    batch_size: int = 8,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_p: float = 0.95,
    seed: int = 0,
    device: str = "cpu",
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float | None = None,
    address: str | None = None,
) -> list[str]:
    """`make_generator(backend, model, ...).generate(prompts, ...)` on
    `num_workers` Ray actors: one text per prompt, in order. A worker asks Ray for
    `gpus_per_worker` GPUs (default: 1 when `device` names cuda, else none), as labeling does."""
    from tinystudent.scale.ray_label import map_batches_actors

    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if device.startswith("cuda") else 0.0
    factory = partial(
        _pool_generator,
        backend,
        model,
        base_url,
        api_key_env,
        batch_size,
        device,
        max_new_tokens,
        temperature,
        top_p,
        seed,
    )
    texts = [""] * len(prompts)
    results = map_batches_actors(
        factory,
        list(enumerate(prompts)),
        num_workers,
        batch_size,
        num_cpus=cpus_per_worker,
        num_gpus=gpus_per_worker,
        address=address,
    )
    with closing(results):
        for offset, _, batch_texts in results:
            texts[offset : offset + len(batch_texts)] = batch_texts
    return texts
