"""Shared fixtures: the small test data, bundled spaces and a tiny valid config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TINY_DATA = REPO / "data" / "fashion-mnist" / "fmnist-2k-500.npz"

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny batches run fastest on one thread, the more so on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_config_dict() -> dict:
    return {"seed": 0, "space": "fmnist",
            "data": {"dataset": "fashion_mnist", "source": str(TINY_DATA), "search_holdout": 0.2}}
