"""Standalone models out of a supernet: BN-recalibrated weights, TorchScript, and the evaluation they got.

An exported directory needs neither the supernet nor the search space file: `subnet.json` carries the
subnet, its cost, the resolution mode and the space spec, so `load_exported` rebuilds the StaticSubnet
and loads `model_state.pt`; `model.ts` runs without this package at all.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import torch

from attentivenas.errors import UserInputError
from attentivenas.evaluation import EvalResult, SubnetEvaluator
from attentivenas.flops import count
from attentivenas.io import atomic_write_bytes, read_json, save_torch, write_json
from attentivenas.space import SearchSpace, Subnet
from attentivenas.static import StaticSubnet
from attentivenas.supernet import Supernet

SUBNET_FILE = "subnet.json"
STATE_FILE = "model_state.pt"
TORCHSCRIPT_FILE = "model.ts"
EVALUATION_FILE = "evaluation.json"


class ExportError(UserInputError):
    """An exported model directory is missing files or cannot be read."""


def _torchscript(model: StaticSubnet) -> bytes:
    """`torch.jit.script` of `model`, serialized: unlike tracing, scripting keeps the resolution adaptation.

    Recent torch marks TorchScript deprecated; it is still the one file that runs without Python code.
    """
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.*deprecated")
        torch.jit.save(torch.jit.script(model), buffer)
    return buffer.getvalue()


def export_subnet(supernet: Supernet, subnet: Subnet, evaluator: SubnetEvaluator,
                  out_dir: str | Path) -> EvalResult:
    """Recalibrate `subnet` with the evaluator's calibration data, evaluate it once on its split, save it."""
    out_dir = Path(out_dir)
    space = supernet.space
    model = evaluator.calibrate(supernet, subnet)
    top1, loss, seen = evaluator.score(model)
    cost = count(space, subnet)
    result = EvalResult(top1=top1, loss=loss, images=seen, mflops=cost.mflops, params_m=cost.params_m)
    model = model.cpu().eval()
    write_json(out_dir / SUBNET_FILE, {**subnet.to_dict(), "mflops": cost.mflops, "params_m": cost.params_m,
                                       "resolution_mode": supernet.resolution_mode, "space": space.to_dict()})
    save_torch(out_dir / STATE_FILE, model.state_dict())
    atomic_write_bytes(out_dir / TORCHSCRIPT_FILE, _torchscript(model))
    write_json(out_dir / EVALUATION_FILE, {"split": evaluator.split, **result.as_dict(),
                                           "calibration_images": evaluator.calibration_images})
    return result


def read_exported_subnet(directory: str | Path) -> tuple[SearchSpace, Subnet, dict[str, Any]]:
    """The space, the subnet and the full `subnet.json` record of an exported model directory."""
    path = Path(directory) / SUBNET_FILE
    if not path.is_file():
        raise ExportError(f"{path} does not exist: {directory} is not an exported model "
                          "(python -m attentivenas export writes one)")
    record = read_json(path)
    space = SearchSpace(record["space"], source=str(path))
    return space, space.validate(record), record


def load_exported(directory: str | Path, device: torch.device | str = "cpu") -> StaticSubnet:
    """The exported StaticSubnet in eval mode, rebuilt from `subnet.json` alone: no supernet needed."""
    space, subnet, record = read_exported_subnet(directory)
    state_path = Path(directory) / STATE_FILE
    if not state_path.is_file():
        raise ExportError(f"{state_path} does not exist; export the model again")
    model = StaticSubnet(space, subnet, record["resolution_mode"])
    model.load_state_dict(torch.load(state_path, map_location="cpu", weights_only=True))
    return model.to(device).eval()


def load_torchscript(directory: str | Path, device: torch.device | str = "cpu") -> torch.jit.ScriptModule:
    path = Path(directory) / TORCHSCRIPT_FILE
    if not path.is_file():
        raise ExportError(f"{path} does not exist; export the model again")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.*deprecated")
        return torch.jit.load(path, map_location=device).eval()
