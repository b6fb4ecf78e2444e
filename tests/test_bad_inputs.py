"""Bad input, as a careless or hostile user gives it, gets a clear error from the command line: exit code 2,
a message naming the file or config key, no traceback, nothing written; and loading a file never runs code."""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.linear_model import Ridge

from attentivenas.__main__ import main
from attentivenas.checkpoint import save_checkpoint, supernet_state
from attentivenas.config import merge, validate_config
from attentivenas.data import FASHION_MNIST_FILES, build_splits
from attentivenas.evaluation import EvalResult, evaluator_for
from attentivenas.io import write_csv
from attentivenas.predictor import AccuracyPredictor, sample_distinct, sample_rows, save_predictor
from attentivenas.space import SearchSpace
from attentivenas.specs import ExperimentSpec
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
        "methods": {"bignas": {"sampler": "uniform"},
                    "warm": {"sampler": "uniform", "training": {"init": "warmup"}},
                    "pred": {"sampler": "attentive", "estimator": "predictor"}},
        "search": {"targets_mflops": [2.0]},
        "dsnas": {"targets_mflops": [2.0]}})


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
    config = _write_config(inputs / "config.yaml", merge(base_config, {"dsnas": {"init": "warmup"}}))
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


# ---------------------------------------------------------------- every bad input: a table

class Workspace:
    """Input files of one case under `root/in`; the commands write under `root/out`, which must stay absent."""

    def __init__(self, root: Path, base: dict):
        self.inputs, self.base = root / "in", base
        self.inputs.mkdir()
        self.out_dir = root / "out"

    def path(self, name: str) -> str:
        return str(self.inputs / name)

    def out(self, name: str = "") -> str:
        return str(self.out_dir / name) if name else str(self.out_dir)

    def write(self, name: str, content: str | bytes) -> str:
        path = self.inputs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
        return str(path)

    def directory(self, name: str) -> str:
        (self.inputs / name).mkdir(parents=True)
        return self.path(name)

    def config(self, name: str = "config.yaml", drop: tuple[str, ...] = (), **overrides) -> str:
        config = merge(self.base, overrides)
        for key in drop:
            config.pop(key)
        return self.write(name, yaml.safe_dump(config))

    def space(self, name: str = "space.yaml", **changes) -> str:
        return self.write(name, yaml.safe_dump({**FMNIST.to_dict(), **changes}))

    def checkpoint(self, name: str = "supernet.pt", space: str = "fmnist", drop: str | None = None) -> str:
        torch.manual_seed(0)
        state = supernet_state(Supernet(SearchSpace.load(space)), complete=True)
        if drop:
            state.pop(drop)
        save_checkpoint(self.inputs / name, state)
        return self.path(name)

    def predictor(self, name: str = "predictor.npz", space: SearchSpace = FMNIST) -> str:
        ridge = Ridge().fit(np.eye(2, space.encoding_length), [0.0, 1.0])
        save_predictor(self.inputs / name, AccuracyPredictor(ridge, space.name, space.encoding_length))
        return self.path(name)

    def subnet(self, name: str = "subnet.json", **changes) -> str:
        return self.write(name, json.dumps({**FMNIST.min_subnet().to_dict(), **changes}))

    def samples(self, name: str = "samples.csv", rows: int = 8, **changes) -> str:
        subnets = sample_distinct(FMNIST, rows, seed=0)
        results = [EvalResult(top1=50.0 + i, loss=1.0, images=10, mflops=1.0 + i, params_m=0.1)
                   for i in range(rows)]
        table = [{**row, **changes} for row in sample_rows(FMNIST, subnets, results)]
        write_csv(self.inputs / name, table)
        return self.path(name)

    def fashion_npz(self, name: str = "data.npz", **arrays) -> str:
        images, labels = np.zeros((20, 28, 28), np.uint8), np.arange(20) % 10
        np.savez(self.inputs / name, **{"x_train": images, "y_train": labels, "x_test": images,
                                        "y_test": labels, **arrays})
        return self.path(name)

    def torch_file(self, name: str, obj) -> str:
        torch.save(obj, self.inputs / name)
        return self.path(name)

    def npz_without_test(self, name: str = "partial.npz") -> str:
        images = np.zeros((20, 28, 28), np.uint8)
        np.savez(self.inputs / name, x_train=images, y_train=np.arange(20) % 10)
        return self.path(name)

    def idx_dir(self, name: str = "idx", corrupt: bytes | None = None) -> str:
        """A directory of the four gzipped Fashion-MNIST IDX files; `corrupt` replaces the training images."""
        directory = self.inputs / name
        directory.mkdir()
        images = b"\0\0\x08\x03" + np.array([20, 28, 28], ">u4").tobytes() + bytes(20 * 28 * 28)
        labels = b"\0\0\x08\x01" + np.array([20], ">u4").tobytes() + bytes(range(10)) * 2
        for stem in FASHION_MNIST_FILES.values():
            raw = images if "images" in stem else labels
            payload = corrupt if (corrupt is not None and stem == "train-images-idx3-ubyte") else gzip.compress(raw)
            (directory / f"{stem}.gz").write_bytes(payload)
        return str(directory)

    # one argument list per command, with valid inputs unless the case replaces one
    def prepare(self, config: str | None = None, out: str | None = None) -> list[str]:
        return ["prepare-data", "--config", config or self.config(), "--out", out or self.out("summary.json")]

    def evaluate(self, config=None, checkpoint=None, subnet=None, *extra: str) -> list[str]:
        return ["evaluate", "--config", config or self.config(), "--checkpoint", checkpoint or self.checkpoint(),
                "--subnet", subnet or self.subnet(), *extra]

    def train(self, run: str = "bignas", config=None, *extra: str) -> list[str]:
        return ["train", "--config", config or self.config(), "--run", run, "--out-dir", self.out(), *extra]

    def dsnas(self, target: str = "2", config=None, *extra: str) -> list[str]:
        return ["dsnas", "--config", config or self.config(), "--target", target, "--out-dir", self.out(), *extra]

    def search(self, config=None, checkpoint=None, *extra: str) -> list[str]:
        return ["search", "--config", config or self.config(), "--checkpoint", checkpoint or self.checkpoint(),
                "--out-dir", self.out(), *extra]

    def fit(self, data=None, config=None) -> list[str]:
        return ["fit-predictor", "--config", config or self.config(), "--data", data or self.samples(),
                "--out-dir", self.out()]

    def report(self, what: str = "table", results=None, *extra: str) -> list[str]:
        return ["report", what, "--config", self.config(), "--results-dir", results or self.out(), *extra]


