import json
import random
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from attentivenas import evaluation
from attentivenas.__main__ import main
from attentivenas.checkpoint import save_checkpoint, supernet_state
from attentivenas.config import validate_config
from attentivenas.data import build_splits
from attentivenas.evaluation import SubnetEvaluator, measure, recalibrate_bn
from attentivenas.space import SearchSpace
from attentivenas.specs import EvaluationSpec
from attentivenas.supernet import Supernet

TINY_DATA = Path(__file__).resolve().parents[1] / "data" / "fashion-mnist" / "fmnist-2k-500.npz"
SETTINGS = EvaluationSpec(calibration_images=64, calibration_batch_size=32, batch_size=64)


def _supernet(space: SearchSpace, seed: int = 0) -> Supernet:
    """An untrained supernet whose BN affine parameters are random, so subnets differ from each other."""
    torch.manual_seed(seed)
    net = Supernet(space)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.fixture(scope="module")
def space():
    return SearchSpace.load("fmnist")


@pytest.fixture(scope="module")
def splits(space):
    config = validate_config({"space": "fmnist", "data": {"dataset": "fashion_mnist", "source": str(TINY_DATA)}})
    return build_splits(config["data"], image_size=space.base_resolution)


def test_recalibration_equals_statistics_of_calibration_activations():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3)
    model = nn.Sequential(conv, nn.BatchNorm2d(4, momentum=0.5))
    model[1].running_mean.fill_(7.0)
    batches = [torch.randn(8, 3, 6, 6) * 2 + 1 for _ in range(3)]
    recalibrate_bn(model, batches)
    with torch.no_grad():
        activations = [conv(b).transpose(0, 1).reshape(4, -1) for b in batches]
    all_activations = torch.cat(activations, dim=1)
    assert not model.training
    assert torch.allclose(model[1].running_mean, all_activations.mean(1), atol=1e-5)
    # cumulative average (momentum None): every batch's unbiased variance weighs the same
    expected_var = torch.stack([a.var(1, unbiased=True) for a in activations]).mean(0)
    assert torch.allclose(model[1].running_var, expected_var, atol=1e-4)
    recalibrate_bn(model, batches[:1])
    assert torch.allclose(model[1].running_var, activations[0].var(1, unbiased=True), atol=1e-4)
    assert torch.allclose(model[1].running_mean, activations[0].mean(1), atol=1e-5)


def test_same_subnet_twice_and_fresh_evaluator_give_identical_results(space, splits):
    net = _supernet(space)
    subnet = space.min_subnet()
    evaluator = SubnetEvaluator(splits, "search", SETTINGS, torch.device("cpu"), seed=3, max_images=60)
    first = evaluator.evaluate(net, subnet)
    assert evaluator.evaluate(net, subnet) == first
    again = SubnetEvaluator(splits, "search", SETTINGS, torch.device("cpu"), seed=3, max_images=60)
    assert again.evaluate_many(net, [subnet], progress=False) == [first]
    assert first.images == 60 and 0 <= first.top1 <= 100 and first.loss > 0


def test_calibration_is_augmented_training_data_fixed_by_seed(space, splits):
    evaluator = SubnetEvaluator(splits, "search", SETTINGS, torch.device("cpu"), seed=3, max_images=10)
    cached = torch.cat(list(evaluator.calibration_batches()))
    assert cached.shape == (SETTINGS.calibration_images, 1, 28, 28)
    assert evaluator.calibration_set.transform is splits.train.transform
    train_indices = set(splits.train.indices.tolist())
    assert set(evaluator.calibration_set.indices.tolist()) <= train_indices
    plain = torch.stack([splits.search.transform(splits.train.base[int(i)][0])
                         for i in evaluator.calibration_set.indices])
    assert not torch.equal(cached, plain)  # random crop / flip applied
    drawn_again = torch.cat(list(evaluator._draw_calibration()))
    assert torch.equal(cached, drawn_again)
    other_seed = SubnetEvaluator(splits, "search", SETTINGS, torch.device("cpu"), seed=4, max_images=10)
    assert not torch.equal(cached, torch.cat(list(other_seed.calibration_batches())))


def test_data_above_the_cache_limit_gives_the_same_results(space, splits, monkeypatch):
    net = _supernet(space)
    subnet = space.sample_uniform(random.Random(2))
    cached = SubnetEvaluator(splits, "search", SETTINGS, torch.device("cpu"), seed=0, max_images=50)
    monkeypatch.setattr(evaluation, "CACHE_LIMIT_BYTES", 0)
    streamed = SubnetEvaluator(splits, "search", SETTINGS, torch.device("cpu"), seed=0, max_images=50)
    assert streamed.cached is None and streamed.cached_calibration is None
    assert streamed.evaluate(net, subnet) == cached.evaluate(net, subnet)


@pytest.mark.parametrize("split", ["search", "test"])
def test_evaluates_on_the_named_split(splits, split):
    evaluator = SubnetEvaluator(splits, split, SETTINGS, torch.device("cpu"), seed=0)
    labels = torch.cat([y for _, y in evaluator.eval_batches()]).tolist()
    assert labels == getattr(splits, split).targets
    images = torch.cat([x for x, _ in evaluator.eval_batches()])
    assert torch.equal(images[5], getattr(splits, split)[5][0])


