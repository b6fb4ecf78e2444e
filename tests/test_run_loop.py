import pytest
import torch

from attentivenas.run_loop import DivergenceGuard, EpochOrder, RunDivergedError
from attentivenas.space import SearchSpace

FMNIST = SearchSpace.load("fmnist")


def test_epoch_order_shards_ranks_and_skips_consumed_batches():
    full = list(EpochOrder(100, 8, 1, 0, seed=3, epoch=1, start=0, stop=6))
    ranks = [list(EpochOrder(100, 4, 2, r, seed=3, epoch=1, start=0, stop=6)) for r in (0, 1)]
    assert len(set(full)) == 48
    for batch in range(6):
        assert ranks[0][4 * batch: 4 * batch + 4] + ranks[1][4 * batch: 4 * batch + 4] == \
            full[8 * batch: 8 * batch + 8]
    assert list(EpochOrder(100, 8, 1, 0, seed=3, epoch=1, start=2, stop=6)) == full[16:]
    assert list(EpochOrder(100, 8, 1, 0, seed=3, epoch=2, start=0, stop=6)) != full


def test_divergence_guard_names_the_first_non_finite_loss_since_its_last_check():
    guard = DivergenceGuard("lower the LR")
    guard.watch(torch.tensor(float("nan")), 1, FMNIST.max_subnet(), "max")
    guard.watch(torch.tensor(float("inf")), 1, FMNIST.min_subnet(), "min")
    with pytest.raises(RunDivergedError, match="step 1: the max subnet's loss is nan") as error:
        guard.check()
    assert FMNIST.max_subnet().to_json() in str(error.value) and "lower the LR" in str(error.value)
    assert guard.watched == []
    guard.watch(torch.tensor(2.0), 2, FMNIST.max_subnet(), "max")
    guard.watch(torch.tensor(1.0, dtype=torch.bfloat16), 2, FMNIST.min_subnet(), "min")
    guard.check()
    guard.watch(torch.tensor(float("-inf")), 3, FMNIST.min_subnet(), "min")
    with pytest.raises(RunDivergedError, match="step 3: the min subnet's loss is -inf"):
        guard.check()
