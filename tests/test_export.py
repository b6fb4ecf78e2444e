import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from attentivenas.__main__ import main
from attentivenas.checkpoint import save_checkpoint, supernet_state
from attentivenas.config import validate_config
from attentivenas.data import build_splits
from attentivenas.evaluation import SubnetEvaluator, measure
from attentivenas.export import (
    ONNX_LOGIT_TOLERANCE,
    ExportError,
    ExportMismatchError,
    export_subnet,
    load_exported,
    load_exported_program,
    load_torchscript,
    onnx_session,
    read_exported_subnet,
    verify_onnx,
)
from attentivenas.flops import count
from attentivenas.io import read_json
from attentivenas.space import SearchSpace
from attentivenas.specs import EvaluationSpec
from attentivenas.static import StaticSubnet
from attentivenas.supernet import Supernet

TINY_DATA = Path(__file__).resolve().parents[1] / "data" / "fashion-mnist" / "fmnist-2k-500.npz"
SETTINGS = EvaluationSpec(calibration_images=32, calibration_batch_size=32, batch_size=100)


@pytest.fixture(scope="module")
def space():
    return SearchSpace.load("fmnist")


@pytest.fixture(scope="module")
def supernet(space):
    torch.manual_seed(0)
    net = Supernet(space)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5)
    return net.eval()


@pytest.fixture(scope="module")
def evaluator():
    config = validate_config({"space": "fmnist", "data": {"dataset": "fashion_mnist", "source": str(TINY_DATA)}})
    splits = build_splits(config["data"], image_size=28)
    return SubnetEvaluator(splits, "test", SETTINGS, torch.device("cpu"), seed=0, max_images=100)


@pytest.fixture(scope="module")
def exported(space, supernet, evaluator, tmp_path_factory):
    directory = tmp_path_factory.mktemp("exported")
    subnet = space.sample_uniform(random.Random(4))
    return directory, subnet, export_subnet(supernet, subnet, evaluator, directory, torchscript=True)


def test_exported_models_reproduce_the_evaluation_exactly(exported, supernet, evaluator):
    directory, subnet, result = exported
    assert result == evaluator.evaluate(supernet, subnet)
    record = read_json(directory / "evaluation.json")
    assert record["split"] == "test" and record["top1"] == result.top1 and record["images"] == 100
    state_model = load_exported(directory)
    assert isinstance(state_model, StaticSubnet) and not state_model.training
    assert measure(state_model, evaluator.eval_batches()) == (result.top1, result.loss, result.images)
    scripted = load_torchscript(directory)
    top1, loss, seen = measure(scripted, evaluator.eval_batches())
    assert (top1, seen) == (result.top1, result.images) and loss == pytest.approx(result.loss, rel=1e-6)
    program = load_exported_program(directory).module()
    with torch.no_grad():
        for images, _ in evaluator.eval_batches():
            assert torch.allclose(program(images), state_model(images), rtol=0, atol=1e-5)
    calibrated = evaluator.calibrate(supernet, subnet)
    for name, value in calibrated.state_dict().items():
        assert torch.equal(state_model.state_dict()[name], value), name


def test_onnx_model_matches_pytorch_on_the_test_split(exported, evaluator):
    directory, _, result = exported
    session = onnx_session(directory / "model.onnx")
    top1, largest = verify_onnx(session, load_exported(directory), evaluator.eval_batches())
    assert top1 == result.top1 == read_json(directory / "evaluation.json")["onnx_runtime_top1"]
    assert largest <= ONNX_LOGIT_TOLERANCE
    images = torch.randn(3, 1, 28, 28)
    logits = session.run(["logits"], {"images": images.numpy()})[0]
    assert logits.shape == (3, 10)
    assert torch.allclose(torch.from_numpy(logits), load_exported(directory)(images), atol=ONNX_LOGIT_TOLERANCE)


def test_onnx_verification_catches_a_different_model(exported, evaluator):
    directory, _, _ = exported
    session = onnx_session(directory / "model.onnx")
    other = load_exported(directory)
    with torch.no_grad():
        other.classifier.bias.add_(1e-3)
    with pytest.raises(ExportMismatchError, match="tolerance"):
        verify_onnx(session, other, evaluator.eval_batches())


