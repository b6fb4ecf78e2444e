"""The typed config: each section's dataclass has exactly the schema's keys, built from a validated config
or a stage's settings, and back to the same settings."""

from __future__ import annotations

from dataclasses import fields

import pytest

from attentivenas.config import ConfigError, schema, validate_config
from attentivenas.specs import (
    BudgetSpec,
    DsnasSection,
    EvaluationSpec,
    ExperimentSpec,
    MethodEntry,
    MethodSpec,
    PredictorSection,
    ReportSpec,
    SamplerSpec,
    SearchSpec,
    SupernetSpec,
    TrainingSpec,
)
from attentivenas.stages import STAGES, canonical, parse_settings, stage_job

SECTIONS = {"": ExperimentSpec, "supernet": SupernetSpec, "training": TrainingSpec, "budget": BudgetSpec,
            "sampler": SamplerSpec, "methods": MethodEntry, "evaluation": EvaluationSpec,
            "predictor": PredictorSection, "search": SearchSpec, "dsnas": DsnasSection, "report": ReportSpec}
"""The dataclass of each config section, by its key ('' the whole config)."""


def section_keys(section: str) -> set[str]:
    rule = schema()
    if section:
        rule = rule["properties"][section]
    if section == "methods":
        rule = rule["additionalProperties"]
    return set(rule["properties"])


@pytest.mark.parametrize("section", SECTIONS)
def test_each_section_has_one_field_per_schema_key(section):
    assert {f.name for f in fields(SECTIONS[section])} == section_keys(section)


def test_every_section_of_the_schema_is_typed():
    sections = {key for key, rule in schema()["properties"].items() if "properties" in rule}
    assert sections - set(SECTIONS) == {"data"}, "data: attentivenas.data reads and checks the section"
    assert "methods" in SECTIONS and "warmup" not in SECTIONS, "the warm-up's keys are training's overrides"


@pytest.fixture
def experiment(tiny_config_dict):
    return ExperimentSpec.from_dict(validate_config({
        **tiny_config_dict, "training": {"epochs": 2}, "search": {"targets_mflops": [1.0]},
        "methods": {"bignas": {"sampler": "uniform", "k": 7},
                    "att": {"sampler": "attentive", "k": 2, "label": "Att", "training": {"lr": 0.05}}}}))


def test_a_missing_key_is_an_error_not_a_default(experiment):
    values = experiment.search.to_dict()
    del values["population"]
    with pytest.raises(ConfigError, match="SearchSpec needs key\\(s\\) population"):
        SearchSpec.from_dict(values)
    del values["targets_mflops"]
    assert SearchSpec.from_dict({**values, "population": 3}).targets_mflops is None, "the schema has no default"


def test_a_method_entry_is_interpreted_once(experiment):
    bignas, att = experiment.methods["bignas"], experiment.methods["att"]
    assert bignas.k is None and bignas.to_dict() == {"label": "BigNAS (uniform)", "sampler": "uniform", "training": {}}
    assert bignas.spec == MethodSpec.uniform() and not bignas.uses_predictor
    assert att.label == "Att" and att.default_label == "AttentiveNAS bestup-2 (loss)"
    assert experiment.recipe("att").lr == 0.05 and experiment.recipe("bignas").lr == experiment.training.lr
    assert experiment.baseline == "bignas" and experiment.run_seeds == [experiment.seed]


@pytest.mark.parametrize("stage", STAGES)
def test_a_job_parses_back_from_its_settings_text(experiment, stage):
    runs = list(experiment.methods) if stage == "train_supernet" else [None]
    for run in runs:
        job = stage_job(experiment, stage, run)
        text = canonical(job.to_dict())
        assert parse_settings(text, stage, run) == job
        assert canonical(parse_settings(text, stage, run).to_dict()) == text
