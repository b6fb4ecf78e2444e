"""The Snakemake workflow and dvc.yaml: they agree, and the tiny config runs end to end through both."""

from __future__ import annotations

import copy
import csv
import fnmatch
import functools
import hashlib
import io
import itertools
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from attentivenas.config import load_config, merge, validate_config
from attentivenas.config import schema as config_schema
from attentivenas.dvcfile import render
from attentivenas.layout import ABLATIONS, FIGURES, ResultsLayout
from attentivenas.specs import load_experiment

REPO = Path(__file__).resolve().parents[1]
MILESTONE_FILES = {"data": "data.smk", "predictor": "predictor.smk", "supernet": "supernet.smk",
                   "search": "search.smk", "dsnas": "dsnas.smk", "paper": "paper.smk"}
BIN = Path(sys.executable).parent


def build_jobs(targets: list[str], workdir: Path = REPO) -> list:
    """Every job Snakemake plans for `targets` (all of them, as if nothing existed yet)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import DAGSettings, OutputSettings, Quietness, ResourceSettings

    cwd = Path.cwd()
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            workflow_api = api.workflow(resource_settings=ResourceSettings(cores=1),
                                        snakefile=workdir / "Snakefile", workdir=workdir)
            workflow_api.dag(DAGSettings(targets=set(targets), forceall=True))
            workflow = workflow_api._workflow
            workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True)
            workflow._build_dag()
            return list(workflow.dag.jobs)
    finally:
        os.chdir(cwd)


def _entries(stage: dict, key: str) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in stage.get(key, [])]


def _covered(path: str, declared: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in declared)


@pytest.fixture(scope="module")
def dvc_stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def stage_command(stage: dict) -> tuple[list[str], str]:
    """A DVC stage's Snakemake targets and the Snakefile it runs them from."""
    words = stage["cmd"].split()
    targets = list(itertools.takewhile(lambda word: not word.startswith("-"), words[1:]))
    return targets, words[words.index("--snakefile") + 1] if "--snakefile" in words else "Snakefile"


REPORT_RULES = {"paper_table", "figures", "ablation_plot", "pareto_table", "ablation_plots"}


def test_every_milestone_has_a_dvc_stage_that_runs_its_target(dvc_stages):
    assert set(dvc_stages) == set(MILESTONE_FILES)
    for stage in dvc_stages.values():
        command = stage["cmd"].split()
        assert command[0] == "snakemake" and command[-2:] == ["--cores", "all"]
        assert not command[1].startswith("-"), "the target comes first"
    assert stage_command(dvc_stages["paper"])[1] == "workflow/paper_only.smk"
    assert "--forceall" in dvc_stages["paper"]["cmd"].split()


def workflow_rules(snakefile: str) -> dict[str, object]:
    """The rules a Snakefile defines, by name (nothing is planned)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import DAGSettings, OutputSettings, Quietness, ResourceSettings

    cwd = Path.cwd()
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            workflow_api = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=REPO / snakefile,
                                        workdir=REPO)
            workflow_api.dag(DAGSettings())
            return {rule.name: rule for rule in workflow_api._workflow.rules}
    finally:
        os.chdir(cwd)


def test_the_paper_only_workflow_has_only_the_report_rules():
    """It can plan the report and nothing upstream; its rules are the full workflow's."""
    paper_only, full = workflow_rules("workflow/paper_only.smk"), workflow_rules("Snakefile")
    assert set(paper_only) == REPORT_RULES | {"paper"}
    for name in REPORT_RULES:
        assert str(paper_only[name].output) == str(full[name].output), name
        assert Path(paper_only[name].snakefile) == REPO / "rules" / "paper.smk"


@pytest.mark.parametrize("name", list(MILESTONE_FILES))
def test_dvc_stage_agrees_with_the_snakemake_dag(dvc_stages, name):
    stage = dvc_stages[name]
    targets, snakefile = stage_command(stage)
    jobs = build_jobs(targets)  # the full workflow's DAG: the paper-only rules are its rules (tested above)
    rule_file = f"rules/{MILESTONE_FILES[name]}"
    own = [j for j in jobs if Path(j.rule.snakefile) == REPO / rule_file]
    assert own, f"{name}: no job of {rule_file} for targets {targets}"
    assert {j.rule.name for j in own if not j.output} <= set(targets) | {"all"}
    produced_by_own = {str(f) for j in own for f in j.output}
    outs = _entries(stage, "outs") + _entries(stage, "metrics") + _entries(stage, "plots")
    deps = _entries(stage, "deps")
    assert rule_file in deps and "Snakefile" in deps and snakefile in deps
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


