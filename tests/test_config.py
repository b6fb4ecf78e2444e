import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from attentivenas.config import ConfigError, load_config, schema, validate_config
from attentivenas.config_docs import render as render_config_readme
from attentivenas.specs import ExperimentSpec

REPO = Path(__file__).resolve().parents[1]


def test_defaults_are_filled(tiny_config_dict):
    config = validate_config(tiny_config_dict)
    assert config["training"]["num_arch_training"] == 4
    assert config["training"]["label_smoothing"] == 0.1
    assert config["resolution_mode"] == "resize"
    assert config["data"]["augmentation"]["horizontal_flip"] is True
    assert "bignas" in config["methods"] and config["warmup"] == {}


def test_run_settings_overlay_the_training_section(tiny_config_dict):
    config = validate_config({**tiny_config_dict, "training": {"epochs": 5, "lr": 0.2},
                              "warmup": {"epochs": 1},
                              "methods": {"fast": {"sampler": "uniform", "training": {"lr": 0.05}}}})
    experiment = ExperimentSpec.from_dict(config)
    assert experiment.recipe("warmup").epochs == 1
    assert experiment.recipe("warmup").lr == 0.2
    assert experiment.recipe("fast").lr == 0.05
    assert experiment.recipe("fast").epochs == 5
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        experiment.recipe("nope")


@pytest.mark.parametrize("change,key", [
    ({"training": {"lrr": 0.1}}, "training.lrr"),
    ({"training": {"lr": -1}}, "training.lr"),
    ({"methods": {"m": {"sampler": "attentive", "mode": "best"}}}, "methods.m.mode"),
    ({"space": "nope"}, "space"),
    ({"search": {"targets_mflops": [100.0]}}, "search.targets_mflops"),
    ({"resolution_mode": "stretch"}, "resolution_mode"),
])
def test_bad_values_name_the_key(tiny_config_dict, change, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        validate_config({**tiny_config_dict, **change})


def test_load_config_file_and_overrides(tmp_path, tiny_config_dict):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_config_dict))
    config = load_config(path, overrides={"training": {"epochs": 9}})
    assert config["training"]["epochs"] == 9
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    path.write_text("space: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


@pytest.mark.parametrize("change,key", [
    ({"methods": {"../../../tmp/escape": {"sampler": "uniform"}}}, "methods"),
    ({"methods": {"x y; rm -rf": {"sampler": "uniform"}}}, "methods"),
    ({"methods": {"dsnas": {"sampler": "uniform"}}}, "methods"),
    ({"results_dir": "/tmp/elsewhere"}, "results_dir"),
    ({"results_dir": "results/../../escape"}, "results_dir"),
    ({"results_dir": "results/with space"}, "results_dir"),
])
def test_names_and_paths_that_could_leave_the_results_folder_are_refused(tiny_config_dict, change, key):
    with pytest.raises(ConfigError, match=f"'{key}'.*is not allowed here: .*letters, digits"):
        validate_config({**tiny_config_dict, **change})


def test_safe_names_and_relative_results_folders_pass(tiny_config_dict):
    config = validate_config({**tiny_config_dict, "results_dir": "results/run-2.b/",
                              "methods": {"Att_k3-v2": {"sampler": "uniform"}}})
    assert list(config["methods"]) == ["Att_k3-v2"]


def test_every_schema_key_has_a_description():
    def missing(node: dict, prefix: str) -> list[str]:
        found = [prefix] if prefix and "description" not in node else []
        for key, child in node.get("properties", {}).items():
            found += missing(child, f"{prefix}.{key}" if prefix else key)
        if isinstance(node.get("additionalProperties"), dict):
            found += missing(node["additionalProperties"], f"{prefix}.<name>")
        return found

    assert missing(schema(), "") == []


def test_config_readme_is_generated_from_the_current_schema():
    text = (REPO / "config" / "README.md").read_text()
    assert text == render_config_readme(), "config/README.md is stale: run python scripts/write_config_readme.py"
    for key in ("`seed`", "`training.lr`", "`methods.<name>.label`", "`dsnas.fix_margin`", "`report.formats`"):
        assert key in text


def test_the_readme_generator_command_checks_currency():
    result = subprocess.run([sys.executable, "scripts/write_config_readme.py", "--check"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0 and "is current" in result.stdout
