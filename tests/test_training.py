import argparse
import copy
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch.distributed.run import get_args_parser

from attentivenas.__main__ import main
from attentivenas.checkpoint import load_checkpoint, save_checkpoint, supernet_state
from attentivenas.cli.train import relaunch_command
from attentivenas.config import ConfigError, merge, validate_config
from attentivenas.io import read_csv, read_json
from attentivenas.optim import build_optimizer
from attentivenas.precision import grad_scaler
from attentivenas.run_loop import RunDivergedError
from attentivenas.samplers import UniformSampler
from attentivenas.space import SearchSpace
from attentivenas.specs import ExperimentSpec, TrainingSpec
from attentivenas.stages import stage_job
from attentivenas.supernet import Supernet
from attentivenas.training import (
    Trainer,
    build_scheduler,
    distillation_weight,
    sandwich_gradients,
    sandwich_step,
)

FMNIST = SearchSpace.load("fmnist")
REPO = Path(__file__).resolve().parents[1]
RECIPE = TrainingSpec.from_dict(validate_config({"space": "fmnist", "data": {
    "dataset": "fashion_mnist", "source": "data/fashion-mnist/fmnist-2k-500.npz"}})["training"])
"""The schema's training recipe, which each test's settings override."""


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tiny(tiny_config_dict):
    base = merge(tiny_config_dict, {
        "training": {"epochs": 2, "max_steps_per_epoch": 3, "batch_size": 32, "checkpoint_every_steps": 2,
                     "log_every_steps": 1, "validate_images": 100},
        "evaluation": {"calibration_images": 64, "calibration_batch_size": 64, "batch_size": 100},
        "sampler": {"table_size": 500},
        "methods": {"bignas": {"sampler": "uniform"},
                    "bestup": {"sampler": "attentive", "mode": "bestup", "k": 2, "estimator": "loss"}}})

    def make(validated=True, **overrides):
        config = merge(base, overrides)
        return validate_config(config) if validated else config
    return make


def training_job(config, run):
    return stage_job(ExperimentSpec.from_dict(config), "train_supernet", run)


def _settings(**overrides):
    return replace(RECIPE, **{
        "num_arch_training": 4, "label_smoothing": 0.1, "grad_clip_value": 1.0, "lr": 0.1, "batch_size": 256,
        "momentum": 0.9, "nesterov": True, "weight_decay": 1e-5, "epochs": 2, "warmup_epochs": 1,
        "warmup_start_factor": 0.001, "lr_scaling": "linear", "precision": "fp32", "distillation": "kl",
        "distillation_weight": 1.0, "distillation_ramp_steps": 0, "middle_loss_weight": 1.0, **overrides})


def test_sandwich_sums_gradients_of_all_subnets_with_inplace_distillation_then_clips():
    torch.manual_seed(0)
    supernet = Supernet(FMNIST, dropout=0.0, drop_connect=0.0).train()
    images, labels = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    settings = _settings(grad_clip_value=0.01)

    expected = {n: torch.zeros_like(p) for n, p in supernet.named_parameters()}
    middle_sampler = UniformSampler(FMNIST, random.Random(4))

    def add(loss):
        supernet.zero_grad(set_to_none=True)
        loss.backward()
        for n, p in supernet.named_parameters():
            if p.grad is not None:
                expected[n] += p.grad

    supernet.set_active_subnet(FMNIST.max_subnet())
    logits = supernet(images)
    add(F.cross_entropy(logits, labels, label_smoothing=0.1))
    teacher = F.softmax(logits.detach(), 1)
    for subnet in [middle_sampler.sample(), middle_sampler.sample(), FMNIST.min_subnet()]:
        supernet.set_active_subnet(subnet)
        student = F.log_softmax(supernet(images), 1)
        add(-(teacher * student).sum(1).mean())

    supernet.zero_grad(set_to_none=True)
    losses = sandwich_gradients(supernet, supernet, UniformSampler(FMNIST, random.Random(4)), images, labels,
                                settings)
    assert len(losses.loss_mid) == 2 and losses.subnets_mid[0] != losses.subnets_mid[1]
    for n, p in supernet.named_parameters():
        got = p.grad if p.grad is not None else torch.zeros_like(p)
        assert torch.allclose(got, expected[n], atol=1e-6, rtol=1e-4), n

    optimizer = build_optimizer(supernet, settings)
    scheduler = build_scheduler(optimizer, settings, steps_per_epoch=10)
    clipped = []
    optimizer.register_step_pre_hook(lambda *_: clipped.append(
        {n: p.grad.clone() for n, p in supernet.named_parameters() if p.grad is not None}))
    sandwich_step(supernet, supernet, UniformSampler(FMNIST, random.Random(4)), images, labels, settings,
                  optimizer, scheduler)
    assert max(g.abs().max() for g in expected.values()) > 0.01
    for n, grad in clipped[0].items():
        assert torch.allclose(grad, expected[n].clamp(-0.01, 0.01), atol=1e-6), n


