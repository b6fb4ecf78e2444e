"""What each pipeline stage reads: its resolved settings, derived from a validated config.

A stage's settings are the part of the config it uses, in the config's own shape (so the package's
functions take them as they take a config), with every override resolved: a run's `training` is
the section overlaid with the run's own keys; a method keeps only the keys its sampler reads; the
report gets each method's label resolved. Nothing else reaches the stage: the Snakemake rule passes
them as its `params` (a canonical JSON string, so key order and comments change nothing) and the
stage's command receives exactly that string. Display-only keys (labels, figure formats) reach only
the report stages.
"""

from __future__ import annotations

import json
from typing import Any

from attentivenas.config import ConfigError, method_label, method_spec, training_settings

STAGES = ("prepare_data", "warmup_supernet", "sample_predictor_subnets", "fit_predictor", "train_supernet",
          "search_pareto", "dsnas_search", "paper_table", "figures", "ablation_plot")
"""The pipeline's stages, by the name of the Snakemake rule that runs each one."""

_NETWORK = ("seed", "device", "space", "resolution_mode", "data")


def _pick(config: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: config[key] for key in keys}


def _training_run(config: dict[str, Any], run: str) -> dict[str, Any]:
    """A training run (`warmup` or a method): the network, its resolved recipe, its sampler and validator."""
    settings = {**_pick(config, *_NETWORK, "supernet", "evaluation"), "training": training_settings(config, run)}
    if run != "warmup":
        spec = method_spec(config, run)
        settings["methods"] = {run: spec}
        if spec["sampler"] == "attentive":
            settings["sampler"] = config["sampler"]
    return settings


def _report(config: dict[str, Any], *, formats: bool, specs: bool) -> dict[str, Any]:
    methods = {name: {"label": method_label(config, name), **(method_spec(config, name) if specs else {})}
               for name in config["methods"]}
    dsnas = _pick(config["dsnas"], "enabled", "targets_mflops", "init")
    settings = {"space": config["space"], "methods": methods, "dsnas": dsnas}
    if formats:
        settings["report"] = _pick(config["report"], "formats")
    return settings


def training_stage(run: str) -> str:
    """The stage that trains `run`: the warm-up or a method's supernet."""
    return "warmup_supernet" if run == "warmup" else "train_supernet"


def stage_settings(config: dict[str, Any], stage: str, method: str | None = None) -> dict[str, Any]:
    """The resolved settings `stage` reads; `method` names the method of `train_supernet`."""
    if stage == "prepare_data":
        return _pick(config, "space", "data")
    if stage == "warmup_supernet":
        return _training_run(config, "warmup")
    if stage == "train_supernet":
        if method is None:
            raise ValueError("train_supernet's settings are per method: give `method`")
        return _training_run(config, method)
    if stage == "sample_predictor_subnets":
        return {**_pick(config, *_NETWORK, "evaluation"), "predictor": _pick(config["predictor"], "num_subnets")}
    if stage == "fit_predictor":
        predictor = {k: v for k, v in config["predictor"].items() if k != "num_subnets"}
        return {**_pick(config, "seed", "space"), "predictor": predictor}
    if stage == "search_pareto":
        return _pick(config, *_NETWORK, "evaluation", "search")
    if stage == "dsnas_search":
        dsnas = {k: v for k, v in config["dsnas"].items() if k not in ("enabled", "targets_mflops")}
        return {**_pick(config, *_NETWORK, "supernet", "evaluation"), "dsnas": dsnas}
    if stage == "paper_table":
        return _report(config, formats=False, specs=False)
    if stage == "figures":
        return _report(config, formats=True, specs=False)
    if stage == "ablation_plot":
        return _report(config, formats=True, specs=True)
    raise ConfigError(f"unknown pipeline stage {stage!r}; the stages are {', '.join(STAGES)}")


def canonical(settings: dict[str, Any]) -> str:
    """Settings as one canonical JSON string: the same values give the same text in any key order."""
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


def stage_settings_json(config: dict[str, Any], stage: str, method: str | None = None) -> str:
    return canonical(stage_settings(config, stage, method))


def parse_settings(text: str, stage: str) -> dict[str, Any]:
    """Settings given to a stage's command as JSON (`--settings`), checked to be a JSON object."""
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"--settings for stage {stage!r} is not valid JSON ({err}); give the string "
                          "the pipeline passes, or use --config") from None
    if not isinstance(settings, dict):
        raise ConfigError(f"--settings for stage {stage!r} must be a JSON object, got {type(settings).__name__}")
    return settings
