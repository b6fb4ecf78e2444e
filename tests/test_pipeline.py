"""The Snakemake workflow and dvc.yaml: they agree, and the tiny config runs end to end through both."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from attentivenas.config import load_config, validate_config
from attentivenas.dvcfile import render

REPO = Path(__file__).resolve().parents[1]
MILESTONE_FILES = {"data": "data.smk", "predictor": "predictor.smk", "supernet": "supernet.smk",
                   "search": "search.smk", "dsnas": "dsnas.smk", "paper": "paper.smk"}
BIN = Path(sys.executable).parent


def build_jobs(targets: list[str], workdir: Path = REPO) -> list:
    """Every job Snakemake plans for `targets` (all of them, as if nothing existed yet)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import DAGSettings, OutputSettings, Quietness, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow_api = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=workdir / "Snakefile",
                                    workdir=workdir)
        workflow_api.dag(DAGSettings(targets=set(targets), forceall=True))
        workflow = workflow_api._workflow
        workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True)
        workflow._build_dag()
        return list(workflow.dag.jobs)


def _entries(stage: dict, key: str) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in stage.get(key, [])]


def _covered(path: str, declared: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in declared)


@pytest.fixture(scope="module")
def dvc_stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_every_milestone_has_a_dvc_stage_that_runs_its_target(dvc_stages):
    assert set(dvc_stages) == set(MILESTONE_FILES)
    for stage in dvc_stages.values():
        command = stage["cmd"].split()
        assert command[0] == "snakemake" and command[-2:] == ["--cores", "all"]
        assert not command[1].startswith("-"), "the target comes first"


@pytest.mark.parametrize("name", list(MILESTONE_FILES))
def test_dvc_stage_agrees_with_the_snakemake_dag(dvc_stages, name):
    stage = dvc_stages[name]
    targets = stage["cmd"].split()[1:-2]
    jobs = build_jobs(targets)
    rule_file = f"rules/{MILESTONE_FILES[name]}"
    own = [j for j in jobs if Path(j.rule.snakefile) == REPO / rule_file]
    assert own, f"{name}: no job of {rule_file} for targets {targets}"
    assert {j.rule.name for j in own if not j.output} <= set(targets) | {"all"}
    produced_by_own = {str(f) for j in own for f in j.output}
    outs = _entries(stage, "outs") + _entries(stage, "metrics") + _entries(stage, "plots")
    deps = _entries(stage, "deps")
    assert rule_file in deps and "Snakefile" in deps
    for job in own:
        for path in map(str, job.output):
            assert _covered(path, outs), f"{name}: output {path} of rule {job.rule.name} is not a DVC out"
        for path in map(str, job.input):
            if path not in produced_by_own:
                assert _covered(path, deps), f"{name}: input {path} of rule {job.rule.name} is not a DVC dep"
        if job.rule.script:
            script = os.path.relpath(Path(job.rule.basedir) / job.rule.script, REPO)
            assert script in deps, f"{name}: script {script} is not a DVC dep"


def test_dvc_yaml_is_generated_from_the_current_workflow_and_config(monkeypatch):
    monkeypatch.chdir(REPO)
    assert (REPO / "dvc.yaml").read_text() == render(), "dvc.yaml is stale: run python scripts/write_dvc_yaml.py"


def _rule_names() -> set[str]:
    return {job.rule.name for job in build_jobs(["all"])} | {"all"}


def test_profiles_and_job_scripts_name_existing_rules():
    rules = _rule_names()
    for profile in (REPO / "profiles").glob("*/config.yaml"):
        settings = yaml.safe_load(profile.read_text())
        for section in ("set-resources", "set-threads"):
            unknown = set(settings.get(section, {})) - rules
            assert not unknown, f"{profile}: {section} names rules that do not exist: {unknown}"
    for script in (REPO / "workflow" / "scripts").glob("*.py"):
        named = set(re.findall(r"`(\w+)`", script.read_text().split("\n")[0]))
        assert named and named <= rules, f"{script.name}: its docstring names {named - rules}, not rules"


