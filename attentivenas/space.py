"""Search spaces as data, and the subnet (architecture) format every stage exchanges.

A space is a YAML file: the stem, a table of MBConv stages, the head, the input resolutions and the
number of classes. A subnet is the plain JSON object the public models are published in; it is
validated against its space so that a typo in a pasted architecture fails loudly and early.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from attentivenas.errors import UserInputError
from attentivenas.io import read_text

FIELDS = ("resolution", "width", "depth", "kernel_size", "expand_ratio")


class SpaceError(UserInputError):
    """A search-space YAML file is malformed."""


class SubnetError(UserInputError):
    """A subnet does not belong to its search space."""


def make_divisible(value: float, divisor: int = 8) -> int:
    """TF-slim channel rounding: nearest multiple of `divisor`, at least `divisor`, never below 90%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def expanded_channels(in_channels: int, expand_ratio: float) -> int:
    """Mid channels of an MBConv block with an expand conv."""
    return make_divisible(round(in_channels * expand_ratio), 8)


def se_channels(mid_channels: int) -> int:
    """Squeeze channels of a squeeze-and-excitation module."""
    return make_divisible(mid_channels // 4, 8)


@dataclass(frozen=True)
class Stage:
    name: str
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    kernels: tuple[int, ...]
    expand_ratios: tuple[float, ...]
    stride: int
    se: bool

    @property
    def has_expand_conv(self) -> bool:
        return max(self.expand_ratios) > 1


@dataclass(frozen=True)
class Gene:
    """One independent choice of the space: a field, its index within the field, and its options."""

    field: str
    index: int | None
    label: str
    choices: tuple


@dataclass(frozen=True)
class Subnet:
    resolution: int
    width: tuple[int, ...]
    depth: tuple[int, ...]
    kernel_size: tuple[int, ...]
    expand_ratio: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "resolution": self.resolution,
            "width": list(self.width),
            "depth": list(self.depth),
            "kernel_size": list(self.kernel_size),
            "expand_ratio": list(self.expand_ratio),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def bundled_spaces() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in resources.files("attentivenas.spaces").iterdir()
                  if p.name.endswith(".yaml"))