def test_the_dvc_yaml_generator_command_checks_currency():
    result = subprocess.run([sys.executable, "scripts/write_dvc_yaml.py", "--check"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0 and "is current" in result.stdout


def _rule_names() -> set[str]:
    return {job.rule.name for job in build_jobs(["all"])} | {"all"}


def test_rules_set_their_threads_explicitly():
    """Every rule with outputs says its threads; none takes the submitting host's (`workflow.cores`)."""
    for path in [REPO / "Snakefile", *(REPO / "rules").glob("*.smk")]:
        text = path.read_text()
        assert "workflow.cores" not in text, path
        for block in re.split(r"^rule ", text, flags=re.M)[1:]:
            body = block.split("\n\n\n")[0]
            if "    output:" in body:
                assert "    threads:" in body, f"{path}: rule {block.split(':')[0]} does not set its threads"


def test_the_slurm_profile_dry_runs_with_its_resources():
    """`snakemake -n --profile profiles/slurm-gpu` with the Slurm executor plugin: every job gets the
    profile's partition, threads and GPUs, and nothing is inherited from the local default profile."""
    default = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    assert "cores" not in default, "profiles/default's cores would cap every cluster job's threads"
    slurm = yaml.safe_load((REPO / "profiles" / "slurm-gpu" / "config.yaml").read_text())
    result = _run(["snakemake", "-n", "--profile", "profiles/slurm-gpu", "--cores", "256", "pareto_table",
                   "--configfile", "config/imagenet.yaml"], REPO)
    log = result.stdout + result.stderr
    jobs = {}
    for block in re.split(r"\n\s*\n", log):
        name = re.search(r"^rule (\w+):", block, flags=re.M)
        if name and "resources:" in block:
            threads = re.search(r"threads: (\d+)", block)
            resources = dict(re.findall(r"(\w+)=([^,\s]+)", block.split("resources:")[1].splitlines()[0]))
            jobs.setdefault(name.group(1), []).append((int(threads.group(1)) if threads else 1, resources))
    assert {"train_supernet", "warmup_supernet", "dsnas_search", "search_pareto", "paper_table"} <= set(jobs)
    declared = {job.rule.name: job.rule.resources["_cores"] for job in build_jobs(["pareto_table", "all"])}
    for rule, planned in jobs.items():
        for threads, resources in planned:
            expected = slurm["set-resources"].get(rule, {})
            assert resources["slurm_partition"] == expected.get("slurm_partition", "cpu"), rule
            if "gpu" in expected:
                assert resources["gpu"] == str(expected["gpu"]), rule
            assert threads == slurm["set-threads"].get(rule, declared[rule]), rule
            if "cpus_per_task" in expected:
                assert int(expected["cpus_per_task"]) == threads, f"{rule}: cpus_per_task is not its threads"


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
    formatted = subprocess.run([BIN / "snakefmt", "--check", "Snakefile", "rules", "workflow/paper_only.smk"],
                               cwd=REPO, capture_output=True, text=True)
    assert formatted.returncode == 0, formatted.stderr[-2000:]
    for snakefile, config in (("Snakefile", "config/config.yaml"), ("Snakefile", "config/tiny.yaml"),
                              ("workflow/paper_only.smk", "config/config.yaml")):
        lint = subprocess.run([BIN / "snakemake", "--lint", "--snakefile", snakefile, "--configfile", config],
                              cwd=REPO, capture_output=True, text=True)
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


def test_k_ablation_config_adds_two_values_of_k_to_the_default_run():
    """config/ablation_k.yaml on top of the default config (the README's command, dry): BestUp (loss) at
    k = 2, 3 and 5, six supernets and searches, no DSNAS, its own results folder."""
    files = ("config/config.yaml", "config/ablation_k.yaml")
    merged = {}
    for name in files:
        merged = merge(merged, yaml.safe_load((REPO / name).read_text()))
    config = validate_config(merged, source=files[-1])
    assert sorted(m["k"] for m in config["methods"].values()
                  if m["sampler"] == "attentive" and m["mode"] == "bestup" and m["estimator"] == "loss") == [2, 3, 5]
    dry = _run([BIN / "snakemake", "-n", "ablation_plots", "--configfile", *files], REPO).stdout
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", dry, re.MULTILINE))
    assert counts["train_supernet"] == counts["search_pareto"] == "6" and "dsnas_search" not in counts
    assert f"{config['results_dir']}/paper/ablations/k.png" in dry and config["results_dir"] != "results/default"


def test_comparison_config_runs_every_method_over_three_seeds():
    """config/comparison.yaml on top of the default config (the README's command, dry): the warm-up and
    predictor once, each method's training and search and each DSNAS target once per seed, BestUp (loss)
    at three values of k, its own folder."""
    files = ("config/config.yaml", "config/comparison.yaml")
    merged = {}
    for name in files:
        merged = merge(merged, yaml.safe_load((REPO / name).read_text()))
    config = validate_config(merged, source=files[-1])
    assert len(config["seeds"]) >= 3 and config["results_dir"] != "results/default"
    assert len({m["k"] for m in config["methods"].values() if m["sampler"] == "attentive"}) >= 3
    command = ["snakemake", "--cores", "all", "pareto_table", "ablation_plots", "--configfile", *files]
    assert " ".join(command) in (REPO / "README.md").read_text()  # the README's command, run here dry
    dry = _run([BIN / "snakemake", "-n", "--forceall", *command[3:]], REPO).stdout  # its results are committed
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", dry, re.MULTILINE))
    runs = len(config["seeds"]) * len(config["methods"])
    assert counts["train_supernet"] == counts["search_pareto"] == str(runs)
    assert counts["dsnas_search"] == str(len(config["seeds"]) * len(config["dsnas"]["targets_mflops"]))
    assert counts["warmup_supernet"] == "1"


def test_environment_yml_installs_the_pinned_requirements():
    """The same pins, spelled out: Snakemake copies the file elsewhere to build a rule's environment,
    so it cannot refer to requirements.txt."""
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    assert "python=3.11" in environment["dependencies"] and "pip" in environment["dependencies"]
    pip = next(d for d in environment["dependencies"] if isinstance(d, dict))["pip"]
    pins = [line for line in (REPO / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert pip == pins
    for package in ("torch==", "torchvision==", "snakemake==", "dvc==", "scikit-learn=="):
        assert any(pin.startswith(package) for pin in pins)


def test_every_job_runs_in_the_conda_environment():
    for job in build_jobs(["all"]):
        if job.output:
            assert job.rule.conda_env is not None, job.rule.name
            assert (Path(job.rule.basedir) / job.rule.conda_env).resolve() == REPO / "environment.yml"


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}:{os.environ['PATH']}"})
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


PROJECT_FILES = [".gitignore", "Snakefile", "README.md", "environment.yml", "requirements.txt", "dvc.yaml", "rules",
                 "workflow", "config", "profiles", "data", "scripts", "attentivenas"]
MAX_CHECKSUM = 1_000_000_000  # as profiles/default: DVC's relinking of cached outs bumps their mtimes


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory) -> Path:
    """The tiny config, laid where dvc.yaml expects the default one (dvc.yaml regenerated for it), run
    through `dvc repro` (one Snakemake target per stage) in a fresh git repository: a finished run."""
    work = tmp_path_factory.mktemp("tiny") / "project"
    work.mkdir()
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, work / name, ignore=shutil.ignore_patterns("__pycache__", "results"))
        else:
            shutil.copy2(source, work / name)
    tiny = load_config(REPO / "config" / "tiny.yaml", overrides={"results_dir": "results/default"})
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(tiny, sort_keys=False))
    _run([sys.executable, "scripts/write_dvc_yaml.py"], work)
    _run(["git", "init", "-q"], work)
    _run(["dvc", "init", "-q"], work)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], work)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], work)
    _run(["dvc", "repro"], work)
    return work