class _FixedSession:
    """Stands in for an ONNX Runtime session that returns fixed logits."""

    def __init__(self, logits: np.ndarray):
        self.logits = logits

    def run(self, outputs, inputs):
        return [self.logits]


class _FixedModel(torch.nn.Module):
    def __init__(self, logits: np.ndarray):
        super().__init__()
        self.logits = torch.from_numpy(logits)

    def forward(self, images):
        return self.logits


def test_onnx_verification_accepts_a_near_tie_flipped_by_rounding_but_not_a_real_disagreement():
    expected = np.array([[2.0, 2.0 - 1e-6, 0.0], [0.0, 1.0, 3.0]], dtype=np.float32)
    batches = [(torch.zeros(2, 1, 4, 4), torch.tensor([0, 2]))]
    tie_flipped = expected.copy()
    tie_flipped[0, :2] = [2.0 - 1e-6, 2.0]  # within the tolerance: the second class now leads
    top1, largest = verify_onnx(_FixedSession(tie_flipped), _FixedModel(expected), batches)
    assert top1 == 50.0 and largest <= ONNX_LOGIT_TOLERANCE
    apart = expected.copy()
    apart[0, 1] = 2.0 - 1.5 * ONNX_LOGIT_TOLERANCE  # PyTorch's runner-up, 1.5x the tolerance behind
    disagreeing = apart.copy()
    disagreeing[0, :2] = [2.0 - 0.9 * ONNX_LOGIT_TOLERANCE, 2.0 - 0.6 * ONNX_LOGIT_TOLERANCE]
    with pytest.raises(ExportMismatchError, match="predicted class"):  # every logit within the tolerance
        verify_onnx(_FixedSession(disagreeing), _FixedModel(apart), batches)


def test_exports_are_byte_identical_when_repeated(exported, supernet, evaluator, tmp_path):
    directory, subnet, _ = exported
    export_subnet(supernet, subnet, evaluator, tmp_path, torchscript=True)
    for name in ("subnet.json", "model_state.pt", "model.onnx", "model.pt2", "evaluation.json"):
        assert (tmp_path / name).read_bytes() == (directory / name).read_bytes(), name
    assert b"attentivenas/static.py" not in (directory / "model.pt2").read_bytes(), "no source path of this checkout"


def test_subnet_json_carries_cost_and_space(space, exported):
    directory, subnet, _ = exported
    record = read_json(directory / "subnet.json")
    cost = count(space, subnet)
    assert (record["mflops"], record["params_m"]) == (cost.mflops, cost.params_m)
    assert record["resolution_mode"] == "resize"
    assert space.load_subnet(directory / "subnet.json") == subnet
    loaded_space, loaded_subnet, _ = read_exported_subnet(directory)
    assert loaded_subnet == subnet and loaded_space.to_dict() == space.to_dict()
    assert sum(p.numel() for p in load_exported(directory).parameters()) == round(cost.params_m * 1e6)


def test_load_exported_names_missing_files(tmp_path):
    with pytest.raises(ExportError, match="subnet.json does not exist"):
        load_exported(tmp_path)


def test_export_command(space, supernet, tmp_path, tiny_config_dict):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**tiny_config_dict, "evaluation": SETTINGS.to_dict()}))
    checkpoint = tmp_path / "supernet.pt"
    save_checkpoint(checkpoint, supernet_state(supernet))
    subnet_file = tmp_path / "subnet.json"
    subnet = space.min_subnet()
    subnet_file.write_text(json.dumps(subnet.to_dict()))
    out = tmp_path / "exported"
    assert main(["export", "--config", str(config), "--checkpoint", str(checkpoint), "--subnet", str(subnet_file),
                 "--out-dir", str(out), "--split", "search", "--threads", "1"]) == 0
    assert {p.name for p in out.iterdir()} == {"subnet.json", "model_state.pt", "model.onnx", "model.pt2",
                                               "evaluation.json"}
    record = read_json(out / "evaluation.json")
    assert record["split"] == "search" and record["images"] == 400
    assert load_exported(out).resolution == subnet.resolution
    assert main(["export", "--config", str(config), "--checkpoint", str(tmp_path / "none.pt"),
                 "--subnet", str(subnet_file), "--out-dir", str(tmp_path / "never")]) == 2
    assert not (tmp_path / "never").exists()
