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

from attentivenas.config import ConfigError
from attentivenas.data import DataError, train_split_size
from attentivenas.specs import WARMUP, ExperimentSpec

TOLERANCE = 0.05
"""Largest relative difference between the planned subnet-images of a method and the budget."""


def warmup_subnet_images(experiment: ExperimentSpec) -> int:
    """The shared warm-up's subnet-images, from its configured steps."""
    recipe = experiment.recipe(WARMUP)
    if recipe.max_steps_per_epoch is None:
        raise ConfigError("config key 'budget.subnet_images' counts the warm-up's steps: set "
                          "'warmup.max_steps_per_epoch' (or 'training.max_steps_per_epoch'), or set "
                          "'budget.subnet_images' to null")
    return recipe.epochs * recipe.max_steps_per_epoch * recipe.subnet_images_per_step


def _steps_per_epoch(experiment: ExperimentSpec, who: str, from_warmup: bool, per_step: int, epochs: int) -> int:
    total = experiment.budget.subnet_images
    shared = warmup_subnet_images(experiment) if from_warmup else 0
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


def method_steps_per_epoch(experiment: ExperimentSpec, method: str) -> int | None:
    """A two-stage method's `training.max_steps_per_epoch` under the budget (None: no budget)."""
    if experiment.budget.subnet_images is None:
        return None
    recipe = experiment.recipe(method)
    return _steps_per_epoch(experiment, f"method {method!r}", recipe.from_warmup, recipe.subnet_images_per_step,
                            recipe.epochs)


def dsnas_steps_per_epoch(experiment: ExperimentSpec) -> int | None:
    """`dsnas.max_steps_per_epoch` of each DSNAS run under the budget (None: no budget or no DSNAS)."""
    dsnas = experiment.dsnas
    if experiment.budget.subnet_images is None or not dsnas.targets:
        return None
    runs = len(dsnas.targets)
    return _steps_per_epoch(experiment, f"DSNAS ({runs} runs, one per target)", dsnas.from_warmup,
                            dsnas.batch_size * runs, dsnas.run_epochs)


def _check_epoch_length(experiment: ExperimentSpec, who: str, steps: int, batch_size: int, images: int,
                        fix: str) -> None:
    batches = images // batch_size
    if steps > batches:
        raise ConfigError(
            f"config key 'budget.subnet_images' = {experiment.budget.subnet_images}: {who} needs {steps} steps "
            f"per epoch, but an epoch of the {images} training images has only {batches} batches of {batch_size}; "
            f"{fix}, or lower the budget")


def check_budget(experiment: ExperimentSpec) -> None:
    """Refuse a budget some method cannot meet, before any job runs."""
    for method in experiment.methods:
        method_steps_per_epoch(experiment, method)
    dsnas_steps = dsnas_steps_per_epoch(experiment)
    if experiment.budget.subnet_images is None:
        return
    try:
        images = train_split_size(experiment.data)
    except DataError:
        return  # the data stage reports an unreadable source itself, naming the key
    warmup = experiment.recipe(WARMUP)
    _check_epoch_length(experiment, "the warm-up", warmup.max_steps_per_epoch, warmup.batch_size, images,
                        "lower 'warmup.max_steps_per_epoch' and raise 'warmup.epochs'")
    for method in experiment.methods:
        _check_epoch_length(experiment, f"method {method!r}", method_steps_per_epoch(experiment, method),
                            experiment.recipe(method).batch_size, images,
                            f"raise 'training.epochs' (or 'methods.{method}.training.epochs')")
    if dsnas_steps is not None:
        _check_epoch_length(experiment, "DSNAS", dsnas_steps, experiment.dsnas.batch_size, images,
                            "raise 'dsnas.epochs' or 'dsnas.child_epochs'")