def job_name(job) -> str:
    wildcards = ",".join(str(v) for v in job.wildcards_dict.values())
    return f"{job.rule.name}[{wildcards}]" if wildcards else job.rule.name


def planned_jobs(workdir: Path, configfile: Path | None = None, targets: tuple[str, ...] = ("all",)) -> set[str]:
    """The jobs a dry run (`snakemake -n`) plans in `workdir`, in this process (fast: no start-up)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, Quietness, ResourceSettings

    config = ConfigSettings(configfiles=[configfile or workdir / "config" / "config.yaml"])
    cwd = Path.cwd()
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            workflow_api = api.workflow(resource_settings=ResourceSettings(cores=1), config_settings=config,
                                        snakefile=workdir / "Snakefile", workdir=workdir)
            workflow_api.dag(DAGSettings(targets=set(targets), max_checksum_file_size=MAX_CHECKSUM))
            workflow = workflow_api._workflow
            workflow._prepare_dag(forceall=False, ignore_incomplete=False, lock_warn_only=True, nolock=True)
            workflow._build_dag()
            return {job_name(job) for job in workflow.dag.needrun_jobs() if job.output}
    finally:
        os.chdir(cwd)


@functools.cache
def job_graph(workdir: Path) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """Every job of the project's full DAG, and each job's direct consumers."""
    all_jobs = [job for job in build_jobs(["all"], workdir) if job.output]  # not the aggregate targets
    producer = {str(f): job_name(j) for j in all_jobs for f in j.output}
    consumers: dict[str, set[str]] = {}
    for job in all_jobs:
        for path in map(str, job.input):
            if path in producer:
                consumers.setdefault(producer[path], set()).add(job_name(job))
    return frozenset(map(job_name, all_jobs)), {k: frozenset(v) for k, v in consumers.items()}


def downstream(workdir: Path, jobs: set[str]) -> set[str]:
    """`jobs` and every job that consumes their outputs, directly or not, in the full DAG."""
    consumers = job_graph(workdir)[1]
    result, todo = set(), list(jobs)
    while todo:
        name = todo.pop()
        if name not in result:
            result.add(name)
            todo.extend(consumers.get(name, ()))
    return result


def _result_hashes(layout: ResultsLayout) -> dict[str, str]:
    return {str(path.relative_to(layout.root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(layout.root.rglob("*")) if path.is_file() and layout.is_result(path)}


@pytest.mark.slow
def test_the_same_config_gives_byte_identical_results(tiny_project, tmp_path):
    """A second, independent run (Snakemake directly, two jobs at once) writes the same bytes into every
    result file as the finished `dvc repro` run: checkpoints, CSVs, JSON, tables and figures."""
    second = tmp_path / "project"
    shutil.copytree(tiny_project, second, ignore=shutil.ignore_patterns("results", ".snakemake", ".dvc", ".git"))
    _run(["snakemake", "--cores", "2", "all"], second)
    results_dir = load_config(tiny_project / "config" / "config.yaml")["results_dir"]
    first_hashes = _result_hashes(ResultsLayout(tiny_project / results_dir))
    second_hashes = _result_hashes(ResultsLayout(second / results_dir))
    assert any(name.endswith(".pt") for name in first_hashes) and any(name.endswith(".png") for name in first_hashes)
    assert second_hashes.keys() == first_hashes.keys()
    differing = [name for name, digest in first_hashes.items() if second_hashes[name] != digest]
    assert not differing, f"result files that differ between two runs of one config: {differing}"


@pytest.mark.slow
def test_tiny_pipeline_end_to_end_with_dvc_repro(tiny_project):
    """The finished tiny run has every artefact; then both tools report nothing left to do."""
    work = tiny_project
    tiny = load_config(work / "config" / "config.yaml")
    paper = ResultsLayout(work / tiny["results_dir"]).paper
    table = paper.table_markdown.read_text()
    for method in tiny["methods"]:
        assert method in paper.table_csv.read_text()
    assert "DSNAS" in table
    metrics = json.loads(paper.statistics.read_text())
    budget = tiny["budget"]["subnet_images"]
    for method in [*tiny["methods"], "dsnas"]:
        assert metrics[method]["seeds"] == tiny["seeds"] == [0, 1]
        used = metrics[method]["subnet_images_trained"]
        assert abs(used - budget) <= 0.05 * budget, f"{method} trained {used} subnet-images of {budget}"
        assert metrics[method]["hypervolume"]["n"] == 2 and metrics[method]["hypervolume"]["low95"] is not None
    assert metrics["attentive_bestup_loss"]["images_scored"] > 0 == metrics["bignas"]["images_scored"]
    for figure in FIGURES:
        assert paper.figure(figure, "png").stat().st_size > 1000
    for ablation in ABLATIONS:
        assert paper.ablation(ablation, "pdf").is_file()
    assert (work / "dvc.lock").is_file()

    nothing_to_do = _run(["snakemake", "-n", "pareto_table", "ablation_plots"], work)
    assert "Nothing to be done" in nothing_to_do.stdout + nothing_to_do.stderr
    assert planned_jobs(work) == set()
    status = _run(["dvc", "status"], work)
    assert "up to date" in status.stdout

    paper.ablation("k", "png").unlink()
    _run(["snakemake", "--cores", "1", str(paper.ablation("k", "png").relative_to(work))], work)
    assert paper.ablation("k", "png").is_file()


# -- every config key reruns exactly the stages that read it ----------------------------------------

EVERYTHING = {"prepare_data"}
TRAINED = {"warmup_supernet", "train_supernet", "dsnas_search"}
EVALUATED = TRAINED | {"sample_predictor_subnets", "search_pareto"}
REPORT = {"paper_table", "figures", "ablation_plot"}
ATTENTIVE = "train_supernet[attentive_bestup_loss,*|attentive_worstup_loss,*|attentive_bestup_predictor,*]"
METHOD = "attentive_bestup_loss"
TINY_METHODS = ("bignas", "attentive_bestup_loss", "attentive_worstup_loss", "attentive_bestup_predictor")
NEW_SEED = 2  # the tiny config's seeds are 0 and 1
WARMUP_KEY = "epochs"  # the representative key of `warmup` and of a method's `training` (the same schema)

STAGES_OF_KEY = {
    # key: the stages (all their jobs, or the jobs named in brackets) whose settings it changes; the test
    # adds every job downstream. A new schema key without an entry here fails the walk.
    "seed": EVALUATED | {"fit_predictor"},
    "space": EVERYTHING,
    "resolution_mode": EVALUATED,
    "device": EVALUATED,
    "memory_format": EVALUATED,
    "results_dir": EVERYTHING,
    **{f"data.{key}": EVERYTHING for key in ("dataset", "source", "search_holdout", "split_seed", "num_workers")},
    **{f"data.augmentation.{key}": EVERYTHING for key in ("random_crop_padding", "horizontal_flip",
                                                          "random_resized_crop", "autoaugment")},
    "supernet.dropout": TRAINED,
    "supernet.drop_connect": TRAINED,
    "seeds": {f"train_supernet[{'|'.join(f'{m},{NEW_SEED}' for m in TINY_METHODS)}]",
              f"search_pareto[{'|'.join(f'{m},{NEW_SEED}' for m in TINY_METHODS)}]",
              f"dsnas_search[1,{NEW_SEED}|2.5,{NEW_SEED}]"} | REPORT,  # new runs; the others stay
    "budget.subnet_images": {"train_supernet", "dsnas_search"} | REPORT,
    "training.epochs": {"train_supernet"},  # the tiny warm-up sets its own epochs and steps
    "training.max_steps_per_epoch": set(),  # the budget sets the methods'
    **{f"training.{key}": {"warmup_supernet", "train_supernet"} for key in (
        "batch_size", "num_arch_training", "lr", "lr_scaling", "momentum",
        "nesterov", "weight_decay", "warmup_epochs", "warmup_start_factor", "label_smoothing", "grad_clip_value",
        "bn_momentum", "checkpoint_every_steps", "log_every_steps", "validate_images", "processes", "precision",
        "sync_batchnorm", "distillation", "distillation_weight", "distillation_ramp_steps", "middle_loss_weight")},
    "training.init": {"train_supernet"},  # the tiny warm-up sets its own init
    **{f"sampler.{key}": {ATTENTIVE} for key in ("table_size", "prior", "max_tries", "score_images")},
    f"warmup.{WARMUP_KEY}": {"warmup_supernet"},
    **{f"methods.*.{key}": {f"train_supernet[{METHOD},*]"} | REPORT for key in ("mode", "k")},  # make the label
    "methods.*.sampler": {f"train_supernet[{METHOD},*]"} | REPORT,
    "methods.*.estimator": {f"train_supernet[{METHOD},*]"} | REPORT,
    "methods.*.label": REPORT,
    f"methods.*.training.{WARMUP_KEY}": {f"train_supernet[{METHOD},*]"},
    **{f"evaluation.{key}": EVALUATED for key in ("calibration_images", "calibration_batch_size", "batch_size")},
    "predictor.num_subnets": {"sample_predictor_subnets"},
    **{f"predictor.{key}": {"fit_predictor"} for key in ("holdout_fraction", "model", "params", "flops_bins")},
    **{f"search.{key}": {"search_pareto"} for key in (
        "population", "generations", "mutations_per_generation", "crossovers_per_generation", "mutation_prob",
        "buckets", "gap_children", "max_tries", "predictor_prefilter", "targets_mflops")},
    "dsnas.enabled": REPORT,  # the DSNAS jobs leave the DAG; the report drops them
    "dsnas.targets_mflops": {"dsnas_search[2,0|2,1]"} | REPORT,  # 2.5 -> 2: one new run per seed
    "dsnas.init": {"dsnas_search"} | REPORT,  # the report adds the warm-up's compute to DSNAS
    "dsnas.max_steps_per_epoch": set(),  # the budget sets it
    **{f"dsnas.{key}": {"dsnas_search"} for key in (
        "epochs", "batch_size", "lr", "lr_scaling", "momentum", "nesterov", "weight_decay",
        "label_smoothing", "arch_lr", "arch_betas", "fix_margin", "flops_penalty", "warmup_epochs",
        "checkpoint_every_steps", "flops_penalty_kind", "flops_penalty_side", "child_epochs", "regularize")},
    "report.formats": {"figures", "ablation_plot"},
}
NEW_VALUES = {  # keys whose next valid value the schema alone cannot give
    "seeds": [0, NEW_SEED],
    "budget.subnet_images": 1056,  # one the methods and DSNAS meet in whole steps
    "space": "fmnist-copy.yaml",
    "results_dir": "results/other",
    "data.source": "data/fashion-mnist/fmnist-10k-2k.npz",
    "data.search_holdout": 0.25,
    "sampler.score_images": 16,
    "methods.*.label": "renamed",
    "predictor.params": {"n_estimators": 5, "max_depth": 5},
    "search.targets_mflops": [1.0, 2.0],
    "dsnas.targets_mflops": [1.0, 2.0],
    "dsnas.arch_betas": [0.6, 0.999],
    "report.formats": ["png"],
}


def schema_leaves(node: dict, prefix: str = "") -> list[str]:
    """Every leaf key of the config schema; `methods.*` stands for any method, a training override
    (`warmup`, `methods.*.training`) for its representative key."""
    if "$ref" in node:
        return [f"{prefix}.{WARMUP_KEY}"]
    if "properties" in node:
        return [leaf for key, child in node["properties"].items()
                for leaf in schema_leaves(child, f"{prefix}.{key}" if prefix else key)]
    if isinstance(node.get("additionalProperties"), dict):
        return schema_leaves(node["additionalProperties"], f"{prefix}.*")
    return [prefix]


def _path(key: str) -> list[str]:
    return [METHOD if part == "*" else part for part in key.split(".")]


def _leaf_schema(key: str) -> dict:
    node = config_schema()
    for part in key.split("."):
        if "$ref" in node:
            node = config_schema()["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        node = node["additionalProperties"] if part == "*" else node["properties"][part]
    return node


def new_value(key: str, old):
    """Another valid value for `key` than `old`."""
    if key in NEW_VALUES:
        return NEW_VALUES[key]
    rule = _leaf_schema(key)
    if "enum" in rule:
        return next(v for v in rule["enum"] if v != old)
    if isinstance(old, bool):
        return not old
    if old is None:
        return 2
    if isinstance(old, int):
        return old - 1 if "maximum" in rule and old + 1 > rule["maximum"] else old + 1
    if isinstance(old, float):
        return old / 2 if old else 0.1
    raise AssertionError(f"config key {key!r}: give a new value in NEW_VALUES")


def _expand(workdir: Path, stages: set[str]) -> set[str]:
    """Stage names to job names: `stage` means each of its jobs; `stage[a,0|b,*]` the jobs whose wildcard
    values (comma-joined) are named, where `*` matches any existing job's."""
    all_jobs = job_graph(workdir)[0]
    jobs = set()
    for stage in stages:
        name, _, wildcards = stage.partition("[")
        if not wildcards:
            jobs |= {j for j in all_jobs if j.split("[")[0] == name}
        for values in filter(None, wildcards.rstrip("]").split("|")):
            if "*" in values:
                jobs |= {j for j in all_jobs if j.split("[")[0] == name
                         and fnmatch.fnmatchcase(j.partition("[")[2].rstrip("]"), values)}
            else:
                jobs.add(f"{name}[{values}]")
    return jobs


