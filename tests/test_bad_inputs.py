"""Bad input, as a careless or hostile user gives it, gets a clear error from the command line: exit code 2,
a message naming the file or config key, no traceback, nothing written; and loading a file never runs code."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from attentivenas.__main__ import main
from attentivenas.checkpoint import save_checkpoint, supernet_state
from attentivenas.config import merge
from attentivenas.space import SearchSpace
from attentivenas.supernet import Supernet

FMNIST = SearchSpace.load("fmnist")
pytestmark = pytest.mark.usefixtures("one_thread")


def _files(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


def run_cli(argv: list[str], root: Path, capsys) -> tuple[int, str]:
    """Exit code and all output of `python -m attentivenas ARGV`, run in-process; checks nothing was written."""
    before = _files(root)
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    out, err = capsys.readouterr()
    assert _files(root) == before, f"{argv} left files behind"
    return code, out + err


class Payload:
    """Pickled, it calls open(marker, 'w'): a file that appears only if loading runs code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _write_config(path: Path, config: dict) -> str:
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.fixture
def base_config(tiny_config_dict) -> dict:
    return merge(tiny_config_dict, {
        "training": {"epochs": 1, "max_steps_per_epoch": 1, "batch_size": 32, "validate_images": 0},
        "warmup": {"init": "scratch"},
        "evaluation": {"calibration_images": 32, "calibration_batch_size": 32, "batch_size": 100},
        "methods": {"warm": {"sampler": "uniform", "training": {"init": "warmup"}},
                    "pred": {"sampler": "attentive", "estimator": "predictor"}},
        "search": {"targets_mflops": [2.0]},
        "dsnas": {"init": "warmup", "targets_mflops": [2.0]}})


def _malicious_files(root: Path, marker: Path) -> dict[str, Path]:
    """Crafted files whose loading would create `marker`: a bare pickle, one inside a torch zip archive,
    and one inside an .npz (an object array)."""
    files = {"pickle": root / "evil.pkl", "torch": root / "evil.pt", "npz": root / "evil.npz"}
    files["pickle"].write_bytes(pickle.dumps({"format": 1, "space": {}, "supernet": Payload(marker)}))
    torch.save({"format": 1, "space": FMNIST.to_dict(), "supernet": Payload(marker)}, files["torch"])
    np.savez(files["npz"], header=np.array([Payload(marker)], dtype=object))
    return files


@pytest.mark.parametrize("kind", ["pickle", "torch", "npz"])
def test_crafted_files_never_run_code(tmp_path, capsys, base_config, kind):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    marker = tmp_path / "marker"
    evil = str(_malicious_files(inputs, marker)[kind])
    config = _write_config(inputs / "config.yaml", base_config)
    prefilter = _write_config(inputs / "prefilter.yaml", merge(base_config, {"search": {"predictor_prefilter": True}}))
    torch.manual_seed(0)
    checkpoint = inputs / "supernet.pt"
    save_checkpoint(checkpoint, supernet_state(Supernet(FMNIST), complete=True))
    subnet = inputs / "subnet.json"
    subnet.write_text(FMNIST.min_subnet().to_json())
    out = str(tmp_path / "out")
    commands = {
        "--checkpoint": [["evaluate", "--config", config, "--checkpoint", evil, "--subnet", str(subnet)],
                         ["search", "--config", config, "--checkpoint", evil, "--out-dir", out]],
        "--init-from": [["train", "--config", config, "--run", "warm", "--out-dir", out, "--init-from", evil],
                        ["dsnas", "--config", config, "--target", "2", "--out-dir", out, "--init-from", evil]],
        "--predictor": [["train", "--config", config, "--run", "pred", "--out-dir", out, "--predictor", evil],
                        ["search", "--config", prefilter, "--checkpoint", str(checkpoint), "--out-dir", out,
                         "--predictor", evil]],
    }
    for flag, argvs in commands.items():
        for argv in argvs:
            code, output = run_cli(argv, tmp_path, capsys)
            assert not marker.exists(), f"{flag} {kind}: loading ran the file's code"
            assert code == 2 and "Traceback" not in output, output
            assert evil in output, f"{argv[0]} {flag}: the error does not name the file: {output}"
            expected = "predictor file" if flag == "--predictor" else "checkpoint"
            assert expected in output, output
