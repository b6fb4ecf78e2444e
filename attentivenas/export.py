"""Standalone models out of a supernet: BN-recalibrated weights, ONNX, torch.export, and their evaluation.

An exported directory needs neither the supernet nor the search space file: `subnet.json` carries the
subnet, its cost, the resolution mode and the space spec, so `load_exported` rebuilds the StaticSubnet
and loads `model_state.pt`. `model.onnx` runs in ONNX Runtime and `model.pt2` (a `torch.export`
ExportedProgram) in plain torch, neither needing this package; TorchScript (`model.ts`) is optional,
since torch marks it deprecated. Every export is checked in ONNX Runtime against the PyTorch model on
the evaluated split (same top-1, logits within `ONNX_LOGIT_TOLERANCE`) before it is written.

ONNX comes from the TorchScript-based `torch.onnx.export(dynamo=False)`: it is deterministic and an
order of magnitude faster than the dynamo exporter on CPU; the dynamo exporter gives the same
logits, and is the switch to make when torch removes the other.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
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
ONNX_FILE = "model.onnx"
EXPORTED_PROGRAM_FILE = "model.pt2"
TORCHSCRIPT_FILE = "model.ts"
EVALUATION_FILE = "evaluation.json"
ONNX_OPSET = 17
ONNX_INPUT, ONNX_OUTPUT = "images", "logits"
ONNX_LOGIT_TOLERANCE = 1e-4


class ExportError(UserInputError):
    """An exported model directory is missing files or cannot be read."""


class ExportMismatchError(RuntimeError):
    """The ONNX model disagrees with the PyTorch model it was exported from."""


def _example_images(space: SearchSpace) -> torch.Tensor:
    """A batch of two: `torch.export` specializes a batch dimension of one to a constant."""
    return torch.zeros(2, space.in_channels, space.base_resolution, space.base_resolution)


def _onnx(model: StaticSubnet, example: torch.Tensor) -> bytes:
    """The model as ONNX with a free batch dimension; images come at the space's base resolution."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(model, (example,), buffer, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
                          dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}})
    return buffer.getvalue()


def _exported_program(model: StaticSubnet, example: torch.Tensor) -> bytes:
    program = torch.export.export(model, (example,), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    for node in program.graph.nodes:  # source paths of this checkout would make the file machine-specific
        node.meta.pop("stack_trace", None)
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def _torchscript(model: StaticSubnet) -> bytes:
    """`torch.jit.script` of `model`, serialized: unlike tracing, scripting keeps the resolution adaptation."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.*deprecated")
        torch.jit.save(torch.jit.script(model), buffer)
    return buffer.getvalue()


def onnx_session(model: bytes | str | Path) -> onnxruntime.InferenceSession:
    """A CPU ONNX Runtime session for a serialized model or a `model.onnx` path."""
    return onnxruntime.InferenceSession(model if isinstance(model, bytes) else str(model),
                                        providers=["CPUExecutionProvider"])


@torch.no_grad()
def verify_onnx(session: onnxruntime.InferenceSession, model: torch.nn.Module,
                batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, float]:
    """(ONNX Runtime top-1 in percent, largest logit difference to `model`) over `batches`.

    Raises ExportMismatchError when a logit differs by more than `ONNX_LOGIT_TOLERANCE` or the two
    predict different classes for an image whose two classes PyTorch does not tie within that
    tolerance (a near-tie may flip under float rounding: seen once in 3 x 7 exported models).
    """
    model.eval()
    correct, seen, largest = 0, 0, 0.0
    for images, labels in batches:
        images, labels = images.cpu(), labels.cpu()
        expected = model(images).numpy()
        logits = session.run([ONNX_OUTPUT], {ONNX_INPUT: images.numpy()})[0]
        largest = max(largest, float(np.abs(logits - expected).max()))
        predicted, wanted = logits.argmax(1), expected.argmax(1)
        rows = np.flatnonzero(predicted != wanted)
        margins = expected[rows, wanted[rows]] - expected[rows, predicted[rows]]
        if largest > ONNX_LOGIT_TOLERANCE or (margins > ONNX_LOGIT_TOLERANCE).any():
            raise ExportMismatchError(f"ONNX Runtime logits differ from PyTorch's by {largest:.3g} "
                                      f"(tolerance {ONNX_LOGIT_TOLERANCE:g}) or in a predicted class")
        correct += int((logits.argmax(1) == labels.numpy()).sum())
        seen += labels.numel()
    return 100.0 * correct / max(seen, 1), largest


def export_subnet(supernet: Supernet, subnet: Subnet, evaluator: SubnetEvaluator, out_dir: str | Path,
                  torchscript: bool = False) -> EvalResult:
    """Recalibrate `subnet` with the evaluator's calibration data, evaluate it once on its split, save it.

    The ONNX model is checked against the PyTorch one (on CPU, image by image) on the same split before
    anything is written.
    """
    out_dir = Path(out_dir)
    space = supernet.space
    model = evaluator.calibrate(supernet, subnet)
    top1, loss, seen = evaluator.score(model)
    cost = count(space, subnet)
    result = EvalResult(top1=top1, loss=loss, images=seen, mflops=cost.mflops, params_m=cost.params_m)
    model = model.cpu().eval()
    example = _example_images(space)
    onnx_model = _onnx(model, example)
    onnx.checker.check_model(onnx.load_from_string(onnx_model), full_check=True)
    onnx_top1, _ = verify_onnx(onnx_session(onnx_model), model, evaluator.eval_batches())
    write_json(out_dir / SUBNET_FILE, {**subnet.to_dict(), "mflops": cost.mflops, "params_m": cost.params_m,
                                       "resolution_mode": supernet.resolution_mode, "space": space.to_dict()})
    save_torch(out_dir / STATE_FILE, model.state_dict())
    atomic_write_bytes(out_dir / ONNX_FILE, onnx_model)
    atomic_write_bytes(out_dir / EXPORTED_PROGRAM_FILE, _exported_program(model, example))
    if torchscript:
        atomic_write_bytes(out_dir / TORCHSCRIPT_FILE, _torchscript(model))
    write_json(out_dir / EVALUATION_FILE, {"split": evaluator.split, **result.as_dict(),
                                           "calibration_images": evaluator.calibration_images,
                                           "onnx_runtime_top1": onnx_top1,
                                           "onnx_logit_tolerance": ONNX_LOGIT_TOLERANCE})
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


def _exported_file(directory: str | Path, name: str) -> Path:
    path = Path(directory) / name
    if not path.is_file():
        raise ExportError(f"{path} does not exist; export the model again")
    return path


def load_exported(directory: str | Path, device: torch.device | str = "cpu") -> StaticSubnet:
    """The exported StaticSubnet in eval mode, rebuilt from `subnet.json` alone: no supernet needed."""
    space, subnet, record = read_exported_subnet(directory)
    state_path = _exported_file(directory, STATE_FILE)
    model = StaticSubnet(space, subnet, record["resolution_mode"])
    model.load_state_dict(torch.load(state_path, map_location="cpu", weights_only=True))
    return model.to(device).eval()


def load_exported_program(directory: str | Path) -> torch.export.ExportedProgram:
    return torch.export.load(_exported_file(directory, EXPORTED_PROGRAM_FILE))


def load_torchscript(directory: str | Path, device: torch.device | str = "cpu") -> torch.jit.ScriptModule:
    path = _exported_file(directory, TORCHSCRIPT_FILE)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.*deprecated")
        return torch.jit.load(path, map_location=device).eval()