class SearchSpace:
    """A MobileNetV3-like space: choices are made per stage, depth keeps the first blocks."""

    def __init__(self, spec: dict[str, Any], source: str = "<dict>"):
        self.source = source
        self.spec = spec
        read = _SpecReader(source)
        self.name = read(spec, "name", str)
        self.num_classes = read(spec, "num_classes", int)
        self.in_channels = read(spec, "in_channels", int, default=3)
        self.resolutions = read(spec, "resolutions", (int,))
        self.base_resolution = read(spec, "base_resolution", int, default=max(self.resolutions))
        stem = read(spec, "stem", dict)
        self.stem_widths = read(stem, "widths", (int,), "stem.")
        self.stem_stride = read(stem, "stride", int, "stem.", default=2)
        self.stem_kernel = read(stem, "kernel", int, "stem.", default=3)
        stages = read(spec, "stages", list)
        self.stages = tuple(
            Stage(name=read(s, "name", str, f"stages[{i}]."), widths=read(s, "widths", (int,), f"stages[{i}]."),
                  depths=read(s, "depths", (int,), f"stages[{i}]."),
                  kernels=read(s, "kernels", (int,), f"stages[{i}]."),
                  expand_ratios=read(s, "expand_ratios", (float,), f"stages[{i}]."),
                  stride=read(s, "stride", int, f"stages[{i}]."), se=read(s, "se", bool, f"stages[{i}]."))
            for i, s in enumerate(stages))
        head = read(spec, "head", dict)
        self.head_widths = read(head, "widths", (int,), "head.")
        self.head_expand = read(head, "expand", int, "head.", default=6)
        self.flops_bin_width = read(spec, "flops_bin_width", float)
        hv = read(spec, "hypervolume", dict)
        self.hypervolume_window = (read(hv, "mflops_min", float, "hypervolume."),
                                   read(hv, "mflops_max", float, "hypervolume."))
        self.hypervolume_top1_floor = read(hv, "top1_min", float, "hypervolume.")
        if not self.stages:
            raise SpaceError(f"search space {source}: key 'stages' lists no stage")
        self._check()

    def _check(self) -> None:
        for stage in self.stages:
            for label, values in (("widths", stage.widths), ("depths", stage.depths),
                                  ("kernels", stage.kernels), ("expand_ratios", stage.expand_ratios)):
                if not values:
                    raise SpaceError(f"search space {self.source}: stage {stage.name} has no {label}")
            if stage.stride not in (1, 2):
                raise SpaceError(f"search space {self.source}: stage {stage.name} stride must be 1 or 2 "
                                 f"(the shortcut pool follows the reference's stride-2 rule), got {stage.stride}")
            if any(k % 2 == 0 for k in stage.kernels):
                raise SpaceError(f"search space {self.source}: stage {stage.name} kernels must be odd, "
                                 f"got {list(stage.kernels)}")
        lo, hi = self.hypervolume_window
        if not lo < hi:
            raise SpaceError(f"search space {self.source}: hypervolume.mflops_min must be below mflops_max")

    @classmethod
    def load(cls, name_or_path: str | Path) -> SearchSpace:
        """A bundled space by name (e.g. `attentivenas`) or a YAML file by path."""
        text = str(name_or_path)
        bundled = resources.files("attentivenas.spaces") / f"{text}.yaml"
        if bundled.is_file():
            return cls(yaml.safe_load(bundled.read_text()), source=text)
        path = Path(text)
        if path.is_file():
            try:
                spec = yaml.safe_load(read_text(path, "search space file", SpaceError))
            except yaml.YAMLError as err:
                raise SpaceError(f"search space file {path} is not valid YAML: {err}") from None
            return cls(spec, source=str(path))
        raise SpaceError(f"unknown search space {text!r}: give a bundled name ({', '.join(bundled_spaces())}) "
                         "or the path of a space YAML file")

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    @cached_property
    def genes(self) -> tuple[Gene, ...]:
        genes = [Gene("resolution", None, "resolution", self.resolutions)]
        width_parts = ["stem", *[s.name for s in self.stages], "head"]
        width_choices = [self.stem_widths, *[s.widths for s in self.stages], self.head_widths]
        genes += [Gene("width", i, f"width[{i}] ({part})", tuple(c))
                  for i, (part, c) in enumerate(zip(width_parts, width_choices, strict=True))]
        for field, attr in (("depth", "depths"), ("kernel_size", "kernels"), ("expand_ratio", "expand_ratios")):
            genes += [Gene(field, i, f"{field}[{i}] ({s.name})", tuple(getattr(s, attr)))
                      for i, s in enumerate(self.stages)]
        return tuple(genes)

    @property
    def encoding_length(self) -> int:
        return len(self.genes)

    def to_dict(self) -> dict[str, Any]:
        """The space as plain data, stored in checkpoints to detect a mismatched space on load."""
        return self.spec

    # -- subnets ---------------------------------------------------------------------------------

    def from_genes(self, values: list) -> Subnet:
        fields: dict[str, list] = {f: [] for f in FIELDS}
        for gene, value in zip(self.genes, values, strict=True):
            fields[gene.field].append(value)
        return Subnet(resolution=fields["resolution"][0],
                      **{f: tuple(fields[f]) for f in FIELDS if f != "resolution"})

    def to_genes(self, subnet: Subnet) -> list:
        values = []
        for gene in self.genes:
            value = getattr(subnet, gene.field)
            values.append(value if gene.index is None else value[gene.index])
        return values

    def validate(self, subnet: dict[str, Any] | Subnet) -> Subnet:
        """Check a subnet JSON object (extra keys are ignored) and return it as a Subnet."""
        data = subnet.to_dict() if isinstance(subnet, Subnet) else subnet
        if not isinstance(data, dict):
            raise SubnetError(f"a subnet is a JSON object with keys {', '.join(FIELDS)}; got {type(data).__name__}")
        missing = [f for f in FIELDS if f not in data]
        if missing:
            raise SubnetError(f"subnet is missing field(s) {', '.join(missing)}; a subnet of space "
                              f"{self.name!r} needs {', '.join(FIELDS)}")
        counts = {"width": self.num_stages + 2, "depth": self.num_stages,
                  "kernel_size": self.num_stages, "expand_ratio": self.num_stages}
        for field, count in counts.items():
            value = data[field]
            if not isinstance(value, list | tuple) or len(value) != count:
                raise SubnetError(f"subnet field {field!r} must be a list of {count} numbers for space "
                                  f"{self.name!r}; got {value!r}")
        values = []
        for gene in self.genes:
            value = data[gene.field] if gene.index is None else data[gene.field][gene.index]
            match = next((c for c in gene.choices if _same_number(c, value)), None)
            if match is None:
                allowed = ", ".join(str(c) for c in gene.choices)
                raise SubnetError(f"subnet field {gene.label} = {value!r} is not in space {self.name!r}; "
                                  f"allowed: {allowed}")
            values.append(match)
        return self.from_genes(values)

    def load_subnet(self, path: str | Path) -> Subnet:
        path = Path(path)
        text = read_text(path, "subnet file", SubnetError)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise SubnetError(f"subnet file {path} is not valid JSON: {err}") from None
        try:
            return self.validate(data)
        except SubnetError as err:
            raise SubnetError(f"{path}: {err}") from None

    def min_subnet(self) -> Subnet:
        return self.from_genes([min(g.choices) for g in self.genes])

    def max_subnet(self) -> Subnet:
        return self.from_genes([max(g.choices) for g in self.genes])

    def sample_uniform(self, rng: random.Random) -> Subnet:
        """BigNAS sampling: every choice independently and uniformly."""
        return self.from_genes([rng.choice(g.choices) for g in self.genes])

    def mutate(self, subnet: Subnet, rng: random.Random, probability: float) -> Subnet:
        """With the given probability per gene, switch it to another of its choices (as the reference,
        so a mutation never spends an evaluation on an unchanged gene); single-choice genes stay."""
        values = []
        for gene, value in zip(self.genes, self.to_genes(subnet), strict=True):
            others = [c for c in gene.choices if c != value]
            values.append(rng.choice(others) if rng.random() < probability and others else value)
        return self.from_genes(values)

    def crossover(self, first: Subnet, second: Subnet, rng: random.Random) -> Subnet:
        """Uniform crossover: each gene from either parent with equal probability."""
        values = [a if rng.random() < 0.5 else b
                  for a, b in zip(self.to_genes(first), self.to_genes(second), strict=True)]
        return self.from_genes(values)

    def encode(self, subnet: Subnet) -> list[float]:
        """`[resolution] + width + depth + kernel_size + expand_ratio`, the predictors' input."""
        return [float(v) for v in self.to_genes(subnet)]

    def decode(self, vector: list[float]) -> Subnet:
        return self.validate(dict(zip(FIELDS, _split(vector, self.num_stages), strict=True)))

    def num_subnets(self) -> int:
        """How many distinct architectures the space holds (resolutions included)."""
        total = len(self.resolutions) * len(self.stem_widths) * len(self.head_widths)
        for s in self.stages:
            total *= len(s.widths) * len(s.depths) * len(s.kernels) * len(s.expand_ratios)
        return total