def test_every_schema_key_has_an_entry():
    leaves = schema_leaves(config_schema())
    assert set(leaves) == set(STAGES_OF_KEY), (
        f"schema keys without an entry: {sorted(set(leaves) - set(STAGES_OF_KEY))}; entries for keys that are "
        f"not in the schema: {sorted(set(STAGES_OF_KEY) - set(leaves))}")


@pytest.mark.slow
def test_each_config_key_plans_exactly_the_stages_that_read_it(tiny_project, tmp_path):
    work = tiny_project
    resolved = load_config(work / "config" / "config.yaml")
    (work / "fmnist-copy.yaml").write_text((REPO / "attentivenas" / "spaces" / "fmnist.yaml").read_text())
    all_jobs = job_graph(work)[0]
    wrong = {}
    for key in schema_leaves(config_schema()):
        changed = copy.deepcopy(resolved)
        *parents, leaf = _path(key)
        node = changed
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = new_value(key, node.get(leaf, resolved["training"].get(leaf)))
        path = tmp_path / "changed.yaml"
        path.write_text(yaml.safe_dump(changed, sort_keys=False))
        if key == "results_dir":
            expected = all_jobs
        elif key == "dsnas.enabled":
            expected = _expand(work, STAGES_OF_KEY[key])
        else:
            expected = downstream(work, _expand(work, STAGES_OF_KEY[key]))
        planned = planned_jobs(work, path)
        if planned != expected:
            wrong[key] = {"unexpected": sorted(planned - expected), "missing": sorted(expected - planned)}
    assert not wrong, f"dry runs planned other jobs than the table says: {wrong}"


