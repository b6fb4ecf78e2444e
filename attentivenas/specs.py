"""The config as typed objects: one frozen dataclass per config section and one per pipeline job.

Each is built once, from a validated config (attentivenas.config fills in every default) or from a
stage's settings JSON (attentivenas.stages), and requires every key: the defaults live in the schema
alone. Field names are the schema's keys, so the code reads a spec as the config is written, and what
a key means is decided by the spec's own properties or by the one module that acts on it. `to_dict`
gives the plain data back, in the shape of a stage's settings.

Where a stage reads only part of a section, that part is a dataclass of its own and the section's
dataclass extends it (`DsnasSection` is a run's `DsnasSpec` plus the `DsnasRuns` the pipeline makes),
so each key is declared once.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Self

from attentivenas.config import ConfigError, load_config

WARMUP = "warmup"
"""The run name of the shared warm-up, trained like a method with uniform sampling."""


def _spec_type(hint: Any) -> type[Spec] | None:
    return hint if isinstance(hint, type) and issubclass(hint, Spec) else None


def _build(hint: Any, value: Any) -> Any:
    """A field's value from plain data: a nested spec, or a mapping of names to specs, is built too."""
    if _spec_type(hint):
        return hint.from_dict(value)
    if typing.get_origin(hint) is dict and _spec_type(typing.get_args(hint)[1]):
        return {name: typing.get_args(hint)[1].from_dict(entry) for name, entry in value.items()}
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Spec):
        return value.to_dict()
    if isinstance(value, dict) and any(isinstance(v, Spec) for v in value.values()):
        return {name: _plain(entry) for name, entry in value.items()}
    return value


class Spec:
    """A dataclass built from a mapping that holds a key for each of its fields."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ()
    """Keys the schema gives no default: absent is None, and None is left out of `to_dict` again."""

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Self:
        missing = [key for key in cls.keys() if key not in values and key not in cls.OPTIONAL]
        if missing:
            raise ConfigError(f"{cls.__name__} needs key(s) {', '.join(missing)}: build it from a validated config "
                              "or a stage's settings")
        hints = typing.get_type_hints(cls)
        return cls(**{key: _build(hints[key], values.get(key)) for key in cls.keys()})

    @classmethod
    def part_of(cls, whole: Spec) -> Self:
        """This part of a larger spec: a run's recipe of its section, a job's keys of the whole config."""
        return cls(**{key: getattr(whole, key) for key in cls.keys()})

    def to_dict(self) -> dict[str, Any]:
        """Plain data, keys sorted as the canonical settings text has them, so that a checkpoint holding
        it has the same bytes whether its settings came from a config file or from the pipeline."""
        return self._plain_fields(self.keys())

    def _plain_fields(self, keys: tuple[str, ...]) -> dict[str, Any]:
        return {key: _plain(getattr(self, key)) for key in sorted(keys)
                if not (key in self.OPTIONAL and getattr(self, key) is None)}


# ---------------------------------------------------------------- config sections

@dataclass(frozen=True)
class WarmStart(Spec):
    """Key `init`, which training runs and DSNAS runs share and read alike."""

    init: str

    @property
    def from_warmup(self) -> bool:
        """True when the run starts from the warm-up supernet (and counts its compute), else from scratch."""
        return self.init == "warmup"


@dataclass(frozen=True)
class SupernetSpec(Spec):
    dropout: float
    drop_connect: float


@dataclass(frozen=True)
class EvaluationSpec(Spec):
    calibration_images: int
    calibration_batch_size: int
    batch_size: int


@dataclass(frozen=True)
class TrainingSpec(WarmStart):
    """A training run's resolved recipe: section `training` overlaid with the run's own keys."""

    epochs: int
    max_steps_per_epoch: int | None
    batch_size: int
    num_arch_training: int
    lr: float
    lr_scaling: str
    momentum: float
    nesterov: bool
    weight_decay: float
    warmup_epochs: float
    warmup_start_factor: float
    label_smoothing: float
    distillation: str
    distillation_weight: float
    middle_loss_weight: float
    distillation_ramp_steps: int
    grad_clip_value: float | None
    bn_momentum: float
    checkpoint_every_steps: int
    log_every_steps: int
    validate_images: int
    processes: int
    sync_batchnorm: bool
    precision: str

    @property
    def subnet_images_per_step(self) -> int:
        """Each step trains every image of the global batch through `num_arch_training` subnets."""
        return self.batch_size * self.num_arch_training

    def overlaid(self, overrides: Mapping[str, Any]) -> TrainingSpec:
        return replace(self, **overrides)


@dataclass(frozen=True)
class BudgetSpec(Spec):
    subnet_images: int | None


@dataclass(frozen=True)
class SamplerSpec(Spec):
    """The attentive sampler's shared settings (a method chooses its mode, k and estimator)."""

    table_size: int
    prior: str
    max_tries: int
    score_images: int | None


