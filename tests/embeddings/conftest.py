"""One torch thread for these tests: their tensors are tiny, and on a shared CPU a second
OpenMP thread spends its time waiting at barriers (a 100x slowdown was measured)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