def test_distillation_weight_is_zero_without_distillation_and_ramps_linearly():
    assert distillation_weight(_settings(distillation="none", distillation_weight=0.7), step=50) == 0.0
    assert distillation_weight(_settings(distillation_weight=0.7), step=1) == 0.7
    ramp = _settings(distillation_weight=0.5, distillation_ramp_steps=4)
    assert [distillation_weight(ramp, s) for s in (1, 2, 4, 9)] == [0.125, 0.25, 0.5, 0.5]


@pytest.mark.parametrize("distillation, weight, ramp, step, share", [
    ("none", 1.0, 0, 1, 0.0), ("kl", 0.25, 0, 1, 0.25), ("kl", 1.0, 10, 5, 0.5)])
def test_students_mix_label_and_teacher_losses_by_the_distillation_weight(distillation, weight, ramp, step,
                                                                          share):
    torch.manual_seed(1)
    supernet = Supernet(FMNIST, dropout=0.0, drop_connect=0.0).train()
    images, labels = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    settings = _settings(num_arch_training=2, distillation=distillation, distillation_weight=weight,
                         distillation_ramp_steps=ramp)
    with torch.no_grad():
        for parameter in supernet.classifier.parameters():
            parameter.normal_(0.0, 3.0)
    supernet.set_active_subnet(FMNIST.max_subnet())
    teacher = F.softmax(supernet(images).detach(), 1)
    supernet.set_active_subnet(FMNIST.min_subnet())
    logits = supernet(images)
    supervised = F.cross_entropy(logits, labels, label_smoothing=0.1).item()
    distilled = F.cross_entropy(logits, teacher).item()
    assert abs(supervised - distilled) > 0.5

    losses = sandwich_gradients(supernet, supernet, UniformSampler(FMNIST, random.Random(0)), images, labels,
                                settings, step=step)
    assert losses.loss_min == pytest.approx((1 - share) * supervised + share * distilled, rel=1e-5)


def test_middle_loss_weight_scales_only_the_sampled_subnets_gradients():
    torch.manual_seed(2)
    supernet = Supernet(FMNIST, dropout=0.0, drop_connect=0.0).train()
    images, labels = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))

    def gradients(**overrides):
        supernet.zero_grad(set_to_none=True)
        sandwich_gradients(supernet, supernet, UniformSampler(FMNIST, random.Random(3)), images, labels,
                           _settings(distillation="none", **overrides))
        return {n: p.grad.clone() for n, p in supernet.named_parameters() if p.grad is not None}

    extremes = gradients(num_arch_training=2)
    full, half = gradients(num_arch_training=3), gradients(num_arch_training=3, middle_loss_weight=0.5)
    muted = gradients(num_arch_training=3, middle_loss_weight=0.0)
    assert any(not torch.allclose(full[n], extremes[n]) for n in extremes)
    for n, grad in extremes.items():
        assert torch.equal(muted[n], grad), n
        assert torch.allclose(half[n], (full[n] + grad) / 2, atol=1e-6, rtol=1e-4), n