def test_unknown_split_is_refused(splits):
    with pytest.raises(ValueError, match="split must be one of"):
        SubnetEvaluator(splits, "validation", SETTINGS, torch.device("cpu"), seed=0)


def test_extracted_model_evaluation_equals_supernet_evaluation(space, splits):
    net = _supernet(space)
    subnet = space.sample_uniform(random.Random(7))
    evaluator = SubnetEvaluator(splits, "search", SETTINGS, torch.device("cpu"), seed=0, max_images=60)
    result = evaluator.evaluate(net, subnet)
    static = evaluator.calibrate(net, subnet)
    supernet_state_dict = net.state_dict()
    with torch.no_grad():
        for name, value in static.state_dict().items():
            if name.endswith(("running_mean", "running_var")):
                supernet_state_dict[name][: len(value)].copy_(value)
    net.set_active_subnet(subnet)
    top1, loss, seen = measure(net, evaluator.eval_batches())
    assert top1 == result.top1 and seen == result.images
    assert loss == pytest.approx(result.loss, rel=1e-5)


def test_calibration_time_is_recorded_apart(space, splits):
    evaluator = SubnetEvaluator(splits, "search", SETTINGS, torch.device("cpu"), seed=0, max_images=50)
    assert evaluator.calibration_seconds == 0.0
    evaluator.evaluate(_supernet(space), space.min_subnet())
    first = evaluator.calibration_seconds
    assert first > 0 and evaluator.measure_seconds > 0
    assert evaluator.images_processed == SETTINGS.calibration_images + 50
    evaluator.evaluate(_supernet(space), space.min_subnet())
    assert evaluator.calibration_seconds > first


# ---------------------------------------------------------------- python -m attentivenas evaluate

@pytest.fixture
def cli_files(tmp_path, tiny_config_dict, space):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**tiny_config_dict, "evaluation": SETTINGS.to_dict()}))
    checkpoint = tmp_path / "supernet.pt"
    save_checkpoint(checkpoint, supernet_state(_supernet(space)))
    subnet = tmp_path / "subnet.json"
    subnet.write_text(space.min_subnet().to_json())
    return config, checkpoint, subnet


def test_evaluate_command_prints_json(cli_files, capsys, space, splits):
    config, checkpoint, subnet = cli_files
    assert main(["evaluate", "--config", str(config), "--checkpoint", str(checkpoint), "--subnet", str(subnet),
                 "--split", "test", "--json", "--threads", "1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["split"] == "test" and printed["images"] == len(splits.test)
    expected = SubnetEvaluator(splits, "test", SETTINGS, torch.device("cpu"), seed=0).evaluate(
        _supernet(space), space.min_subnet())
    assert printed["top1"] == expected.top1 and printed["mflops"] == pytest.approx(expected.mflops)
    assert main(["evaluate", "--config", str(config), "--checkpoint", str(checkpoint),
                 "--subnet", str(subnet)]) == 0
    assert "split search" in capsys.readouterr().out


def test_evaluate_command_errors_before_work(cli_files, tmp_path, capsys):
    config, checkpoint, subnet = cli_files
    base = ["evaluate", "--config", str(config)]
    assert main([*base, "--checkpoint", str(tmp_path / "missing.pt"), "--subnet", str(subnet)]) == 2
    assert "does not exist" in capsys.readouterr().err
    foreign = tmp_path / "cifar.pt"
    save_checkpoint(foreign, supernet_state(Supernet(SearchSpace.load("cifar10"))))
    assert main([*base, "--checkpoint", str(foreign), "--subnet", str(subnet)]) == 2
    assert "cifar10" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(subnet.read_text()), "resolution": 30}))
    assert main([*base, "--checkpoint", str(checkpoint), "--subnet", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "resolution" in err and "30" in err and "20, 24, 28, 32" in err


def test_channels_last_and_folded_bn_change_results_only_by_rounding(space, splits):
    net = _supernet(space)
    nchw = SubnetEvaluator(splits, "search", SETTINGS, torch.device("cpu"), seed=0, max_images=200)
    nhwc = SubnetEvaluator(splits, "search", SETTINGS, torch.device("cpu"), seed=0, max_images=200,
                           channels_last=True)
    images, _ = next(iter(nhwc.eval_batches()))
    assert images.is_contiguous(memory_format=torch.channels_last)
    for subnet in (space.min_subnet(), space.max_subnet(), space.sample_uniform(random.Random(4))):
        plain = evaluator_plain(nchw, net, subnet)
        for evaluator in (nchw, nhwc):
            result = evaluator.evaluate(net, subnet)
            assert evaluator.evaluate(net, subnet) == result
            assert abs(result.top1 - plain[0]) <= 0.5 and result.loss == pytest.approx(plain[1], rel=1e-4)


def evaluator_plain(evaluator: SubnetEvaluator, net: Supernet, subnet) -> tuple[float, float, int]:
    """The evaluation without channels_last and without folding BN into the convs."""
    static = net.extract(subnet)
    recalibrate_bn(static, evaluator.calibration_batches())
    return measure(static, evaluator.eval_batches())