@dataclass(frozen=True)
class MethodSpec(Spec):
    """How a run samples its middle subnets: uniformly (BigNAS), or the best or worst of `k` candidates
    by an estimator (AttentiveNAS). A uniform method has no mode, k or estimator: they are None, and
    left out of its settings, so a stray value there changes nothing."""

    OPTIONAL = ("mode", "k", "estimator")

    sampler: str
    mode: str | None
    k: int | None
    estimator: str | None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Self:
        if values["sampler"] == "uniform":
            values = {**values, "mode": None, "k": None, "estimator": None}
        elif any(key not in values for key in MethodSpec.OPTIONAL):
            raise ConfigError(f"an attentive method needs keys {', '.join(MethodSpec.OPTIONAL)}, got "
                              f"{sorted(values)}")
        return super().from_dict(values)

    @classmethod
    def uniform(cls) -> MethodSpec:
        """The warm-up's sampling."""
        return cls("uniform", None, None, None)

    @property
    def spec(self) -> MethodSpec:
        """The sampling alone (what a run's training reads), without an entry's label and overrides."""
        return MethodSpec(self.sampler, self.mode, self.k, self.estimator)

    @property
    def attentive(self) -> bool:
        return self.sampler == "attentive"

    @property
    def uses_predictor(self) -> bool:
        """True when candidates are scored by the accuracy predictor, which the run then needs."""
        return self.attentive and self.estimator == "predictor"

    @property
    def default_label(self) -> str:
        if not self.attentive:
            return "BigNAS (uniform)"
        return f"AttentiveNAS {self.mode}-{self.k} ({self.estimator})"


@dataclass(frozen=True)
class MethodEntry(MethodSpec):
    """One entry of config `methods`: its sampling, its name in tables and figures, its overrides of
    `training`. `label` is resolved: the configured one, else made from the sampling."""

    OPTIONAL = (*MethodSpec.OPTIONAL, "label")

    label: str
    training: dict[str, Any]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Self:
        entry = super().from_dict(values)
        return entry if values.get("label") is not None else replace(entry, label=entry.default_label)


@dataclass(frozen=True)
class SearchSpec(Spec):
    OPTIONAL = ("targets_mflops",)

    population: int
    generations: int
    mutations_per_generation: int
    crossovers_per_generation: int
    mutation_prob: float
    buckets: int
    gap_children: int
    max_tries: int
    predictor_prefilter: bool
    targets_mflops: list[float] | None


@dataclass(frozen=True)
class PredictorSampling(Spec):
    """How many subnets of the warm-up supernet are evaluated to fit the predictor on."""

    num_subnets: int


@dataclass(frozen=True)
class PredictorSpec(Spec):
    """How the accuracy predictor is fitted and its rank quality measured."""

    holdout_fraction: float
    model: str
    params: dict[str, Any]
    flops_bins: int


@dataclass(frozen=True)
class PredictorSection(PredictorSampling, PredictorSpec):
    pass


@dataclass(frozen=True)
class DsnasSpec(WarmStart):
    """One DSNAS run's recipe (the target is the run's own)."""

    epochs: int
    max_steps_per_epoch: int | None
    batch_size: int
    lr: float
    lr_scaling: str
    momentum: float
    nesterov: bool
    weight_decay: float
    label_smoothing: float
    arch_lr: float
    arch_betas: list[float]
    fix_margin: float
    flops_penalty: float
    warmup_epochs: float
    checkpoint_every_steps: int
    flops_penalty_kind: str
    flops_penalty_side: str
    child_epochs: int
    regularize: bool

    @property
    def run_epochs(self) -> int:
        """The search's epochs, then the argmax child's."""
        return self.epochs + self.child_epochs


@dataclass(frozen=True)
class DsnasRuns(WarmStart):
    """Which DSNAS runs the pipeline makes, and whether they build on the warm-up."""

    enabled: bool
    targets_mflops: list[float]

    @property
    def targets(self) -> list[float]:
        """The runs' FLOPs targets, one run each; none when the baseline is disabled."""
        return list(self.targets_mflops) if self.enabled else []


@dataclass(frozen=True)
class DsnasSection(DsnasRuns, DsnasSpec):
    pass


@dataclass(frozen=True)
class ReportSpec(Spec):
    formats: list[str]


# ---------------------------------------------------------------- what each pipeline job reads

@dataclass(frozen=True)
class DataJob(Spec):
    space: str
    data: dict[str, Any]
    """Section `data`, which attentivenas.data checks and reads."""


@dataclass(frozen=True)
class NetworkJob(DataJob):
    """What every job that builds a supernet and evaluates subnets reads."""

    seed: int
    device: str
    memory_format: str
    resolution_mode: str
    evaluation: EvaluationSpec


@dataclass(frozen=True)
class SamplingJob(NetworkJob):
    predictor: PredictorSampling


@dataclass(frozen=True)
class PredictorJob(Spec):
    seed: int
    space: str
    predictor: PredictorSpec


@dataclass(frozen=True)
class SearchJob(NetworkJob):
    search: SearchSpec


@dataclass(frozen=True)
class DsnasJob(NetworkJob):
    supernet: SupernetSpec
    dsnas: DsnasSpec