@pytest.mark.slow
def test_key_order_and_comments_plan_nothing_and_a_label_only_the_report(tiny_project, tmp_path):
    work = tiny_project
    resolved = load_config(work / "config" / "config.yaml")

    def reordered(value, key=""):  # the methods keep their order: it is the tables' order
        if not isinstance(value, dict):
            return value
        return {k: reordered(value[k], k) for k in (value if key == "methods" else reversed(list(value)))}

    path = tmp_path / "reordered.yaml"
    path.write_text("# the same values, keys in reverse order\n" + yaml.safe_dump(reordered(resolved), sort_keys=False))
    assert planned_jobs(work, path) == set()
    labelled = copy.deepcopy(resolved)
    labelled["methods"]["bignas"]["label"] = "BigNAS, renamed"
    path.write_text(yaml.safe_dump(labelled))
    assert {j.split("[")[0] for j in planned_jobs(work, path)} == REPORT


@pytest.mark.slow
def test_editing_package_code_reruns_the_stages_that_import_it(tiny_project):
    work = tiny_project
    edits = {"attentivenas/training.py": {"warmup_supernet", "train_supernet"},
             "attentivenas/reporting.py": REPORT | {"fit_predictor"},  # which draws the predictor's plot
             "README.md": set()}
    for name, stages in edits.items():
        path = work / name
        text = path.read_text() if path.is_file() else ""
        stat = path.stat() if path.is_file() else None
        try:
            path.write_text(text + "\n# edited\n")
            assert planned_jobs(work) == downstream(work, _expand(work, stages)), name
        finally:
            path.write_text(text)
            if stat is not None:
                os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert planned_jobs(work) == set()


