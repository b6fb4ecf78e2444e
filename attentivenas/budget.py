"""Equal training compute: every method's steps derived from one budget of subnet-images (config `budget`).

A subnet-image is one image through one trained subnet's forward and backward pass. A two-stage method
spends batch x num_arch_training of them per step, on top of the shared warm-up when it starts from it;
DSNAS trains one subnet per image, over its runs (one per FLOPs target: search epochs, then
`child_epochs`), plus the warm-up when it starts from it. The attentive sampler's candidate-scoring
forwards train nothing: the report counts them apart. The steps per epoch are derived here and
nowhere else; a budget that no whole number of steps meets within `TOLERANCE` is refused, and so is
one that asks an epoch for more steps than the training split has batches (training would stop at the
epoch's end and silently spend less than the budget).
"""

from __future__ import annotations

from typing import Any

from attentivenas.config import ConfigError, training_settings
from attentivenas.data import train_split_size

TOLERANCE = 0.05
"""Largest relative difference between the planned subnet-images of a method and the budget."""

DSNAS = "dsnas"


def budget(config: dict[str, Any]) -> int | None:
    return config["budget"]["subnet_images"]


def warmup_subnet_images(config: dict[str, Any]) -> int:
    """The shared warm-up's subnet-images, from its configured steps."""
    settings = training_settings(config, "warmup")
    if settings["max_steps_per_epoch"] is None:
        raise ConfigError("config key 'budget.subnet_images' counts the warm-up's steps: set "
                          "'warmup.max_steps_per_epoch' (or 'training.max_steps_per_epoch'), or set "
                          "'budget.subnet_images' to null")
    return (settings["epochs"] * settings["max_steps_per_epoch"] * settings["batch_size"]
            * settings["num_arch_training"])


def _steps_per_epoch(config: dict[str, Any], who: str, init: str, per_step: int, epochs: int) -> int:
    total = budget(config)
    shared = warmup_subnet_images(config) if init == "warmup" else 0
    steps = round((total - shared) / (per_step * epochs))
    planned = shared + steps * per_step * epochs
    if steps < 1 or abs(planned - total) > TOLERANCE * total:
        step = per_step * epochs
        low = shared + max(steps, 1) * step
        raise ConfigError(
            f"config key 'budget.subnet_images' = {total}: {who} trains {per_step} subnet-images per step over "
            f"{epochs} epoch(s) on top of {shared} shared warm-up subnet-images, so whole steps give "
            f"{planned} (more than {TOLERANCE:.0%} off); choose a budget of {shared} + a multiple of {step}, "
            f"e.g. {low} or {low + step}")
    return steps


def method_steps_per_epoch(config: dict[str, Any], method: str) -> int | None:
    """A two-stage method's `training.max_steps_per_epoch` under the budget (None: no budget)."""
    if budget(config) is None:
        return None
    settings = training_settings(config, method)
    return _steps_per_epoch(config, f"method {method!r}", settings["init"],
                            settings["batch_size"] * settings["num_arch_training"], settings["epochs"])


def dsnas_steps_per_epoch(config: dict[str, Any]) -> int | None:
    """`dsnas.max_steps_per_epoch` of each DSNAS run under the budget (None: no budget or no DSNAS)."""
    dsnas = config["dsnas"]
    if budget(config) is None or not dsnas["enabled"] or not dsnas["targets_mflops"]:
        return None
    runs = len(dsnas["targets_mflops"])
    return _steps_per_epoch(config, f"DSNAS ({runs} runs, one per target)", dsnas["init"],
                            dsnas["batch_size"] * runs, dsnas["epochs"] + dsnas["child_epochs"])


def _check_epoch_length(config: dict[str, Any], who: str, steps: int, batch_size: int, images: int,
                        fix: str) -> None:
    batches = images // batch_size
    if steps > batches:
        raise ConfigError(
            f"config key 'budget.subnet_images' = {budget(config)}: {who} needs {steps} steps per epoch, but an "
            f"epoch of the {images} training images has only {batches} batches of {batch_size}; {fix}, or lower "
            "the budget")


def check_budget(config: dict[str, Any]) -> None:
    """Refuse a budget some method cannot meet, before any job runs."""
    for method in config["methods"]:
        method_steps_per_epoch(config, method)
    dsnas_steps = dsnas_steps_per_epoch(config)
    if budget(config) is None:
        return
    images = train_split_size(config["data"])
    warmup = training_settings(config, "warmup")
    _check_epoch_length(config, "the warm-up", warmup["max_steps_per_epoch"], warmup["batch_size"], images,
                        "lower 'warmup.max_steps_per_epoch' and raise 'warmup.epochs'")
    for method in config["methods"]:
        settings = training_settings(config, method)
        _check_epoch_length(config, f"method {method!r}", method_steps_per_epoch(config, method),
                            settings["batch_size"], images,
                            f"raise 'training.epochs' (or 'methods.{method}.training.epochs')")
    if dsnas_steps is not None:
        _check_epoch_length(config, "DSNAS", dsnas_steps, config["dsnas"]["batch_size"], images,
                            "raise 'dsnas.epochs' or 'dsnas.child_epochs'")
