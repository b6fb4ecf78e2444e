"""Equal compute: every method's steps derived from one budget of subnet-images, DSNAS included."""

import pytest

from attentivenas.budget import (
    TOLERANCE,
    check_budget,
    dsnas_steps_per_epoch,
    method_steps_per_epoch,
    warmup_subnet_images,
)
from attentivenas.config import ConfigError, validate_config
from attentivenas.specs import ExperimentSpec, load_experiment
from attentivenas.stages import stage_job

METHODS = {"bignas": {"sampler": "uniform"},
           "att": {"sampler": "attentive", "k": 2, "training": {"num_arch_training": 4}},
           "scratch": {"sampler": "uniform", "training": {"init": "scratch", "epochs": 2}}}


def config(tiny_config_dict, budget, **dsnas):
    return ExperimentSpec.from_dict(config_dict(tiny_config_dict, budget, **dsnas))


def config_dict(tiny_config_dict, budget, **dsnas):
    return validate_config({**tiny_config_dict, "methods": METHODS, "budget": {"subnet_images": budget},
                            "training": {"epochs": 1, "batch_size": 32, "num_arch_training": 3, "init": "warmup"},
                            "warmup": {"epochs": 1, "max_steps_per_epoch": 10},
                            "dsnas": {"targets_mflops": [1.0, 2.5], "batch_size": 32, "init": "warmup", **dsnas}})


def planned(conf, method):
    training = stage_job(conf, "train_supernet", method).training
    shared = warmup_subnet_images(conf) if training.init == "warmup" else 0
    return shared + (training.epochs * training.max_steps_per_epoch * training.batch_size
                     * training.num_arch_training)


def test_every_method_and_dsnas_meet_the_budget_within_tolerance(tiny_config_dict):
    conf = config(tiny_config_dict, 4800, child_epochs=1)
    assert warmup_subnet_images(conf) == 10 * 32 * 3
    assert method_steps_per_epoch(conf, "bignas") == 40  # (4800 - 960) / 96
    assert method_steps_per_epoch(conf, "att") == 30  # (4800 - 960) / 128
    assert method_steps_per_epoch(conf, "scratch") == 25  # 4800 / (2 epochs x 96)
    dsnas = stage_job(conf, "dsnas_search").dsnas
    # 3840 / (2 runs x 32 x (3 search epochs + 1 child epoch))
    assert dsnas.max_steps_per_epoch == dsnas_steps_per_epoch(conf) == 15
    dsnas_images = 960 + 2 * 32 * dsnas.max_steps_per_epoch * (dsnas.epochs + dsnas.child_epochs)
    for used in [planned(conf, m) for m in METHODS] + [dsnas_images]:
        assert abs(used - 4800) <= TOLERANCE * 4800


def test_without_a_budget_the_configured_steps_stay(tiny_config_dict):
    conf = config(tiny_config_dict, None)
    assert method_steps_per_epoch(conf, "bignas") is None and dsnas_steps_per_epoch(conf) is None
    assert stage_job(conf, "train_supernet", "bignas").training.max_steps_per_epoch is None


@pytest.mark.parametrize("budget,message", [
    (900, "method 'bignas' trains 96 subnet-images per step"),  # below the warm-up's 960
    (1000, "choose a budget of 960 \\+ a multiple of 96"),  # 0 steps
    (1150, "more than 5% off"),  # bignas: 2 steps give 1152, att: 1 step gives 1088 (5.4%)
])
def test_a_budget_no_whole_number_of_steps_meets_is_refused(tiny_config_dict, budget, message):
    with pytest.raises(ConfigError, match=message) as caught:
        check_budget(config(tiny_config_dict, budget))
    assert "budget.subnet_images" in str(caught.value)


def test_the_warmup_steps_must_be_known(tiny_config_dict):
    conf = config_dict(tiny_config_dict, 4800)
    conf["warmup"].pop("max_steps_per_epoch")
    with pytest.raises(ConfigError, match="warmup.max_steps_per_epoch"):
        check_budget(ExperimentSpec.from_dict(conf))


@pytest.mark.parametrize("name", ["config.yaml", "tiny.yaml"])
def test_shipped_budgets_hold(name):
    conf = load_experiment(f"config/{name}")
    check_budget(conf)
    assert conf.budget.subnet_images is not None


@pytest.mark.parametrize("change,message", [
    ({"budget": {"subnet_images": 960 + 60 * 96}}, "method 'bignas' needs 60 steps per epoch, but an epoch of "
                                                   "the 1600 training images has only 50 batches of 32; raise "
                                                   "'training.epochs'"),
    ({"warmup": {"epochs": 1, "max_steps_per_epoch": 51}, "budget": {"subnet_images": 91 * 96}},
     "the warm-up needs 51 steps per epoch"),
    ({"dsnas": {"targets_mflops": [1.0, 2.5], "batch_size": 32, "init": "warmup", "epochs": 1,
                "child_epochs": 0}, "budget": {"subnet_images": 960 + 40 * 96}}, "DSNAS needs 60 steps"),
])
def test_a_budget_that_needs_more_steps_than_an_epoch_has_batches_is_refused(tiny_config_dict, change, message):
    """Training would stop at the epoch's end: the method would silently train less than its budget."""
    conf = config_dict(tiny_config_dict, 4800)
    for section, value in change.items():
        conf[section] = {**conf[section], **value}
    with pytest.raises(ConfigError, match=message):
        check_budget(ExperimentSpec.from_dict(conf))