DVC_STAGES_OF_KEY = {
    "seed": {"predictor"},  # the tiny config lists its seeds: `seed` seeds the warm-up and predictor
    "seeds": {"supernet", "search", "dsnas", "paper"},
    "supernet.dropout": {"predictor", "supernet", "dsnas"},
    "resolution_mode": {"predictor", "supernet", "search", "dsnas"},
    "report.formats": {"paper"},  # display only (the tiny config spells no label, so DVC watches none)
}


def stages_to_rerun(work: Path) -> set[str]:
    """The DVC stages whose params or deps changed (`dvc status`; regenerated outs are not a cause)."""
    status = json.loads(_run(["dvc", "status", "--json"], work).stdout)
    return {stage for stage, changes in status.items()
            if any(isinstance(c, dict) and {"changed params", "changed deps"} & set(c) for c in changes)}


@pytest.mark.slow
def test_dvc_status_sees_exactly_the_stages_a_key_belongs_to(tiny_project):
    work = tiny_project
    config_file = work / "config" / "config.yaml"
    original = config_file.read_text()
    changes = {"seed": 1, "seeds": [0, 2], "supernet.dropout": 0.1, "resolution_mode": "crop",
               "report.formats": ["png"]}
    try:
        for key, value in changes.items():
            changed = yaml.safe_load(original)
            *parents, leaf = key.split(".")
            node = changed
            for part in parents:
                node = node[part]
            node[leaf] = value
            config_file.write_text(yaml.safe_dump(changed, sort_keys=False))
            assert stages_to_rerun(work) == DVC_STAGES_OF_KEY[key], key
    finally:
        config_file.write_text(original)
    training = work / "attentivenas" / "training.py"
    text = training.read_text()
    try:
        training.write_text(text + "\n# edited\n")
        assert stages_to_rerun(work) == {"predictor", "supernet"}
    finally:
        training.write_text(text)
    assert stages_to_rerun(work) == set()


# -- runtime files: dry runs, a refused second run and interrupts leave nothing half-written --------

def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _results(work: Path) -> Path:
    return work / load_config(work / "config" / "config.yaml")["results_dir"]