BINARY = bytes(range(256)) * 4
SUBNET = FMNIST.min_subnet().to_dict()


def _bad_space(w: Workspace, text: str | bytes) -> list[str]:
    return w.prepare(w.config(space=w.write("space.yaml", text)))


# (id, case builder -> (argv, what the message must name)); ids ending in "!" gave a traceback or passed
# silently before issue 14, the others already gave a clear error and must keep doing so
CASES: list[tuple[str, object]] = [
    # -- the config file
    ("config-missing", lambda w: (w.prepare(w.path("nope.yaml")), ["nope.yaml"])),
    ("config-directory!", lambda w: (w.prepare(w.directory("cfgdir")), ["cfgdir", "directory"])),
    ("config-binary!", lambda w: (w.prepare(w.write("bin.yaml", BINARY)), ["bin.yaml"])),
    ("config-bad-yaml", lambda w: (w.prepare(w.write("c.yaml", "seed: [1,\n")), ["c.yaml", "YAML"])),
    ("config-a-list", lambda w: (w.prepare(w.write("c.yaml", "- 1\n- 2\n")), ["c.yaml", "mapping"])),
    ("config-empty", lambda w: (w.prepare(w.write("c.yaml", "")), ["c.yaml", "empty"])),
    ("config-no-space", lambda w: (w.prepare(w.config(drop=("space",))), ["space"])),
    ("config-no-data", lambda w: (w.prepare(w.config(drop=("data",))), ["data"])),
    ("unknown-top-key", lambda w: (w.prepare(w.config(sed=1)), ["'sed'", "allowed keys"])),
    ("unknown-nested-key", lambda w: (w.prepare(w.config(training={"lr_typo": 1})), ["training.lr_typo"])),
    ("unknown-method-key", lambda w: (w.prepare(w.config(methods={"m": {"sampler": "uniform", "kk": 1}})),
                                      ["methods.m.kk"])),
    ("seed-string", lambda w: (w.prepare(w.config(seed="abc")), ["seed"])),
    ("epochs-negative", lambda w: (w.prepare(w.config(training={"epochs": -1})), ["training.epochs"])),
    ("batch-size-zero", lambda w: (w.prepare(w.config(training={"batch_size": 0})), ["training.batch_size"])),
    ("lr-zero", lambda w: (w.prepare(w.config(training={"lr": 0})), ["training.lr"])),
    ("momentum-above-1", lambda w: (w.prepare(w.config(training={"momentum": 2})), ["training.momentum"])),
    ("init-unknown", lambda w: (w.prepare(w.config(training={"init": "pretrained"})), ["training.init"])),
    ("calibration-zero", lambda w: (w.prepare(w.config(evaluation={"calibration_images": 0})),
                                    ["evaluation.calibration_images"])),
    ("calibration-1e9-string", lambda w: (w.prepare(w.write("c.yaml", yaml.safe_dump(w.base).replace(
        "calibration_images: 32", "calibration_images: 1e9"))), ["evaluation.calibration_images", "integer"])),
    ("device-unknown", lambda w: (w.prepare(w.config(device="gpu")), ["device"])),
    ("resolution-mode-unknown", lambda w: (w.prepare(w.config(resolution_mode="stretch")), ["resolution_mode"])),
    ("method-sampler-unknown", lambda w: (w.prepare(w.config(methods={"m": {"sampler": "random"}})),
                                          ["methods.m.sampler"])),
    ("method-no-sampler", lambda w: (w.prepare(w.config(methods={"m": {"k": 2}})), ["methods.m", "sampler"])),
    ("method-mode-unknown", lambda w: (w.prepare(w.config(methods={"m": {"sampler": "attentive", "mode": "mid"}})),
                                       ["methods.m.mode"])),
    ("method-k-zero", lambda w: (w.prepare(w.config(methods={"m": {"sampler": "attentive", "k": 0}})),
                                 ["methods.m.k"])),
    ("method-estimator-unknown", lambda w: (w.prepare(w.config(methods={"m": {"sampler": "attentive",
                                                                              "estimator": "oracle"}})),
                                            ["methods.m.estimator"])),
    ("predictor-model-unknown", lambda w: (w.prepare(w.config(predictor={"model": "svm"})), ["predictor.model"])),
    ("predictor-holdout-1", lambda w: (w.prepare(w.config(predictor={"holdout_fraction": 1})),
                                       ["predictor.holdout_fraction"])),
    ("search-targets-empty", lambda w: (w.prepare(w.config(search={"targets_mflops": []})),
                                        ["search.targets_mflops"])),
    ("search-target-above-space", lambda w: (w.prepare(w.config(search={"targets_mflops": [1e6]})),
                                             ["search.targets_mflops", "spans"])),
    ("dsnas-target-below-space", lambda w: (w.prepare(w.config(dsnas={"targets_mflops": [0.001]})),
                                            ["dsnas.targets_mflops", "spans"])),
    ("dsnas-target-negative", lambda w: (w.prepare(w.config(dsnas={"targets_mflops": [-1]})),
                                         ["dsnas.targets_mflops"])),
    ("report-format-unknown", lambda w: (w.prepare(w.config(report={"formats": ["gif"]})), ["report.formats"])),
    ("dataset-unknown", lambda w: (w.prepare(w.config(data={"dataset": "mnist"})), ["data.dataset"])),
    ("data-source-missing", lambda w: (w.prepare(w.config(data={"source": w.path("none.npz")})),
                                       ["data.source", "none.npz"])),
    ("data-holdout-1.5", lambda w: (w.prepare(w.config(data={"search_holdout": 1.5})), ["data.search_holdout"])),
    ("data-holdout-zero", lambda w: (w.prepare(w.config(data={"search_holdout": 0})), ["data.search_holdout"])),
    ("data-holdout-too-many", lambda w: (w.prepare(w.config(data={"search_holdout": 10 ** 6})),
                                         ["data.search_holdout"])),
    ("data-workers-negative", lambda w: (w.prepare(w.config(data={"num_workers": -1})), ["data.num_workers"])),
    ("augmentation-unknown", lambda w: (w.prepare(w.config(data={"augmentation": {"rotate": True}})),
                                        ["data.augmentation.rotate"])),
    ("cifar10-source-empty", lambda w: (w.prepare(w.config(
        space="cifar10", data={"dataset": "cifar10", "source": w.directory("cifar")},
        search={"targets_mflops": [10.0]}, dsnas={"targets_mflops": [10.0]})), ["cifar", "cifar-10-batches-py"])),
    ("imagefolder-no-val", lambda w: (w.prepare(w.config(data={"dataset": "imagefolder",
                                                               "source": w.directory("images/train")[:-6]})),
                                      ["images", "val/"])),
    # -- the search space
    ("space-unknown", lambda w: (w.prepare(w.config(space="mobilenet")), ["mobilenet", "bundled"])),
    ("space-missing-key", lambda w: (w.prepare(w.config(space=w.write("s.yaml", yaml.safe_dump(
        {k: v for k, v in FMNIST.to_dict().items() if k != "head"})))), ["s.yaml", "head"])),
    ("space-even-kernel", lambda w: (w.prepare(w.config(space=w.space(stages=[
        {**FMNIST.to_dict()["stages"][0], "kernels": [4]}]))), ["space.yaml", "odd"])),
    ("space-bad-number!", lambda w: (w.prepare(w.config(space=w.space(resolutions=["big"]))),
                                     ["space.yaml", "resolutions"])),
    ("space-bad-yaml!", lambda w: (_bad_space(w, "name: [fmnist\n"), ["space.yaml", "YAML"])),
    ("space-a-list!", lambda w: (_bad_space(w, "- 1\n"), ["space.yaml", "mapping"])),
    ("space-binary!", lambda w: (_bad_space(w, BINARY), ["space.yaml"])),
    # -- data files
    ("npz-truncated!", lambda w: (w.prepare(w.config(data={"source": w.write(
        "t.npz", Path(w.fashion_npz()).read_bytes()[:3000])})), ["t.npz"])),
    ("npz-garbage!", lambda w: (w.prepare(w.config(data={"source": w.write("g.npz", BINARY)})), ["g.npz"])),
    ("npz-missing-arrays", lambda w: (w.prepare(w.config(data={"source": w.npz_without_test()})),
                                      ["partial.npz", "x_test"])),
    ("npz-wrong-dtype", lambda w: (w.prepare(w.config(data={"source": w.fashion_npz(
        x_train=np.zeros((20, 28, 28), np.float32))})), ["data.npz", "uint8"])),
    ("idx-dir-missing-files", lambda w: (w.prepare(w.config(data={"source": w.directory("empty")})),
                                         ["empty", "train-images-idx3-ubyte"])),
    ("idx-gz-truncated!", lambda w: (w.prepare(w.config(data={"source": w.idx_dir(
        corrupt=gzip.compress(np.random.default_rng(0).bytes(4000))[:1000])})),
                                     ["train-images-idx3-ubyte.gz", "truncated"])),
    ("idx-gz-not-gzip!", lambda w: (w.prepare(w.config(data={"source": w.idx_dir(corrupt=BINARY)})),
                                    ["train-images-idx3-ubyte.gz"])),
    ("idx-bad-magic", lambda w: (w.prepare(w.config(data={"source": w.idx_dir(
        corrupt=gzip.compress(b"\x01\x02\x03\x04" + bytes(100)))})), ["train-images-idx3-ubyte.gz", "IDX"])),
    ("idx-short-data", lambda w: (w.prepare(w.config(data={"source": w.idx_dir(corrupt=gzip.compress(
        b"\0\0\x08\x03" + np.array([20, 28, 28], ">u4").tobytes() + bytes(100)))})),
                                  ["train-images-idx3-ubyte.gz", "truncated"])),
    # -- command-line values and output paths
    ("threads-negative!", lambda w: (w.prepare() + ["--threads", "-1"], ["--threads"])),
    ("threads-zero!", lambda w: (w.evaluate() + ["--threads", "0"], ["--threads"])),
    ("threads-not-a-number", lambda w: (w.prepare() + ["--threads", "two"], ["--threads"])),
    ("unknown-command", lambda w: (["retrain", "--config", w.config()], ["retrain"])),
    ("missing-required-flag", lambda w: (["evaluate", "--config", w.config()], ["--checkpoint"])),
    ("split-unknown", lambda w: (w.evaluate() + ["--split", "val"], ["--split"])),
    ("prepare-out-is-directory!", lambda w: (w.prepare(out=w.directory("outdir")), ["outdir", "directory"])),
    ("export-out-dir-is-file!", lambda w: (["export", "--config", w.config(), "--checkpoint", w.checkpoint(),
                                            "--subnet", w.subnet(), "--out-dir", w.write("taken", "x")],
                                           ["taken", "--out-dir"])),
    ("train-out-dir-is-file!", lambda w: (["train", "--config", w.config(), "--run", "bignas", "--out-dir",
                                           w.write("taken", "x")], ["taken", "--out-dir"])),
    ("device-cuda-absent!", lambda w: (w.evaluate(w.config(device="cuda")), ["device", "cuda"])),
    # -- subnet files
    ("subnet-missing", lambda w: (w.evaluate(subnet=w.path("none.json")), ["none.json"])),
    ("subnet-not-json", lambda w: (w.evaluate(subnet=w.write("s.json", "{resolution: 28")), ["s.json", "JSON"])),
    ("subnet-binary!", lambda w: (w.evaluate(subnet=w.write("s.json", BINARY)), ["s.json"])),
    ("subnet-directory!", lambda w: (w.evaluate(subnet=w.directory("s.json")), ["s.json", "directory"])),
    ("subnet-a-list", lambda w: (w.evaluate(subnet=w.write("s.json", "[1, 2]")), ["s.json", "JSON object"])),
    ("subnet-missing-field", lambda w: (w.evaluate(subnet=w.write("s.json", json.dumps(
        {k: v for k, v in SUBNET.items() if k != "depth"}))), ["s.json", "depth"])),
    ("subnet-value-outside", lambda w: (w.evaluate(subnet=w.subnet(resolution=999)), ["resolution", "999"])),
    ("subnet-short-list", lambda w: (w.evaluate(subnet=w.subnet(width=[8])), ["'width'"])),
    ("subnet-string-value", lambda w: (w.evaluate(subnet=w.subnet(depth=["1"] * len(SUBNET["depth"]))),
                                       ["depth[0]"])),
    ("subnet-bool-value", lambda w: (w.evaluate(subnet=w.subnet(depth=[True] * len(SUBNET["depth"]))),
                                     ["depth[0]"])),
    ("flops-space-unknown", lambda w: (["flops", "--space", "nope", w.subnet()], ["nope"])),
    ("flops-subnet-outside", lambda w: (["flops", "--space", "fmnist", w.subnet(resolution=1)], ["resolution"])),
    # -- checkpoints
    ("checkpoint-missing", lambda w: (w.evaluate(checkpoint=w.path("none.pt")), ["none.pt"])),
    ("checkpoint-directory", lambda w: (w.evaluate(checkpoint=w.directory("ck.pt")), ["ck.pt"])),
    ("checkpoint-other-space", lambda w: (w.evaluate(checkpoint=w.checkpoint(space="cifar10")), ["cifar10"])),
    ("checkpoint-no-space-key!", lambda w: (w.evaluate(checkpoint=w.checkpoint(drop="space")),
                                            ["supernet.pt", "space"])),
    ("checkpoint-truncated", lambda w: (w.evaluate(checkpoint=w.write("t.pt", Path(w.checkpoint()).read_bytes()[
        :2000])), ["t.pt"])),
    ("checkpoint-text", lambda w: (w.evaluate(checkpoint=w.write("t.pt", "weights")), ["t.pt"])),
    ("checkpoint-a-tensor", lambda w: (w.evaluate(checkpoint=w.torch_file("t.pt", torch.zeros(3))),
                                       ["t.pt", "not an attentivenas"])),
    # -- training runs
    ("train-run-unknown", lambda w: (w.train("attentive"), ["'attentive'", "methods"])),
    ("train-init-without-flag", lambda w: (w.train("warm"), ["training.init", "--init-from"])),
    ("train-init-missing", lambda w: (w.train("warm", None, "--init-from", w.path("none.pt")), ["none.pt"])),
    ("train-init-other-space", lambda w: (w.train("warm", None, "--init-from", w.checkpoint(space="cifar10")),
                                          ["cifar10"])),
    ("train-init-no-space-key!", lambda w: (w.train("warm", None, "--init-from", w.checkpoint(drop="space")),
                                            ["supernet.pt", "space"])),
    ("train-predictor-needed", lambda w: (w.train("pred"), ["methods.pred.estimator", "--predictor"])),
    ("train-predictor-missing", lambda w: (w.train("pred", None, "--predictor", w.path("none.npz")),
                                           ["none.npz"])),
    ("train-predictor-truncated!", lambda w: (w.train("pred", None, "--predictor", w.write(
        "p.npz", Path(w.predictor("full.npz")).read_bytes()[:300])), ["p.npz"])),
    ("train-predictor-garbage!", lambda w: (w.train("pred", None, "--predictor", w.write("p.npz", BINARY)),
                                            ["p.npz"])),
    ("train-predictor-other-space", lambda w: (w.train("pred", None, "--predictor", w.predictor(
        space=SearchSpace.load("cifar10"))), ["predictor.npz", "cifar10"])),
    ("train-batch-above-data", lambda w: (w.train("bignas", w.config(training={"batch_size": 10 ** 6})),
                                          ["training.batch_size"])),
    # -- DSNAS
    ("dsnas-target-outside", lambda w: (w.dsnas("1e6"), ["--target", "spans"])),
    ("dsnas-target-nan", lambda w: (w.dsnas("nan"), ["--target"])),
    ("dsnas-target-text", lambda w: (w.dsnas("big"), ["--target"])),
    ("dsnas-init-without-flag", lambda w: (w.dsnas("2", w.config(dsnas={"init": "warmup"})),
                                           ["dsnas.init", "--init-from"])),
    ("dsnas-init-with-scratch", lambda w: (w.dsnas("2", None, "--init-from", w.checkpoint()),
                                           ["dsnas.init", "--init-from"])),
    ("dsnas-init-no-space-key!", lambda w: (w.dsnas("2", w.config(dsnas={"init": "warmup"}), "--init-from",
                                                    w.checkpoint(drop="space")), ["supernet.pt", "space"])),
    ("dsnas-batch-above-data", lambda w: (w.dsnas("2", w.config(dsnas={"batch_size": 10 ** 6})),
                                          ["dsnas.batch_size"])),
    # -- search and sampling
    ("search-no-targets", lambda w: (w.search(w.config(drop=("search",))), ["search.targets_mflops"])),
    ("search-prefilter-without-predictor", lambda w: (w.search(w.config(search={
        "targets_mflops": [2.0], "predictor_prefilter": True})), ["search.predictor_prefilter", "--predictor"])),
    ("search-predictor-without-prefilter", lambda w: (w.search(None, None, "--predictor", w.predictor()),
                                                      ["search.predictor_prefilter"])),
    ("search-predictor-truncated!", lambda w: (w.search(w.config(search={
        "targets_mflops": [2.0], "predictor_prefilter": True}), None, "--predictor", w.write(
        "p.npz", Path(w.predictor("full.npz")).read_bytes()[:300])), ["p.npz"])),
    ("sample-count-zero", lambda w: (["sample-subnets", "--config", w.config(), "--checkpoint", w.checkpoint(),
                                      "--out", w.out("s.csv"), "--count", "0"], ["--count"])),
    ("sample-count-above-space", lambda w: (["sample-subnets", "--config", w.config(), "--checkpoint",
                                             w.checkpoint(), "--out", w.out("s.csv"), "--count",
                                             str(FMNIST.num_subnets() + 1)], ["cannot draw"])),
    # -- predictor fitting
    ("fit-data-missing", lambda w: (w.fit(w.path("none.csv")), ["none.csv"])),
    ("fit-data-empty", lambda w: (w.fit(w.write("e.csv", "")), ["e.csv"])),
    ("fit-data-columns", lambda w: (w.fit(w.write("e.csv", "a,b\n1,2\n")), ["e.csv", "subnet"])),
    ("fit-data-bad-subnet", lambda w: (w.fit(w.samples(subnet='{"resolution": 1}')), ["samples.csv", "line 2"])),
    ("fit-data-binary!", lambda w: (w.fit(w.write("b.csv", BINARY)), ["b.csv"])),
    ("fit-data-bad-number!", lambda w: (w.fit(w.samples(top1="high")), ["samples.csv", "top1"])),
    ("fit-too-few-rows", lambda w: (w.fit(w.samples(rows=3)), ["predictor.holdout_fraction"])),
    ("fit-params-unknown", lambda w: (w.fit(None, w.config(predictor={"params": {"trees": 5}})),
                                      ["predictor.params", "trees"])),
    ("fit-params-bad-value", lambda w: (w.fit(None, w.config(predictor={"params": {"n_estimators": -5}})),
                                        ["predictor.params"])),
    # -- reports
    ("report-table-missing-dir!", lambda w: (w.report("table"), ["out"])),
    ("report-table-empty-dir!", lambda w: (w.report("table", w.directory("results")), ["results"])),
    ("report-figures-missing-dir!", lambda w: (w.report("figures"), ["out"])),
    ("report-figures-empty-dir!", lambda w: (w.report("figures", w.directory("results")), ["results"])),
    ("report-ablation-empty-dir!", lambda w: (w.report("ablation", w.directory("results"), "--ablation", "k"),
                                              ["results"])),
    ("report-ablation-unnamed", lambda w: (w.report("ablation", w.directory("results")), ["--ablation"])),
]