def test_config_rejects_an_unknown_distillation_kind(tiny):
    with pytest.raises(ConfigError, match="training.distillation"):
        tiny(training={"distillation": "alpha-beta"})


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tiny, tmp_path):
    config = tiny()
    whole = Trainer(training_job(config, "bignas"), tmp_path / "whole", progress=False)
    assert {m.momentum for m in whole.supernet.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.0}
    summary = whole.fit()

    class Killed(Exception):
        """Stands in for the process being killed mid-run."""

    def kill_after_step_3(trainer, step):
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        Trainer(training_job(config, "bignas"), tmp_path / "cut", progress=False).fit(on_step=kill_after_step_3)
    assert load_checkpoint(tmp_path / "cut" / "resume.pt")["step"] == 2
    resumed = Trainer(training_job(config, "bignas"), tmp_path / "cut", progress=False)
    assert resumed.resumed and resumed.step == 2
    resumed_summary = resumed.fit()

    final = load_checkpoint(tmp_path / "whole" / "supernet.pt")["supernet"]
    again = load_checkpoint(tmp_path / "cut" / "supernet.pt")["supernet"]
    assert final.keys() == again.keys() and all(torch.equal(final[k], again[k]) for k in final)
    assert resumed_summary["weights_sha256"] == summary["weights_sha256"]
    assert torch.equal(final["stem.bn.running_mean"], torch.zeros_like(final["stem.bn.running_mean"]))
    assert read_csv(tmp_path / "whole" / "epochs.csv") == read_csv(tmp_path / "cut" / "epochs.csv")
    rows = read_csv(tmp_path / "whole" / "metrics.csv")
    assert rows == read_csv(tmp_path / "cut" / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 7)) and all(r["mflops_mid"] for r in rows)
    assert summary["steps"] == 6 and summary["images_processed"] == 192 and summary["sampler"] == {"sampler": "uniform"}


@pytest.mark.parametrize("log_every", [1, 10])
def test_non_finite_loss_stops_with_the_step_subnet_and_loss_and_keeps_the_checkpoint(tiny, tmp_path, log_every):
    """Losses are read on logged steps and before checkpoints: a NaN at step 3 is caught at step 3 or 4."""
    config = tiny(training={"epochs": 1, "max_steps_per_epoch": 5, "log_every_steps": log_every})
    checkpoint = tmp_path / "run" / "resume.pt"
    saved = {}

    def poison_after_checkpoint(trainer, step):
        if step == 2:
            saved["bytes"] = checkpoint.read_bytes()
            with torch.no_grad():
                trainer.supernet.classifier.weight.fill_(float("nan"))

    with pytest.raises(RunDivergedError) as error:
        Trainer(training_job(config, "bignas"), tmp_path / "run", progress=False).fit(on_step=poison_after_checkpoint)
    message = str(error.value)
    assert "step 3" in message and "max subnet" in message and "nan" in message
    assert FMNIST.max_subnet().to_json() in message
    assert checkpoint.read_bytes() == saved["bytes"]
    assert not (tmp_path / "run" / "supernet.pt").exists()


def test_the_loop_reads_losses_from_the_device_only_on_logged_steps(tiny, tmp_path, monkeypatch):
    """No scalar is read back per step (a host-device sync on CUDA): only where a row is logged."""
    reads_by_step, current = {}, [1]

    def counting(method):
        def read(tensor, *args, **kwargs):
            if tensor.is_floating_point():
                reads_by_step[current[0]] = reads_by_step.get(current[0], 0) + 1
            return method(tensor, *args, **kwargs)
        return read

    for name in ("item", "__float__", "__bool__", "tolist", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, counting(getattr(torch.Tensor, name)))

    def next_step(trainer, step):
        current[0] = step + 1

    config = tiny(training={"epochs": 1, "max_steps_per_epoch": 6, "log_every_steps": 3,
                            "checkpoint_every_steps": 100, "validate_images": 0})
    Trainer(training_job(config, "bignas"), tmp_path / "run", progress=False).fit(on_step=next_step)
    assert {step for step in range(1, 7) if reads_by_step.get(step)} == {3, 6}