def test_workflow_is_formatted_and_lint_free():
    formatted = subprocess.run([BIN / "snakefmt", "--check", "Snakefile", "rules"], cwd=REPO,
                               capture_output=True, text=True)
    assert formatted.returncode == 0, formatted.stderr[-2000:]
    for config in ("config/config.yaml", "config/tiny.yaml"):
        lint = subprocess.run([BIN / "snakemake", "--lint", "--configfile", config], cwd=REPO,
                              capture_output=True, text=True)
        assert lint.returncode == 0 and "Lints for" not in lint.stdout + lint.stderr, lint.stdout[-3000:]


def test_snakefile_validates_the_config_before_running(tmp_path):
    bad = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    bad["training"]["lr"] = -1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = subprocess.run([BIN / "snakemake", "-n", "pareto_table", "--configfile", str(path)], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "'training.lr'" in result.stdout + result.stderr


@pytest.mark.parametrize("name", ["config.yaml", "tiny.yaml", "fashion_mnist_full.yaml", "cifar10.yaml",
                                  "imagenet.yaml"])
def test_shipped_configs_are_valid(name):
    config = validate_config(yaml.safe_load((REPO / "config" / name).read_text()), source=name)
    assert config["results_dir"].startswith("results/")


def test_tiny_config_has_the_default_methods_and_targets():
    default, tiny = load_config(REPO / "config" / "config.yaml"), load_config(REPO / "config" / "tiny.yaml")
    assert list(tiny["methods"]) == list(default["methods"])
    assert tiny["dsnas"]["targets_mflops"] == default["dsnas"]["targets_mflops"]


def test_environment_yml_installs_the_pinned_requirements():
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    assert "python=3.11" in environment["dependencies"] and "pip" in environment["dependencies"]
    pip = next(d for d in environment["dependencies"] if isinstance(d, dict))["pip"]
    assert "-r requirements.txt" in pip
    pins = (REPO / "requirements.txt").read_text()
    for package in ("torch==", "torchvision==", "snakemake==", "dvc==", "scikit-learn=="):
        assert package in pins


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}:{os.environ['PATH']}"})
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow
def test_tiny_pipeline_end_to_end_with_dvc_repro(tmp_path):
    """The tiny config, laid where dvc.yaml expects the default one, through `dvc repro` (one Snakemake
    target per stage) in a fresh git repository; then both tools report nothing left to do."""
    work = tmp_path / "project"
    work.mkdir()
    for name in ["Snakefile", "dvc.yaml", "rules", "workflow", "config", "profiles", "data"]:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, work / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, work / name)
    tiny = load_config(REPO / "config" / "tiny.yaml", overrides={"results_dir": "results/default"})
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(tiny, sort_keys=False))
    _run(["git", "init", "-q"], work)
    _run(["dvc", "init", "-q"], work)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], work)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], work)
    _run(["dvc", "repro"], work)

    paper = work / "results" / "default" / "paper"
    table = (paper / "pareto_table.md").read_text()
    for method in tiny["methods"]:
        assert method in (paper / "pareto_table.csv").read_text()
    assert "DSNAS" in table
    for figure in ("pareto_fronts", "accuracy_by_flops_bin", "predictor_rank", "training_curves"):
        assert (paper / "figures" / f"{figure}.png").stat().st_size > 1000
    for ablation in ("sampler", "estimator", "k"):
        assert (paper / "ablations" / f"{ablation}.pdf").is_file()
    assert (work / "dvc.lock").is_file()

    nothing_to_do = _run(["snakemake", "-n", "pareto_table", "ablation_plots"], work)
    assert "Nothing to be done" in nothing_to_do.stdout + nothing_to_do.stderr
    status = _run(["dvc", "status"], work)
    assert "up to date" in status.stdout

    (paper / "ablations" / "k.png").unlink()
    _run(["snakemake", "--cores", "1", f"{paper.relative_to(work)}/ablations/k.png"], work)
    assert (paper / "ablations" / "k.png").is_file()