@dataclass(frozen=True)
class TrainingJob(NetworkJob):
    """One training run, the warm-up or a method's: its settings carry the method's sampling under
    `methods`, and the attentive sampler's shared settings under `sampler`, only when it has them."""

    supernet: SupernetSpec
    training: TrainingSpec
    run: str
    method: MethodSpec
    sampler: SamplerSpec | None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], run: str = WARMUP) -> Self:
        methods = values.get("methods", {})
        if run != WARMUP and run not in methods:
            raise ConfigError(f"unknown run {run!r}: give 'warmup' or a method of config key 'methods' "
                              f"({', '.join(methods) or 'none defined'})")
        method = MethodSpec.uniform() if run == WARMUP else MethodSpec.from_dict(methods[run])
        network = NetworkJob.from_dict(values)
        return cls(**{key: getattr(network, key) for key in NetworkJob.keys()},
                   supernet=SupernetSpec.from_dict(values["supernet"]),
                   training=TrainingSpec.from_dict(values["training"]), run=run, method=method,
                   sampler=SamplerSpec.from_dict(values["sampler"]) if method.attentive else None)

    def to_dict(self) -> dict[str, Any]:
        settings = {**self._plain_fields(NetworkJob.keys()), "supernet": self.supernet.to_dict(),
                    "training": self.training.to_dict()}
        if self.run != WARMUP:
            settings["methods"] = {self.run: self.method.to_dict()}
        if self.sampler is not None:
            settings["sampler"] = self.sampler.to_dict()
        return settings


@dataclass(frozen=True)
class ReportJob(Spec):
    """What the report stages read: each method's label (in the config's order) and, for the ablation
    plots, its sampling; the DSNAS runs; the seeds; the budget; the baseline; the figure formats."""

    space: str
    labels: dict[str, str]
    samplers: dict[str, MethodSpec]
    dsnas: DsnasRuns
    seeds: list[int]
    budget: BudgetSpec
    baseline: str | None
    report: ReportSpec | None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Self:
        # the canonical text sorts keys; tables and figures follow the config's order of methods
        methods = {name: values["methods"][name] for name in values["method_order"]}
        return cls(space=values["space"], labels={name: entry["label"] for name, entry in methods.items()},
                   samplers={name: MethodSpec.from_dict(entry) for name, entry in methods.items()
                             if "sampler" in entry},
                   dsnas=DsnasRuns.from_dict(values["dsnas"]), seeds=list(values["seeds"]),
                   budget=BudgetSpec.from_dict(values["budget"]), baseline=values["baseline"],
                   report=ReportSpec.from_dict(values["report"]) if "report" in values else None)

    def to_dict(self) -> dict[str, Any]:
        methods = {name: {"label": label, **(self.samplers[name].to_dict() if name in self.samplers else {})}
                   for name, label in self.labels.items()}
        settings = {"space": self.space, "methods": methods, "method_order": list(methods),
                    "dsnas": self.dsnas.to_dict(), "seeds": self.seeds, "budget": self.budget.to_dict(),
                    "baseline": self.baseline}
        if self.report is not None:
            settings["report"] = self.report.to_dict()
        return settings

    @property
    def methods(self) -> list[str]:
        return list(self.labels)


# ---------------------------------------------------------------- the whole config

@dataclass(frozen=True)
class ExperimentSpec(NetworkJob):
    """A validated experiment config: every section typed, each method's recipe resolved on demand."""

    seeds: list[int] | None
    results_dir: str
    supernet: SupernetSpec
    training: TrainingSpec
    budget: BudgetSpec
    sampler: SamplerSpec
    warmup: dict[str, Any]
    """Overrides of `training` for the warm-up run."""
    methods: dict[str, MethodEntry]
    predictor: PredictorSection
    search: SearchSpec
    dsnas: DsnasSection
    report: ReportSpec

    def method(self, name: str) -> MethodEntry:
        if name not in self.methods:
            raise ConfigError(f"unknown method {name!r}: config key 'methods' defines "
                              f"{', '.join(self.methods) or 'none'}")
        return self.methods[name]

    def run_method(self, run: str) -> MethodSpec:
        """How a run (`warmup` or a method) samples its middle subnets."""
        return MethodSpec.uniform() if run == WARMUP else self.method(run).spec

    def recipe(self, run: str) -> TrainingSpec:
        """The training recipe of a run (`warmup` or a method): `training` overlaid with its overrides."""
        return self.training.overlaid(self.warmup if run == WARMUP else self.method(run).training)

    @property
    def run_seeds(self) -> list[int]:
        """The seeds each method's training, search and DSNAS run once per: `seeds`, else [seed]."""
        return list(self.seeds) if self.seeds else [self.seed]

    @property
    def baseline(self) -> str | None:
        """The method the report tests every other against: the first uniform-sampling (BigNAS) one."""
        return next((name for name, entry in self.methods.items() if not entry.attentive), None)


def load_experiment(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentSpec:
    """Read and validate a config file (attentivenas.config.load_config), typed."""
    return ExperimentSpec.from_dict(load_config(path, overrides))