def test_bf16_autocast_runs_the_forwards_in_bf16_and_keeps_fp32_gradients():
    torch.manual_seed(0)
    supernet = Supernet(FMNIST, dropout=0.0, drop_connect=0.0).train()
    images, labels = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    dtypes = []
    supernet.classifier.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    grads = {}
    for precision in ("fp32", "bf16"):
        supernet.zero_grad(set_to_none=True)
        losses = sandwich_gradients(supernet, supernet, UniformSampler(FMNIST, random.Random(4)), images, labels,
                                    _settings(precision=precision))
        assert losses.loss_max.dtype == torch.float32 and torch.isfinite(losses.loss_min)
        grads[precision] = torch.cat([p.grad.flatten() for p in supernet.parameters() if p.grad is not None])
    assert dtypes == [torch.float32] * 4 + [torch.bfloat16] * 4
    assert grads["bf16"].dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(grads["bf16"], grads["fp32"], dim=0) > 0.95


def test_fp16_scales_the_losses_and_unscales_the_gradients_before_clipping():
    torch.manual_seed(0)
    supernet = Supernet(FMNIST, dropout=0.0, drop_connect=0.0).train()
    images, labels = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    clipped = {}
    for precision in ("fp32", "fp16"):
        settings = _settings(precision=precision, grad_clip_value=0.01)
        model = copy.deepcopy(supernet)
        optimizer = build_optimizer(model, settings)
        scheduler = build_scheduler(optimizer, settings, steps_per_epoch=10)
        optimizer.register_step_pre_hook(lambda *_, model=model, precision=precision: clipped.update(
            {precision: torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])}))
        scaler = grad_scaler(images.device, precision)
        sandwich_step(model, model, UniformSampler(FMNIST, random.Random(4)), images, labels, settings,
                      optimizer, scheduler, scaler=scaler)
        assert scaler.is_enabled() == (precision == "fp16")
    assert clipped["fp16"].abs().max() <= 0.01 and (clipped["fp16"].abs() == 0.01).any()
    assert torch.nn.functional.cosine_similarity(clipped["fp16"], clipped["fp32"], dim=0) > 0.95


def test_fp16_run_resumes_with_its_loss_scale_and_scoring_counts(tiny, tmp_path):
    config = tiny(training={"epochs": 1, "precision": "fp16", "validate_images": 0},
                  sampler={"table_size": 500, "score_images": 16})

    class Killed(Exception):
        """Stands in for the process being killed mid-run."""

    def kill_after_step_2(trainer, step):
        if step == 2:
            raise Killed

    with pytest.raises(Killed):
        Trainer(training_job(config, "bestup"), tmp_path / "run", progress=False).fit(on_step=kill_after_step_2)
    task = load_checkpoint(tmp_path / "run" / "resume.pt")["task"]
    assert task["scaler"]["scale"] > 1
    resumed = Trainer(training_job(config, "bestup"), tmp_path / "run", progress=False)
    assert resumed.scaler.get_scale() == task["scaler"]["scale"]
    assert resumed.sampler.stats()["images_scored"] == 2 * 2 * 2 * 16  # steps x middle subnets x k x images
    summary = resumed.fit()
    assert summary["sampler_stats"]["images_scored"] == 3 * 2 * 2 * 16
    assert summary["sampler_stats"]["scoring_forwards"] == 3 * 2 * 2
    assert [int(row["images_scored"]) for row in read_csv(tmp_path / "run" / "metrics.csv")] == [64, 128, 192]


