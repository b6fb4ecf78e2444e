from attentivenas.run_loop import EpochOrder


def test_epoch_order_shards_ranks_and_skips_consumed_batches():
    full = list(EpochOrder(100, 8, 1, 0, seed=3, epoch=1, start=0, stop=6))
    ranks = [list(EpochOrder(100, 4, 2, r, seed=3, epoch=1, start=0, stop=6)) for r in (0, 1)]
    assert len(set(full)) == 48
    for batch in range(6):
        assert ranks[0][4 * batch: 4 * batch + 4] + ranks[1][4 * batch: 4 * batch + 4] == \
            full[8 * batch: 8 * batch + 8]
    assert list(EpochOrder(100, 8, 1, 0, seed=3, epoch=1, start=2, stop=6)) == full[16:]
    assert list(EpochOrder(100, 8, 1, 0, seed=3, epoch=2, start=0, stop=6)) != full