@pytest.mark.parametrize(("name", "case"), CASES, ids=[name for name, _ in CASES])
def test_bad_input_gets_a_clear_error(tmp_path, capsys, base_config, name, case):
    argv, culprits = case(Workspace(tmp_path, base_config))
    capsys.readouterr()
    code, output = run_cli(argv, tmp_path, capsys)
    assert code == 2, f"exit code {code}: {output}"
    assert "Traceback" not in output, output
    assert not Path(tmp_path / "out").exists()
    for culprit in culprits:
        assert culprit in output, f"the message does not name {culprit!r}: {output}"


def test_more_calibration_images_than_the_data_holds_is_capped_and_logged(caplog, base_config):
    """A documented cap, not an error: the default 2048 exceeds the small test data too."""
    config = ExperimentSpec.from_dict(validate_config(merge(base_config,
                                                            {"evaluation": {"calibration_images": 10 ** 9}})))
    splits = build_splits(config.data, image_size=FMNIST.base_resolution)
    with caplog.at_level("WARNING", logger="attentivenas"):
        evaluator = evaluator_for(config, splits, "search", torch.device("cpu"))
    assert evaluator.calibration_images == len(splits.calibration) == 1600
    assert "'evaluation.calibration_images' = 1000000000 exceeds the 1600 training images" in caplog.text