def test_init_warmup_starts_from_the_given_weights(tiny, tmp_path):
    torch.manual_seed(7)
    warm = Supernet(FMNIST)
    save_checkpoint(tmp_path / "warm.pt", supernet_state(warm, complete=True))
    config = tiny(methods={"bignas": {"sampler": "uniform", "training": {"init": "warmup"}}})
    trainer = Trainer(training_job(config, "bignas"), tmp_path / "run", init_from=tmp_path / "warm.pt", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(trainer.supernet.state_dict().values(),
                                                 warm.state_dict().values(), strict=True))
    assert all(not state for state in trainer.optimizer.state.values())


def test_two_process_ddp_run_keeps_ranks_identical(tiny, tmp_path, capsys):
    config_path = tmp_path / "ddp.yaml"
    config = tiny(validated=False, training={"processes": 2, "epochs": 1, "max_steps_per_epoch": 2})
    config_path.write_text(yaml.safe_dump(config))
    out = tmp_path / "ddp"
    args = argparse.Namespace(config=str(config_path), settings=None, run="bestup", out_dir=str(out),
                              init_from=None, predictor=None, threads=2)
    result = subprocess.run(relaunch_command(args, 2), capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = read_json(out / "summary.json")
    assert summary["processes"] == 2 and summary["steps"] == 2 and summary["images_processed"] == 64
    digests = summary["weights_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert len(read_csv(out / "epochs.csv")) == 1 and summary["sampler"]["sampler"] == "attentive"
    assert (out / "flops_table.csv").is_file() and (out / "flops_histogram.csv").is_file()
    assert main(["train", "--config", str(config_path), "--run", "bestup", "--out-dir", str(out)]) == 0
    assert "supernet.pt is complete" in capsys.readouterr().err


def test_relaunch_passes_every_flag_through_torchrun():
    args = argparse.Namespace(config="c.yaml", settings=None, run="attentive_bestup", out_dir="out",
                              init_from="warm.pt", predictor="p.pkl", threads=4, verbose=0, quiet=1)
    command = relaunch_command(args, 3)
    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    parsed = get_args_parser().parse_args(command[3:])
    assert parsed.nproc_per_node == "3" and parsed.standalone and parsed.module
    assert parsed.training_script == "attentivenas"
    assert parsed.training_script_args == ["train", "--config", "c.yaml", "--run", "attentive_bestup",
                                           "--out-dir", "out", "--init-from", "warm.pt", "--predictor", "p.pkl",
                                           "--threads", "4", "--quiet"]
    settings = argparse.Namespace(**{**vars(args), "config": None, "settings": '{"seed": 0}'})
    assert relaunch_command(settings, 3)[-13:-11] == ["--settings", '{"seed": 0}']


def _cli_error(tmp_path, capsys, config: dict, *args: str) -> str:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", "--config", str(path), "--out-dir", str(tmp_path / "out"), *args]) == 2
    assert not (tmp_path / "out").exists()
    return capsys.readouterr().err


def test_cli_rejects_bad_runs_before_training(tiny, tmp_path, capsys):
    config = tiny(validated=False, methods={"bignas": {"sampler": "uniform"},
                                            "pred": {"sampler": "attentive", "estimator": "predictor"},
                                            "tuned": {"sampler": "uniform", "training": {"init": "warmup"}}})
    err = _cli_error(tmp_path, capsys, config, "--run", "attentive")
    assert "'attentive'" in err and "config key 'methods'" in err and "bignas, pred, tuned" in err
    err = _cli_error(tmp_path, capsys, config, "--run", "pred")
    assert "methods.pred.estimator" in err and "--predictor" in err
    err = _cli_error(tmp_path, capsys, config, "--run", "tuned")
    assert "training.init" in err and "--init-from" in err
    err = _cli_error(tmp_path, capsys, config, "--run", "tuned", "--init-from", str(tmp_path / "nope.pt"))
    assert "nope.pt" in err
    missing = merge(config, {"data": {"source": str(tmp_path / "missing.npz")}})
    err = _cli_error(tmp_path, capsys, missing, "--run", "bignas")
    assert "data.source" in err and "missing.npz" in err
