"""What each pipeline stage reads: its resolved settings, derived from a validated config.

A stage's settings are the part of the config it uses, in the config's own shape, typed as the stage's
job (attentivenas.specs, what the package's functions take), with every override resolved: a run's
`training` is the section overlaid with the run's own keys, a method's steps derived from the budget
(attentivenas.budget); a per-seed stage's `seed` is its run's; a method keeps only the keys its
sampler reads; the report gets each method's label, the seeds and the baseline resolved. Nothing
else reaches the stage: the Snakemake rule passes them as its `params` (a canonical JSON string, so
key order and comments change nothing) and the stage's command receives exactly that string.
Display-only keys (labels, figure formats) reach only the report stages.
"""

from __future__ import annotations

import ast
import json
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

from attentivenas.budget import dsnas_steps_per_epoch, method_steps_per_epoch
from attentivenas.config import ConfigError
from attentivenas.specs import (
    WARMUP,
    DataJob,
    DsnasJob,
    DsnasRuns,
    DsnasSpec,
    ExperimentSpec,
    NetworkJob,
    PredictorJob,
    PredictorSampling,
    PredictorSpec,
    ReportJob,
    SamplingJob,
    SearchJob,
    Spec,
    TrainingJob,
)

STAGE_COMMANDS = {"prepare_data": "prepare-data", "warmup_supernet": "train",
                  "sample_predictor_subnets": "sample-subnets", "fit_predictor": "fit-predictor",
                  "train_supernet": "train", "search_pareto": "search", "dsnas_search": "dsnas",
                  "paper_table": "report", "figures": "report", "ablation_plot": "report"}
"""The pipeline's stages, by the name of the Snakemake rule that runs each one, and the command each runs."""
STAGES = tuple(STAGE_COMMANDS)
PER_SEED = ("train_supernet", "search_pareto", "dsnas_search")
"""The stages that run once per seed of config `seeds` (their settings' `seed` is the run's)."""
STAGE_JOBS: dict[str, type[Spec]] = {
    "prepare_data": DataJob, "warmup_supernet": TrainingJob, "sample_predictor_subnets": SamplingJob,
    "fit_predictor": PredictorJob, "train_supernet": TrainingJob, "search_pareto": SearchJob,
    "dsnas_search": DsnasJob, "paper_table": ReportJob, "figures": ReportJob, "ablation_plot": ReportJob}
"""What each stage's settings are, typed (attentivenas.specs)."""
PACKAGE = Path(__file__).resolve().parent
LAUNCHER = "attentivenas.pipeline"
"""The module that launches every job's command (`run_stage`)."""

_NETWORK = ("seed", "device", "memory_format", "space", "resolution_mode", "data")
"""The top-level config keys every network job reads (`NetworkJob` but `evaluation`), in dvc.yaml's order."""


def _network(experiment: ExperimentSpec) -> dict[str, Any]:
    return {key: getattr(experiment, key) for key in NetworkJob.keys()}


def _training_job(experiment: ExperimentSpec, run: str) -> TrainingJob:
    """A training run (`warmup` or a method): the network, its resolved recipe (a method's steps from the
    budget), its sampling and the attentive sampler's settings."""
    recipe, method = experiment.recipe(run), experiment.run_method(run)
    steps = None if run == WARMUP else method_steps_per_epoch(experiment, run)
    if steps is not None:
        recipe = replace(recipe, max_steps_per_epoch=steps)
    return TrainingJob(**_network(experiment), supernet=experiment.supernet, training=recipe, run=run,
                       method=method, sampler=experiment.sampler if method.attentive else None)


def _dsnas_job(experiment: ExperimentSpec) -> DsnasJob:
    recipe = DsnasSpec.part_of(experiment.dsnas)
    steps = dsnas_steps_per_epoch(experiment)
    if steps is not None:
        recipe = replace(recipe, max_steps_per_epoch=steps)
    return DsnasJob(**_network(experiment), supernet=experiment.supernet, dsnas=recipe)


