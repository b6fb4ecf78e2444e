"""Process-wide settings every entry point applies the same way: seeds, threads, device."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from attentivenas.errors import UserInputError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_threads(threads: int | None) -> None:
    """Use exactly the cores the caller was given (a Snakemake rule's `threads`)."""
    threads = threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or torch.get_num_threads()
    torch.set_num_threads(threads)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserInputError("config key 'device' is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    return torch.device(name)



def use_channels_last(memory_format: str) -> bool:
    """Config key `memory_format`: `auto` means channels_last, measured faster (benchmarks/results/)."""
    if memory_format not in ("auto", "channels_last", "contiguous"):
        raise ValueError(f"memory_format must be auto, channels_last or contiguous, got {memory_format!r}")
    return memory_format != "contiguous"
