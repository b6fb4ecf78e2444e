"""Each stage's settings: derived from the config, canonical, display keys only in the report."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from attentivenas import stages
from attentivenas.config import ConfigError, validate_config
from attentivenas.specs import ExperimentSpec
from attentivenas.stages import (
    STAGES,
    parse_settings,
    stage_config_keys,
    stage_job,
    stage_settings,
    stage_settings_json,
    stage_sources,
)

METHODS = {"bignas": {"sampler": "uniform", "label": "BigNAS"},
           "att": {"sampler": "attentive", "mode": "bestup", "k": 2, "estimator": "loss", "label": "Att"},
           "pred": {"sampler": "attentive", "estimator": "predictor", "training": {"lr": 0.05}}}
REPORT = {"paper_table", "figures", "ablation_plot"}


@pytest.fixture
def config(tiny_config_dict):
    return validate_config({**tiny_config_dict, "methods": METHODS, "training": {"epochs": 2, "lr": 0.1},
                            "warmup": {"epochs": 1}, "search": {"targets_mflops": [1.0, 3.0]},
                            "dsnas": {"targets_mflops": [1.0, 2.5]}})


def typed(config: dict) -> ExperimentSpec:
    return ExperimentSpec.from_dict(config)


def all_settings(config: dict) -> dict[tuple[str, str | None, int | None], str]:
    """Every job's settings, by stage, method and seed (the pipeline's wildcards)."""
    jobs = {}
    for stage in STAGES:
        for method in (config["methods"] if stage == "train_supernet" else [None]):
            for seed in (typed(config).run_seeds if stage in stages.PER_SEED else [None]):
                jobs[stage, method, seed] = stage_settings_json(typed(config), stage, method, seed)
    return jobs


def changed_jobs(config: dict, change) -> set[tuple[str, str | None]]:
    """The (stage, method) of every job whose settings `change` alters or whose run it removes."""
    changed = copy.deepcopy(config)
    change(changed)
    before, after = all_settings(config), all_settings(validate_config(changed))
    return {job[:2] for job in before if before[job] != after.get(job)}


def reversed_keys(value, key: str = ""):
    """Every mapping's keys in reverse order, but the methods' (their order is the tables' order)."""
    if isinstance(value, dict):
        keys = list(value) if key == "methods" else list(reversed(list(value)))
        return {k: reversed_keys(value[k], k) for k in keys}
    return value


def test_key_order_changes_no_setting(config):
    assert all_settings(validate_config(reversed_keys(config))) == all_settings(config)


def test_the_order_of_methods_reaches_only_the_report_and_survives_the_canonical_text(config):
    jobs = changed_jobs(config, lambda c: c.update(methods=dict(reversed(list(c["methods"].items())))))
    assert {stage for stage, _ in jobs} == REPORT
    for stage in REPORT:
        parsed = parse_settings(stage_settings_json(typed(config), stage), stage)
        assert parsed.methods == list(config["methods"]) == ["bignas", "att", "pred"]


def test_a_label_reaches_only_the_report(config):
    jobs = changed_jobs(config, lambda c: c["methods"]["att"].update(label="renamed"))
    assert {stage for stage, _ in jobs} == REPORT


def test_figure_formats_reach_only_the_figures(config):
    jobs = changed_jobs(config, lambda c: c["report"].update(formats=["pdf"]))
    assert {stage for stage, _ in jobs} == {"figures", "ablation_plot"}


def test_seed_supernet_and_resolution_reach_every_stage_that_uses_them(config):
    trained = {"warmup_supernet", "train_supernet", "dsnas_search"}
    seeded = trained | {"sample_predictor_subnets", "fit_predictor", "search_pareto"}
    assert {s for s, _ in changed_jobs(config, lambda c: c.update(seed=1))} == seeded | REPORT, (
        "without `seeds` the per-seed stages run at `seed`, and the report reads those runs")
    assert {s for s, _ in changed_jobs(config, lambda c: c.update(seeds=[0], seed=1))} == (
        seeded - set(stages.PER_SEED)), "with `seeds`, `seed` seeds the shared warm-up and predictor only"
    assert {s for s, _ in changed_jobs(config, lambda c: c["supernet"].update(dropout=0.1))} == trained
    assert ({s for s, _ in changed_jobs(config, lambda c: c.update(resolution_mode="crop"))}
            == seeded - {"fit_predictor"})


def test_a_method_key_reaches_only_that_method_and_the_report(config):
    jobs = changed_jobs(config, lambda c: c["methods"]["att"].update(k=3))
    assert jobs == {("train_supernet", "att"), ("ablation_plot", None)}, "its label is set: only the ablation reads k"
    unlabelled = changed_jobs(config, lambda c: c["methods"]["pred"].update(k=2))
    assert unlabelled == {("train_supernet", "pred"), *((stage, None) for stage in REPORT)}, "k makes its label"
    assert changed_jobs(config, lambda c: c["methods"]["bignas"].update(k=5)) == set(), "uniform ignores k"
    assert changed_jobs(config, lambda c: c["methods"]["pred"]["training"].update(lr=0.2)) == {
        ("train_supernet", "pred")}


def test_a_run_gets_its_resolved_recipe_only(config):
    warmup = stage_settings(typed(config), "warmup_supernet")
    assert warmup["training"]["epochs"] == 1 and warmup["training"]["lr"] == 0.1
    assert "methods" not in warmup and "warmup" not in warmup and "sampler" not in warmup
    pred = stage_settings(typed(config), "train_supernet", "pred")
    assert pred["training"]["lr"] == 0.05 and pred["methods"] == {"pred": {
        "sampler": "attentive", "mode": "bestup", "k": 3, "estimator": "predictor"}}
    assert "sampler" in pred and "'label'" not in str(pred)
    assert stage_settings(typed(config), "train_supernet", "bignas")["methods"] == {"bignas": {"sampler": "uniform"}}
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        stage_settings(typed(config), "train_supernet", "nope")


def test_settings_derive_only_from_their_listed_keys(config):
    """Every top-level key that changes a stage's settings is among its stage_config_keys."""
    for stage in STAGES:
        listed = {key.split(".")[0] for key in stage_config_keys(config, stage)}
        methods = list(config["methods"]) if stage == "train_supernet" else [None]
        used = {key for method in methods for key in stage_settings(typed(config), stage, method)}
        assert used - {"methods", "method_order", "baseline", "dsnas", "predictor", "report"} <= listed, stage


def test_per_seed_stages_take_the_run_seed_and_the_seed_list_reaches_the_report_only(config):
    assert stage_settings(typed(config), "train_supernet", "att", 3)["seed"] == 3
    assert stage_settings(typed(config), "search_pareto", seed=4)["seed"] == 4
    assert stage_settings(typed(config), "dsnas_search", seed=5)["seed"] == 5
    assert stage_settings(typed(config), "train_supernet", "att")["seed"] == config["seed"] == 0
    with pytest.raises(ValueError, match="runs once"):
        stage_settings(typed(config), "warmup_supernet", seed=1)
    jobs = changed_jobs(config, lambda c: c.update(seeds=[0, 1]))
    assert {stage for stage, _ in jobs} == REPORT, "a seed added is a new job; the others keep their settings"
    assert stage_settings(typed(validate_config({**config, "seeds": [0, 1]})), "paper_table")["seeds"] == [0, 1]
    assert stage_settings(typed(config), "paper_table")["seeds"] == [0] and stage_settings(typed(config), "figures")[
        "baseline"] == "bignas"


def test_settings_text_is_canonical_and_parses_back(config):
    text = stage_settings_json(typed(config), "search_pareto")
    assert parse_settings(text, "search_pareto") == stage_job(typed(config), "search_pareto")
    reordered = typed(validate_config(reversed_keys(config)))
    assert ": " not in text and text == stage_settings_json(reordered, "search_pareto")
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_settings("{", "search_pareto")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        parse_settings("[1]", "search_pareto")


def test_stage_code_is_its_command_import_closure():
    train = stage_sources("train_supernet")
    assert "attentivenas/training.py" in train and "attentivenas/cli/train.py" in train
    assert "attentivenas/cli/search.py" not in train, "other commands are not part of a stage's code"
    assert "attentivenas/training.py" not in stage_sources("prepare_data")
    assert "attentivenas/training.py" not in stage_sources("search_pareto")
    assert "attentivenas/reporting.py" in stage_sources("paper_table")
    for stage in STAGES:
        sources = stage_sources(stage)
        assert "attentivenas/pipeline.py" in sources and "attentivenas/__main__.py" in sources
        assert all(path.startswith("attentivenas/") and path.endswith(".py") for path in sources)


def test_dependencies_point_one_way():
    """core -> training/search -> pipeline -> command line and report: nothing imports upwards."""
    package = Path(stages.__file__).parent
    modules = [f"attentivenas.{p.relative_to(package).with_suffix('').as_posix().replace('/', '.')}"
               for p in package.rglob("*.py") if p.name != "__init__.py"]
    front = {m for m in modules if m.startswith("attentivenas.cli.")} | {"attentivenas.__main__",
                                                                        "attentivenas.reporting"}
    pipeline = {"attentivenas.pipeline", "attentivenas.dvcfile"}
    for module in modules:
        imported = stages.imported_modules(module)
        if module not in front | pipeline:
            assert not imported & (front | pipeline), f"{module} imports {imported & (front | pipeline)}"
        if module in pipeline:
            assert not imported & front, f"{module} imports {imported & front}"
    assert "attentivenas.pipeline" not in stages.imported_modules("attentivenas.reporting")