_MISSING = object()


class _SpecReader:
    """Reads one value of a space file: an int, float (int or float in YAML), str, bool, dict or list, or
    `(kind,)` for a non-empty list of them; a SpaceError names the key, the value and the expected type."""

    def __init__(self, source: str):
        self.source = source

    def __call__(self, mapping: Any, key: str, kind: type | tuple[type], prefix: str = "", default: Any = _MISSING):
        if not isinstance(mapping, dict):
            raise SpaceError(f"search space {self.source}: {prefix.rstrip('.') or 'the file'} must be a YAML "
                             f"mapping of keys, got {mapping!r}; see attentivenas/spaces/attentivenas.yaml")
        if key not in mapping:
            if default is not _MISSING:
                return default
            raise SpaceError(f"search space {self.source}: missing key '{prefix}{key}'; see attentivenas/spaces/"
                             "attentivenas.yaml for a complete example")
        value = mapping[key]
        if isinstance(kind, tuple):
            if not isinstance(value, list) or not value or not all(self._fits(v, kind[0]) for v in value):
                raise SpaceError(f"search space {self.source}: key '{prefix}{key}' = {value!r} must be a non-empty "
                                 f"list of {kind[0].__name__} values")
            return tuple(value)
        if not self._fits(value, kind):
            raise SpaceError(f"search space {self.source}: key '{prefix}{key}' = {value!r} must be "
                             f"{'a' if kind is not int else 'an'} {kind.__name__}")
        return float(value) if kind is float else value

    @staticmethod
    def _fits(value: Any, kind: type) -> bool:
        if kind is float:
            return isinstance(value, int | float) and not isinstance(value, bool)
        return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def _same_number(choice, value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and float(choice) == float(value)


def _split(vector: list[float], num_stages: int) -> list:
    resolution = int(vector[0])
    width = [int(v) for v in vector[1: num_stages + 3]]
    rest = vector[num_stages + 3:]
    depth = [int(v) for v in rest[:num_stages]]
    kernel = [int(v) for v in rest[num_stages: 2 * num_stages]]
    expand = list(rest[2 * num_stages:])
    return [resolution, width, depth, kernel, expand]
