"""The one config loader: YAML in, validated dict with defaults out, or an error naming the key.

Every entry point (the command line, the Snakefile, the tests) goes through `load_config`, so bad
input fails before any data is loaded or any weight is trained; attentivenas.specs then types it.
"""

from __future__ import annotations

import copy
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from attentivenas.errors import UserInputError
from attentivenas.flops import flops_range
from attentivenas.io import read_text
from attentivenas.space import SearchSpace, SpaceError

SCHEMA_FILE = "config_schema.yaml"


class ConfigError(UserInputError):
    """An experiment config is invalid; the message names the key and the allowed values."""


@cache
def schema() -> dict[str, Any]:
    loaded = yaml.safe_load((resources.files("attentivenas") / SCHEMA_FILE).read_text())
    training = loaded["properties"]["training"]
    override_properties = {key: {k: v for k, v in rule.items() if k != "default"}
                           for key, rule in training["properties"].items()}
    loaded["$defs"] = {"training_override": {"type": "object", "additionalProperties": False,
                                             "default": {}, "properties": override_properties}}
    loaded["properties"]["warmup"]["default"] = {}
    return loaded


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def fill_defaults(validator, properties, instance, subschema):
        if isinstance(instance, dict):
            for key, rule in properties.items():
                if "default" in rule and key not in instance:
                    instance[key] = copy.deepcopy(rule["default"])
                elif "$ref" in rule and key not in instance:
                    target = schema()["$defs"][rule["$ref"].rsplit("/", 1)[-1]]
                    instance[key] = copy.deepcopy(target.get("default", {}))
        yield from validate_properties(validator, properties, instance, subschema)

    return jsonschema.validators.extend(validator_class, {"properties": fill_defaults})


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "<top level>"


def _message(error: jsonschema.ValidationError) -> str:
    """The validator's message, or for a name or path the schema restricts, what is allowed."""
    if error.validator in ("pattern", "not"):
        rule: Any = schema()
        for part in list(error.schema_path)[:-1]:
            rule = rule[part]
        if isinstance(rule, dict) and "description" in rule:
            return f"{error.instance!r} is not allowed here: {rule['description']}"
    return error.message


def validate_config(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """A copy of `config` with defaults filled in; raises ConfigError naming the first bad key."""
    filled = copy.deepcopy(config) if config is not None else {}
    if not isinstance(filled, dict):
        raise ConfigError(f"{source}: the config must be a YAML mapping of sections, got {type(filled).__name__}")
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema())
    errors = sorted(validator.iter_errors(filled), key=lambda e: (len(e.absolute_path), e.message))
    if errors:
        error = errors[0]
        if error.validator == "additionalProperties" and "properties" in error.schema:
            allowed = error.schema["properties"]
            unknown = sorted(set(error.instance) - set(allowed))
            prefix = "" if not error.absolute_path else _key_path(error) + "."
            raise ConfigError(f"{source}: config key '{prefix}{unknown[0]}' is not known; allowed keys here: "
                              f"{', '.join(allowed)}")
        raise ConfigError(f"{source}: config key '{_key_path(error)}': {_message(error)}")
    try:
        space = SearchSpace.load(filled["space"])
    except SpaceError as err:
        raise ConfigError(f"{source}: config key 'space': {err}") from None
    low, high = flops_range(space)
    for section in ("search", "dsnas"):
        for target in filled[section].get("targets_mflops", []):
            if not low <= target <= high:
                raise ConfigError(f"{source}: config key '{section}.targets_mflops': {target} MFLOPs is outside "
                                  f"space {space.name!r}, which spans {low:.3f} to {high:.3f} MFLOPs")
    return filled


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read, merge `overrides` (nested dict) into, and validate an experiment config file."""
    path = Path(path)
    text = read_text(path, "config file", ConfigError, "see config/ for examples")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if raw is None and not overrides:
        raise ConfigError(f"config file {path} is empty: it needs at least the keys 'space' and 'data'; see "
                          "config/ for examples")
    if overrides:
        raw = merge(raw or {}, overrides)
    return validate_config(raw, source=str(path))


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Nested dict update that leaves both inputs untouched."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged

