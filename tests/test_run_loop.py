import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import attentivenas.dsnas as dsnas_module
from attentivenas import run_loop
from attentivenas.checkpoint import load_checkpoint, save_checkpoint, supernet_state
from attentivenas.config import merge, validate_config
from attentivenas.dsnas import run_dsnas
from attentivenas.io import read_json
from attentivenas.run_loop import (
    RESUME_FILE,
    TIMINGS_FILE,
    DivergenceGuard,
    EpochOrder,
    RunDivergedError,
    RunSetupError,
)
from attentivenas.space import SearchSpace
from attentivenas.specs import ExperimentSpec
from attentivenas.stages import stage_job
from attentivenas.supernet import Supernet
from attentivenas.training import Trainer

FMNIST = SearchSpace.load("fmnist")
REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")


def test_epoch_order_shards_ranks_and_skips_consumed_batches():
    full = list(EpochOrder(100, 8, 1, 0, seed=3, epoch=1, start=0, stop=6))
    ranks = [list(EpochOrder(100, 4, 2, r, seed=3, epoch=1, start=0, stop=6)) for r in (0, 1)]
    assert len(set(full)) == 48
    for batch in range(6):
        assert ranks[0][4 * batch: 4 * batch + 4] + ranks[1][4 * batch: 4 * batch + 4] == \
            full[8 * batch: 8 * batch + 8]
    assert list(EpochOrder(100, 8, 1, 0, seed=3, epoch=1, start=2, stop=6)) == full[16:]
    assert list(EpochOrder(100, 8, 1, 0, seed=3, epoch=2, start=0, stop=6)) != full


def test_divergence_guard_names_the_first_non_finite_loss_since_its_last_check():
    guard = DivergenceGuard("lower the LR")
    guard.watch(torch.tensor(float("nan")), 1, FMNIST.max_subnet(), "max")
    guard.watch(torch.tensor(float("inf")), 1, FMNIST.min_subnet(), "min")
    with pytest.raises(RunDivergedError, match="step 1: the max subnet's loss is nan") as error:
        guard.check()
    assert FMNIST.max_subnet().to_json() in str(error.value) and "lower the LR" in str(error.value)
    assert guard.watched == []
    guard.watch(torch.tensor(2.0), 2, FMNIST.max_subnet(), "max")
    guard.watch(torch.tensor(1.0, dtype=torch.bfloat16), 2, FMNIST.min_subnet(), "min")
    guard.check()
    guard.watch(torch.tensor(float("-inf")), 3, FMNIST.min_subnet(), "min")
    with pytest.raises(RunDivergedError, match="step 3: the min subnet's loss is -inf"):
        guard.check()


# ---------------------------------------------------------------- whole runs: identical, resumable, guarded

def _files(folder: Path) -> dict[str, str]:
    """SHA-256 of every result file under `folder`; wall-clock timings are not results."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != TIMINGS_FILE}


@pytest.fixture
def training_config(tiny_config_dict):
    return validate_config(merge(tiny_config_dict, {
        "training": {"epochs": 3, "max_steps_per_epoch": 10, "batch_size": 16, "num_arch_training": 3,
                     "checkpoint_every_steps": 4, "log_every_steps": 1, "validate_images": 50},
        "evaluation": {"calibration_images": 32, "calibration_batch_size": 32, "batch_size": 50},
        "sampler": {"table_size": 100},
        "methods": {"bestup": {"sampler": "attentive", "mode": "bestup", "k": 2, "estimator": "loss"}}}))


def dsnas_job(config):
    return stage_job(ExperimentSpec.from_dict(config), "dsnas_search")


def bestup_job(config):
    return stage_job(ExperimentSpec.from_dict(config), "train_supernet", "bestup")


KILL_SCRIPT = """
import os, signal, sys, yaml, torch
torch.set_num_threads(1)
from attentivenas.specs import ExperimentSpec
from attentivenas.stages import stage_job
from attentivenas.training import Trainer
config, out, kill_at = yaml.safe_load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3])
job = stage_job(ExperimentSpec.from_dict(config), "train_supernet", "bestup")
Trainer(job, out, progress=False).fit(
    on_step=lambda trainer, step: os.kill(os.getpid(), signal.SIGKILL) if step == kill_at else None)
