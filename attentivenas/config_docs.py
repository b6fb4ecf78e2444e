"""config/README.md, generated from the config schema: every key with its type, default and meaning.

`python scripts/write_config_readme.py` rewrites it; a test checks that the committed file is current.
"""

from __future__ import annotations

import json
from typing import Any

from attentivenas.config import schema

HEADER = """\
# Config keys

Generated from `attentivenas/config_schema.yaml` by `python scripts/write_config_readme.py`: do not edit
by hand. An experiment config (e.g. `config/config.yaml`) sets any of these keys; the others take their
defaults. `methods.<name>` stands for each method; `warmup` and `methods.<name>.training` take any key
of `training`. Each pipeline stage reads only its part of the config (`attentivenas/stages.py`), so a
change reruns exactly the stages that read the key.
"""


def _allowed(rule: dict[str, Any]) -> str:
    if "enum" in rule:
        return " \\| ".join(f"`{v}`" for v in rule["enum"])
    if "$ref" in rule:
        return "keys of `training`"
    kind = rule.get("type", "")
    kinds = kind if isinstance(kind, list) else [kind]
    text = " or ".join(k for k in kinds if k)
    if rule.get("type") == "array" and "items" in rule:
        text = f"list of {_allowed(rule['items'])}"
    bounds = [f"{symbol} {rule[key]:g}" for key, symbol in (("minimum", ">="), ("exclusiveMinimum", ">"),
                                                            ("maximum", "<="), ("exclusiveMaximum", "<"))
              if key in rule]
    return ", ".join([text, *bounds]) if text else ", ".join(bounds)


def _default(rule: dict[str, Any]) -> str:
    if "default" not in rule:
        return "required" if rule.get("_required") else ""
    value = rule["default"]
    return "" if isinstance(value, dict) and not value else f"`{json.dumps(value)}`"


def _rows(node: dict[str, Any], prefix: str, required: frozenset[str] = frozenset()) -> list[str]:
    rows = []
    for key, rule in node.get("properties", {}).items():
        path = f"{prefix}.{key}" if prefix else key
        rule = {**rule, "_required": key in required}
        if "properties" in rule or isinstance(rule.get("additionalProperties"), dict):
            rows.append(f"| `{path}` | section |  | {rule.get('description', '')} |")
            rows += _rows(rule, path, frozenset(rule.get("required", ())))
            if isinstance(rule.get("additionalProperties"), dict):
                entry = rule["additionalProperties"]
                name = rule.get("propertyNames", {}).get("description", "")
                rows.append(f"| `{path}.<name>` | {name} |  | {entry.get('description', '')} |")
                rows += _rows(entry, f"{path}.<name>", frozenset(entry.get("required", ())))
        else:
            rows.append(f"| `{path}` | {_allowed(rule)} | {_default(rule)} | {rule.get('description', '')} |")
    return rows


def render() -> str:
    """config/README.md's text."""
    table = ["| key | allowed | default | meaning |", "|---|---|---|---|"]
    return HEADER + "\n" + "\n".join(table + _rows(schema(), "", frozenset(schema().get("required", ())))) + "\n"