def _report_job(experiment: ExperimentSpec, *, formats: bool, samplers: bool) -> ReportJob:
    methods = experiment.methods
    return ReportJob(space=experiment.space, labels={name: entry.label for name, entry in methods.items()},
                     samplers={name: entry.spec for name, entry in methods.items()} if samplers else {},
                     dsnas=DsnasRuns.part_of(experiment.dsnas), seeds=experiment.run_seeds,
                     budget=experiment.budget, baseline=experiment.baseline,
                     report=experiment.report if formats else None)


def training_stage(run: str) -> str:
    """The stage that trains `run`: the warm-up or a method's supernet."""
    return "warmup_supernet" if run == WARMUP else "train_supernet"


def stage_job(experiment: ExperimentSpec, stage: str, method: str | None = None, seed: int | None = None) -> Spec:
    """What `stage` reads, resolved from the config; `method` names the method of `train_supernet`, `seed`
    the run's seed of a per-seed stage (default: config `seed`)."""
    job = _stage_job(experiment, stage, method)
    if seed is not None:
        if stage not in PER_SEED:
            raise ValueError(f"stage {stage!r} runs once, not per seed")
        job = replace(job, seed=seed)
    return job


def _stage_job(experiment: ExperimentSpec, stage: str, method: str | None) -> Spec:
    if stage == "prepare_data":
        return DataJob(space=experiment.space, data=experiment.data)
    if stage == "warmup_supernet":
        return _training_job(experiment, WARMUP)
    if stage == "train_supernet":
        if method is None:
            raise ValueError("train_supernet's settings are per method: give `method`")
        return _training_job(experiment, method)
    if stage == "sample_predictor_subnets":
        return SamplingJob(**_network(experiment), predictor=PredictorSampling.part_of(experiment.predictor))
    if stage == "fit_predictor":
        return PredictorJob(seed=experiment.seed, space=experiment.space,
                            predictor=PredictorSpec.part_of(experiment.predictor))
    if stage == "search_pareto":
        return SearchJob(**_network(experiment), search=experiment.search)
    if stage == "dsnas_search":
        return _dsnas_job(experiment)
    if stage == "paper_table":
        return _report_job(experiment, formats=False, samplers=False)
    if stage == "figures":
        return _report_job(experiment, formats=True, samplers=False)
    if stage == "ablation_plot":
        return _report_job(experiment, formats=True, samplers=True)
    raise ConfigError(f"unknown pipeline stage {stage!r}; the stages are {', '.join(STAGES)}")


def stage_settings(experiment: ExperimentSpec, stage: str, method: str | None = None,
                   seed: int | None = None) -> dict[str, Any]:
    """The resolved settings `stage` reads, as plain data (see `stage_job`)."""
    return stage_job(experiment, stage, method, seed).to_dict()


def _method_keys(method: str, *, label: bool, spec: bool, training: bool) -> list[str]:
    keys = (["label"] if label else []) + (["sampler", "mode", "k", "estimator"] if spec else [])
    keys += ["training"] if training else []
    return [f"methods.{method}.{key}" for key in keys]


def stage_config_keys(config: dict[str, Any], stage: str) -> list[str]:
    """The config keys (dotted paths) a stage's settings derive from, over all its jobs: what a tool
    that sees only the config file (DVC) must watch, in the order of the validated config's keys. A key
    not in the config here is a default."""
    network = [*_NETWORK, "supernet", "evaluation"]
    seeds = ["seeds"] if config["seeds"] else ["seed", "seeds"]  # `seed` stands in for a missing seed list
    per_seed = [*(key for key in _NETWORK if key != "seed"), *seeds]
    budgeted = ["budget", "warmup"]  # the warm-up's steps count against the budget
    if stage == "prepare_data":
        return ["space", "data"]
    if stage == "warmup_supernet":
        return [*network, "training", "warmup"]
    if stage == "train_supernet":
        keys = [*per_seed, "supernet", "evaluation", "training", "sampler", *budgeted]
        for method in config["methods"]:
            keys += _method_keys(method, label=False, spec=True, training=True)
        return keys
    if stage == "sample_predictor_subnets":
        return [*_NETWORK, "evaluation", "predictor.num_subnets"]
    if stage == "fit_predictor":
        return ["seed", "space", *(f"predictor.{key}" for key in config["predictor"] if key != "num_subnets")]
    if stage == "search_pareto":
        return [*per_seed, "evaluation", "search"]
    if stage == "dsnas_search":
        dsnas = [f"dsnas.{key}" for key in config["dsnas"] if key != "enabled"]
        return [*per_seed, "supernet", "evaluation", *dsnas, "training", *budgeted]
    if stage in ("paper_table", "figures", "ablation_plot"):
        keys = ["space", "dsnas.enabled", "dsnas.targets_mflops", "dsnas.init", *seeds, "budget"]
        for method in config["methods"]:
            keys += _method_keys(method, label=True, spec=True, training=False)
        return keys + (["report.formats"] if stage != "paper_table" else [])
    raise ConfigError(f"unknown pipeline stage {stage!r}; the stages are {', '.join(STAGES)}")