def _start(work: Path, *targets: str) -> subprocess.Popen:
    """`snakemake --cores 1 TARGETS` in its own process group, as a terminal would run it."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}:{os.environ['PATH']}"}
    return subprocess.Popen([BIN / "snakemake", "--cores", "1", *targets], cwd=work, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for(condition, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the job to start"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_dry_run_writes_nothing(tiny_project):
    results = _results(tiny_project)
    before = snapshot(results)
    _run(["snakemake", "-n", "all"], tiny_project)
    _run(["snakemake", "-n", "all", "--configfile", "config/config.yaml", "--config", "seed=3"], tiny_project)
    assert snapshot(results) == before


@pytest.mark.slow
def test_a_second_run_the_lock_refuses_touches_nothing(tiny_project):
    work, results = tiny_project, _results(tiny_project)
    layout = ResultsLayout(results)
    target = layout.paper.ablation("k", "png")
    outputs = [layout.paper.ablation("k", fmt) for fmt in ("png", "pdf")]
    target.unlink()
    first = _start(work, str(target.relative_to(work)))
    try:
        _wait_for(lambda: any((work / ".snakemake" / "locks").glob("*")))
        before = snapshot(results)
        second = subprocess.run([BIN / "snakemake", "--cores", "1", "all"], cwd=work, capture_output=True,
                                text=True, env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})
        assert second.returncode != 0
        assert "cannot be locked" in (second.stdout + second.stderr).lower()
        after = snapshot(results)
        first_job = {str(p.relative_to(results)) for p in (*outputs, layout.log("ablation_plot", "k"))}
        assert {k: v for k, v in after.items() if k not in first_job} == {
            k: v for k, v in before.items() if k not in first_job}, "the refused run changed the results"
    finally:
        assert first.wait(timeout=600) == 0, first.stdout.read()[-3000:]
    assert target.is_file() and planned_jobs(work) == set()


@pytest.mark.slow
@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_job_leaves_no_truncated_output(tiny_project, signal_number):
    """Ctrl-C (SIGINT to the process group) or SIGKILL while a job writes: every output is absent or
    whole, and the next run redoes the job."""
    work, results = tiny_project, _results(tiny_project)
    layout = ResultsLayout(results)
    outputs = [layout.paper.ablation("k", fmt) for fmt in load_config(work / "config" / "config.yaml")[
        "report"]["formats"]]
    targets = [str(p.relative_to(work)) for p in outputs]
    log = layout.log("ablation_plot", "k")
    for _ in range(5):  # a job that finished before the signal landed was not interrupted: try again
        for path in outputs:
            path.unlink(missing_ok=True)
        log.unlink(missing_ok=True)
        run = _start(work, *targets)
        _wait_for(log.is_file)
        os.killpg(run.pid, signal_number)
        run.wait(timeout=120)
        for path in outputs:
            if path.is_file():
                header = path.read_bytes()[:8]
                assert header.startswith(b"\x89PNG") or header.startswith(b"%PDF"), f"{path} is truncated"
        if signal_number == signal.SIGKILL:  # nothing could remove the lock: the documented recovery
            _run(["snakemake", "--unlock"], work)
        redo = _run(["snakemake", "-n", *targets], work)
        if "ablation_plot" in redo.stdout:
            break
        assert "Nothing to be done" in redo.stdout and all(path.is_file() for path in outputs)
    else:
        pytest.fail("the job finished before the signal in 5 tries: no interrupted job was checked")
    _run(["snakemake", "--cores", "1", *(str(p.relative_to(work)) for p in outputs)], work)
    assert all(p.is_file() for p in outputs) and planned_jobs(work) == set()


# -- the README's paper-only, DVC remote, metrics, plots and experiment commands, on the finished run --

README_TEXT = (REPO / "README.md").read_text()
PAPER_ONLY = "snakemake --snakefile workflow/paper_only.smk --cores all --forceall"
TOUCH = "snakemake --touch --cores 1"
REMOTE_FOLDER = "/mnt/shared/attentivenas-dvc"
COMMIT_REMOTE = 'git add .dvc/config && git commit -m "DVC remote for checkpoints"'
DVC_COMMANDS = {
    "repro": "dvc repro",  # the tiny_project fixture runs it
    "paper": "dvc repro --single-item paper",
    "metrics": "dvc metrics show",
    "plots": "dvc plots show",
    "exp_run": "dvc exp run -S 'config/config.yaml:methods.attentive_bestup_loss.k=5'",
    "exp_show": "dvc exp show",
    "remote": f"dvc remote add -d store {REMOTE_FOLDER}",
    "push": "dvc push",
    "pull": "dvc pull",
}
COMMIT_RUN = "git add -A && (git diff --cached --quiet || git commit -qm 'the finished run')"
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@t"}


def readme_commands(prefix: str) -> list[str]:
    """The README's shell lines that start with `prefix`, without their comments."""
    blocks = re.findall(r"```bash\n(.*?)```", README_TEXT, flags=re.S)
    return [line.split(" # ")[0].strip() for block in blocks for line in block.splitlines()
            if line.startswith(prefix)]


