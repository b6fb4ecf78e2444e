"""Mixed precision of the training step (config key 'training.precision').

bf16 and fp16 run the forwards under autocast; fp16 also scales the loss so small gradients survive
the narrower exponent. fp32 (the default) leaves everything as it is, so CPU runs stay as they were.
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast of `device`'s type to the precision's dtype; nothing for fp32."""
    dtype = PRECISIONS[precision]
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """Dynamic loss scaling for fp16; a pass-through scaler (scale 1, plain optimizer step) otherwise."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
