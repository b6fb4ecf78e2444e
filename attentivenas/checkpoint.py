"""Supernet checkpoints: one format for resumable training state and for finished supernets.

A checkpoint records its search space, so loading it against a different space fails with a message
instead of a shape error deep inside torch. Loading never runs code from the file: torch's restricted
unpickler accepts tensors, plain containers and numbers, and the few numpy types of numpy's RNG state.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attentivenas.errors import UserInputError
from attentivenas.io import save_torch
from attentivenas.space import SearchSpace
from attentivenas.supernet import Supernet

FORMAT_VERSION = 1
# numpy's legacy RNG state (resume checkpoints) holds a uint32 array; nothing else beyond torch's defaults.
SAFE_NUMPY_GLOBALS = [np._core.multiarray._reconstruct, np.ndarray, np.dtype, np.dtypes.UInt32DType]


class CheckpointError(UserInputError):
    """A checkpoint is missing, unreadable or belongs to another search space."""


def supernet_state(supernet: Supernet, **extra: Any) -> dict[str, Any]:
    return {"format": FORMAT_VERSION, "space": supernet.space.to_dict(),
            "resolution_mode": supernet.resolution_mode, "supernet": supernet.state_dict(), **extra}


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    save_torch(path, state)


def load_checkpoint(path: str | Path, space: SearchSpace | None = None) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`; check it belongs to `space` when given."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist: train a supernet first "
                              "(python -m attentivenas train, or snakemake --cores all supernet)")
    try:
        with torch.serialization.safe_globals(SAFE_NUMPY_GLOBALS), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns of pickle protocols before refusing a foreign file
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"checkpoint {path} holds objects other than tensors, numbers and plain "
                              f"containers, which are never loaded ({_reason(err) or 'not a checkpoint'}); "
                              "use a checkpoint written by attentivenas") from None
    except Exception as err:  # torch raises many types for a corrupt or foreign file
        raise CheckpointError(f"checkpoint {path} cannot be read ({_reason(err)}); "
                              "delete it and retrain") from None
    required = ("format", "space", "resolution_mode", "supernet")
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION or not all(k in state for k in required):
        raise CheckpointError(f"{path} is not an attentivenas supernet checkpoint (format {FORMAT_VERSION}, "
                              f"keys {', '.join(required)})")
    if space is not None and state["space"] != space.to_dict():
        trained_on = state["space"].get("name") if isinstance(state["space"], dict) else None
        raise CheckpointError(f"checkpoint {path} was trained on search space {trained_on!r}, "
                              f"but the config's space is {space.name!r} ({space.source}); use the matching "
                              "config key 'space' or the matching checkpoint")
    return state


def _reason(err: Exception) -> str:
    """What is wrong, from a torch error without torch's advice (which may be to load the file unsafely)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if isinstance(err, pickle.UnpicklingError):
        refused = next((line for line in lines if "GLOBAL" in line), "")
        return refused.removeprefix("WeightsUnpickler error: ").split(" was not an allowed global")[0]
    return lines[0] if lines else type(err).__name__


def restore_weights(supernet: Supernet, state: dict[str, Any], source: str | Path) -> None:
    """Load a checkpoint's weights (from `load_checkpoint`) into a supernet built for the same mode."""
    if state["resolution_mode"] != supernet.resolution_mode:
        raise CheckpointError(f"checkpoint {source} was trained with resolution_mode {state['resolution_mode']!r}, "
                              f"config key 'resolution_mode' says {supernet.resolution_mode!r}")
    supernet.load_state_dict(state["supernet"])


def load_supernet(path: str | Path, space: SearchSpace, device: torch.device | str = "cpu",
                  resolution_mode: str | None = None) -> Supernet:
    """A supernet with the checkpoint's weights, ready for evaluation."""
    state = load_checkpoint(path, space)
    supernet = Supernet(space, resolution_mode=resolution_mode or state["resolution_mode"])
    restore_weights(supernet, state, path)
    return supernet.to(device).eval()