def _shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **GIT_IDENTITY, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}:{os.environ['PATH']}"}
    result = subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _cpu_seconds() -> float:
    """CPU time of the finished child processes so far (all of their descendants)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_readme_shows_the_commands_these_tests_run():
    assert set(readme_commands("dvc ")) == set(DVC_COMMANDS.values())
    assert set(readme_commands("git add .dvc")) == {COMMIT_REMOTE}
    paper_only = readme_commands("snakemake --snakefile workflow/paper_only.smk")
    assert paper_only and all(c.startswith(PAPER_ONLY) for c in paper_only)
    assert readme_commands("snakemake --touch") == [TOUCH]


@pytest.mark.slow
def test_the_paper_is_redrawn_from_committed_results_without_training(tiny_project, tmp_path):
    """A fresh clone of the finished run has no checkpoints: the README's paper-only command and
    `dvc repro --single-item paper` redraw the same paper in under a minute without training; a
    local-folder DVC remote then brings the checkpoints, and nothing is left to run."""
    work = tiny_project
    _shell(COMMIT_RUN, work)
    store = tmp_path / "store"
    _shell(DVC_COMMANDS["remote"].replace(REMOTE_FOLDER, str(store)), work)
    _shell(COMMIT_REMOTE, work)
    _shell(DVC_COMMANDS["push"], work)
    clone = tmp_path / "clone"
    _shell(f"git clone -q {work} {clone}", tmp_path)
    results = _results(clone)
    checkpoints = sorted(p.relative_to(_results(work)) for p in _results(work).rglob("*.pt"))
    assert checkpoints and not list(results.rglob("*.pt")), "checkpoints are in DVC's cache, not in git"
    paper = ResultsLayout(results).paper
    committed = _files(paper.dir)
    assert committed == _files(ResultsLayout(_results(work)).paper.dir)

    for command in (PAPER_ONLY, DVC_COMMANDS["paper"]):
        shutil.rmtree(paper.dir)
        start = _cpu_seconds()
        run = _shell(command, clone)
        cpu = _cpu_seconds() - start  # not wall time: other tests may share the cores
        assert cpu < 120, f"{command}: {cpu:.0f} CPU seconds, more than a minute on two cores"
        assert not re.search(r"\b(train_supernet|warmup_supernet|search_pareto|dsnas_search)\b",
                             run.stdout + run.stderr), f"{command} planned more than the report"
        assert _files(paper.dir) == committed, f"{command} drew another paper"
        assert not list(results.rglob("*.pt"))

    _shell(DVC_COMMANDS["pull"], clone)
    for checkpoint in checkpoints:
        assert (results / checkpoint).read_bytes() == (_results(work) / checkpoint).read_bytes()
    assert "up to date" in _shell("dvc status", clone).stdout
    _shell(TOUCH, clone)
    assert planned_jobs(clone) == set()
    assert "up to date" in _shell("dvc status", clone).stdout


@pytest.mark.slow
def test_the_snakemake_report_has_the_table_and_every_figure_with_its_caption(tiny_project, tmp_path):
    report = tmp_path / "report.zip"
    _run(["snakemake", "--report", str(report)], tiny_project)
    with zipfile.ZipFile(report) as archive:
        html = archive.read(next(n for n in archive.namelist() if n.endswith("report.html"))).decode()
    for name in [*(f"{n}.png" for n in (*FIGURES, *ABLATIONS)), "pareto_table.csv"]:
        entry = html.find(f'"filename": "{name}"')
        assert entry >= 0, f"{name} is not in the report"
        caption = re.search(r'"caption": "(.*?)(?<!\\)"', html[entry:]).group(1)
        assert len(caption) > 80 and "{{" not in caption, f"{name}: caption {caption!r}"
    assert "one weight-sharing supernet" in html, "the workflow description"


@pytest.mark.slow
def test_dvc_metrics_plots_and_an_experiment(tiny_project):
    work = tiny_project
    config = load_experiment(work / "config" / "config.yaml")
    methods, seeds = list(config.methods), config.run_seeds
    shown = _shell(DVC_COMMANDS["metrics"], work).stdout
    rows = [line for line in shown.splitlines() if "/paper/metrics/" in line]
    assert sorted(Path(r.split()[0]).stem for r in rows) == sorted([*methods, "dsnas"])
    assert max(map(len, shown.splitlines())) <= 120, shown
    values = json.loads(_shell("dvc metrics show --json", work).stdout)
    for file in values[""]["data"].values():
        assert all(isinstance(v, int | float) for v in file["data"].values())

    _shell(DVC_COMMANDS["plots"], work)
    assert (work / "dvc_plots" / "index.html").is_file()
    plots = json.loads(_shell("dvc plots show --json", work).stdout)["data"]
    runs = len(methods) * len(seeds)  # and the warm-up's curves
    for plot_id, x, files in (("pareto_fronts_test", "mflops", runs), ("training_curves", "epoch", runs + 1),
                              ("pareto_fronts_search", "mflops", runs), ("training_loss", "step", runs + 1),
                              ("predictor", "true", 1), ("dsnas_loss", "step", 2 * len(seeds))):
        (rendered,) = plots[plot_id]
        content = rendered["content"]
        assert content["encoding"]["x"]["field"] == x, plot_id
        series = {(v.get("filename") or v.get("filename::field") or "").split("::")[0]
                  for v in content["data"]["values"]}
        assert len(series) == files, f"{plot_id}: one series per file, got {series}"
    layout = ResultsLayout(_results(work).relative_to(work))
    images = [key for key, value in plots.items() if value[0]["type"] == "image"]
    assert sorted(images) == sorted([*(str(layout.paper.figure(n, "png")) for n in FIGURES),
                                     *(str(layout.paper.ablation(n, "png")) for n in ABLATIONS),
                                     str(layout.predictor.plot)])

    summary = work / layout.supernet(METHOD, seeds[0]).summary
    before = json.loads(summary.read_text())["weights_sha256"]
    _shell(COMMIT_RUN, work)
    try:
        _shell(DVC_COMMANDS["exp_run"], work)
        assert json.loads(summary.read_text())["weights_sha256"] != before, "the experiment retrained the method"
        _shell(DVC_COMMANDS["exp_show"], work)
        rows = list(csv.DictReader(io.StringIO(_shell("dvc exp show --csv", work).stdout)))
        k = next(column for column in rows[0] if column.endswith(f"methods.{METHOD}.k"))
        assert {row[k] for row in rows} >= {"2", "5"}, "the baseline and the experiment"
        assert any(column.endswith("best_top1_test") for column in rows[0]), "the metrics compare the runs"
    finally:
        _shell("git reset -q --hard && dvc checkout -q", work)