"""


def test_sigkill_at_five_seeded_points_between_checkpoints_then_resume_equals_one_run(training_config, tmp_path):
    """Byte-identical results from a run killed five times and resumed, and from one uninterrupted run."""
    Trainer(bestup_job(training_config), tmp_path / "whole", progress=False).fit()
    assert not (tmp_path / "whole" / RESUME_FILE).exists(), "a finished run keeps no resume state"
    assert read_json(tmp_path / "whole" / TIMINGS_FILE)["wall_seconds"] > 0

    every, per_epoch = training_config["training"]["checkpoint_every_steps"], 10
    saved_at = [step for step in range(1, 31) if step % every == 0 or step % per_epoch == 0]
    kills = sorted(random.Random(0).sample([step for step in range(1, 30) if step not in saved_at], 5))
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(training_config))
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    out = tmp_path / "killed"
    for kill_at in kills:
        result = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(config_path), str(out), str(kill_at)],
                                env=environment, capture_output=True, text=True, timeout=300)
        assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
        last_saved = max((step for step in saved_at if step < kill_at), default=None)
        if last_saved is None:
            assert not (out / RESUME_FILE).exists()
        else:
            assert load_checkpoint(out / RESUME_FILE)["step"] == last_saved
    Trainer(bestup_job(training_config), out, progress=False).fit()
    assert _files(out) == _files(tmp_path / "whole")
    assert read_json(out / "summary.json")["steps"] == 30


def test_two_dsnas_runs_write_identical_files(tmp_path, tiny_config_dict):
    config = validate_config(merge(tiny_config_dict, {
        "evaluation": {"calibration_images": 32, "calibration_batch_size": 32, "batch_size": 100},
        "dsnas": {"epochs": 2, "max_steps_per_epoch": 3, "batch_size": 16, "checkpoint_every_steps": 2}}))
    for name in ("first", "second"):
        run_dsnas(dsnas_job(config), 2.0, tmp_path / name, progress=False)
    assert _files(tmp_path / "first") == _files(tmp_path / "second")
    assert {"supernet.pt", "summary.json", "metrics.csv", "child.json"} <= set(_files(tmp_path / "first"))


@pytest.fixture
def dsnas_config(tiny_config_dict):
    def make(**dsnas):
        return validate_config(merge(tiny_config_dict, {
            "evaluation": {"calibration_images": 32, "calibration_batch_size": 32, "batch_size": 100},
            "dsnas": {"epochs": 1, "max_steps_per_epoch": 4, "batch_size": 16, "checkpoint_every_steps": 2,
                      **dsnas}}))
    return make


class Stop(Exception):
    """Stands in for an interruption."""


def _stop_at(when):
    def on_step(step):
        if step == when:
            raise Stop
    return on_step


def test_resume_refuses_another_setting_input_or_code_version(dsnas_config, tmp_path, monkeypatch):
    warm = tmp_path / "warm.pt"
    save_checkpoint(warm, supernet_state(Supernet(FMNIST), complete=True))
    config = dsnas_config(init="warmup")
    with pytest.raises(Stop):
        run_dsnas(dsnas_job(config), 2.0, tmp_path / "run", init_from=warm, progress=False, on_step=_stop_at(3))
    saved = (tmp_path / "run" / RESUME_FILE).read_bytes()

    changed = merge(config, {"supernet": {"dropout": 0.5}})
    with pytest.raises(RunSetupError, match=r"differs in: supernet\)"):
        run_dsnas(dsnas_job(changed), 2.0, tmp_path / "run", init_from=warm, progress=False)
    torch.manual_seed(1)
    other_warm = tmp_path / "other.pt"
    save_checkpoint(other_warm, supernet_state(Supernet(FMNIST), complete=True))
    with pytest.raises(RunSetupError, match=r"differs in: input init_from\)"):
        run_dsnas(dsnas_job(config), 2.0, tmp_path / "run", init_from=other_warm, progress=False)
    monkeypatch.setattr(run_loop, "code_version", lambda: "edited")
    with pytest.raises(RunSetupError, match=r"differs in: code_version\)"):
        run_dsnas(dsnas_job(config), 2.0, tmp_path / "run", init_from=warm, progress=False)
    assert (tmp_path / "run" / RESUME_FILE).read_bytes() == saved
    monkeypatch.undo()
    shutil.copy(warm, tmp_path / "moved.pt")
    moved = run_dsnas(dsnas_job(config), 2.0, tmp_path / "run", init_from=tmp_path / "moved.pt", progress=False)
    assert moved["steps"] == 4


def test_dsnas_stops_on_a_non_finite_loss_naming_step_and_subnet_and_keeps_the_checkpoint(dsnas_config, tmp_path,
                                                                                         monkeypatch):
    resume = tmp_path / "run" / RESUME_FILE
    saved = {}
    train_step = dsnas_module._SearchTask.train_step

    def poisoned_at_step_3(task, batch, step):
        if step == 3:
            saved["bytes"] = resume.read_bytes()
            with torch.no_grad():
                task.search.supernet.classifier.weight.fill_(float("nan"))
        return train_step(task, batch, step)

    monkeypatch.setattr(dsnas_module._SearchTask, "train_step", poisoned_at_step_3)
    with pytest.raises(RunDivergedError) as error:
        run_dsnas(dsnas_job(dsnas_config()), 2.0, tmp_path / "run", progress=False)
    message = str(error.value)
    assert "step 3" in message and "sampled subnet" in message and "nan" in message and '"depth"' in message
    assert "dsnas.lr" in message and resume.read_bytes() == saved["bytes"]
    assert not (tmp_path / "run" / "supernet.pt").exists()
