"""Supernet checkpoints: one format for resumable training state and for finished supernets.

A checkpoint records its search space, so loading it against a different space fails with a message
instead of a shape error deep inside torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from attentivenas.errors import UserInputError
from attentivenas.io import save_torch
from attentivenas.space import SearchSpace
from attentivenas.supernet import Supernet

FORMAT_VERSION = 1


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
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a corrupt or foreign file
        raise CheckpointError(f"checkpoint {path} cannot be read ({err}); delete it and retrain") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION or "supernet" not in state:
        raise CheckpointError(f"{path} is not an attentivenas supernet checkpoint (format {FORMAT_VERSION})")
    if space is not None and state["space"] != space.to_dict():
        raise CheckpointError(f"checkpoint {path} was trained on search space {state['space'].get('name')!r}, "
                              f"but the config's space is {space.name!r} ({space.source}); use the matching "
                              "config key 'space' or the matching checkpoint")
    return state


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