def canonical(settings: dict[str, Any]) -> str:
    """Settings as one canonical JSON string: the same values give the same text in any key order."""
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


def stage_settings_json(experiment: ExperimentSpec, stage: str, method: str | None = None,
                        seed: int | None = None) -> str:
    return canonical(stage_settings(experiment, stage, method, seed))


def parse_settings(text: str, stage: str, run: str | None = None) -> Spec:
    """What a stage's command reads, from the settings the pipeline passes it as JSON (`--settings`);
    `run` names the training stages' run (default: the warm-up)."""
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"--settings for stage {stage!r} is not valid JSON ({err}); give the string "
                          "the pipeline passes, or use --config") from None
    if not isinstance(settings, dict):
        raise ConfigError(f"--settings for stage {stage!r} must be a JSON object, got {type(settings).__name__}")
    if stage not in STAGE_JOBS:
        raise ConfigError(f"unknown pipeline stage {stage!r}; the stages are {', '.join(STAGES)}")
    if STAGE_JOBS[stage] is TrainingJob:
        return TrainingJob.from_dict(settings, run or WARMUP)
    return STAGE_JOBS[stage].from_dict(settings)


# ---------------------------------------------------------------- the code a stage runs

def _module_file(module: str) -> Path | None:
    path = PACKAGE.joinpath(*module.split(".")[1:])
    if path.is_dir() and (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


@cache
def imported_modules(module: str) -> frozenset[str]:
    """The package modules `module` imports anywhere in its source (functions included)."""
    path = _module_file(module)
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(name for name in found if name.split(".")[0] == PACKAGE.name and _module_file(name))


def _closure(roots: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        parts = module.split(".")
        parents = [".".join(parts[:i]) for i in range(1, len(parts))]
        for name in [module, *parents]:
            if name not in seen:
                seen.add(name)
                todo.extend(imported_modules(name))
    return seen


@cache
def stage_sources(stage: str) -> tuple[str, ...]:
    """The package's source files a stage's job runs, relative to the package's parent folder: the
    launcher and the stage's command (`python -m attentivenas COMMAND`), with everything they import.

    Other commands, which the entry point imports only to list them in its help, are left out, so
    an edit to one stage's code reruns that stage (and what follows), not every stage."""
    if stage not in STAGE_COMMANDS:
        raise ConfigError(f"unknown pipeline stage {stage!r}; the stages are {', '.join(STAGES)}")
    command = f"{PACKAGE.name}.cli.{STAGE_COMMANDS[stage].replace('-', '_')}"
    modules = _closure([LAUNCHER, command, f"{PACKAGE.name}.__main__"])
    files = {_module_file(m).relative_to(PACKAGE.parent).as_posix() for m in modules}
    return tuple(sorted(files))


def space_source(space: str) -> str:
    """The YAML file config key `space` names: a bundled space's file, or the path given."""
    bundled = PACKAGE / "spaces" / f"{space}.yaml"
    return bundled.relative_to(PACKAGE.parent).as_posix() if bundled.is_file() else space
