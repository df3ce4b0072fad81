from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _one_torch_thread() -> None:
    """Torch is faster with one thread on this 2-core machine (no-op without torch)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
