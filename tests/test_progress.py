import logging

import pytest
from tqdm import tqdm

from attentivenas.progress import LoggedBar, progress_bar


@pytest.fixture
def package_logger():
    logger = logging.getLogger("attentivenas")
    level = logger.level
    yield logger
    logger.setLevel(level)


def test_off_a_terminal_a_bar_logs_its_final_state_once_without_carriage_returns(package_logger, caplog, capsys):
    package_logger.setLevel(logging.INFO)
    with caplog.at_level(logging.INFO, logger="attentivenas.progress"):
        bar = progress_bar(range(500), desc="steps")
        assert isinstance(bar, LoggedBar)
        for _ in bar:
            bar.set_postfix(loss=1.0)
    messages = [r.getMessage() for r in caplog.records if r.name == "attentivenas.progress"]
    assert len(messages) == 1 and "steps: 100%" in messages[0] and "500/500" in messages[0]
    captured = capsys.readouterr()
    assert "\r" not in captured.err + captured.out


def test_off_a_terminal_a_bar_logs_once_per_interval(package_logger, caplog, monkeypatch):
    package_logger.setLevel(logging.INFO)
    clock = iter(range(100_000))
    monkeypatch.setattr("tqdm.std.time", lambda: float(next(clock)))
    with caplog.at_level(logging.INFO, logger="attentivenas.progress"):
        bar = progress_bar(total=200, desc="work", mininterval=0)
        for _ in range(200):
            bar.update()
        bar.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "attentivenas.progress"]
    # every update reads the clock (1 s a reading) a few times and redraws; the log gets a line per 30 s
    assert 5 < len(lines) < 50 and "200/200" in lines[-1]
    assert len(set(lines)) == len(lines)


def test_an_evaluation_bar_that_is_not_left_still_logs_its_end(package_logger, caplog):
    package_logger.setLevel(logging.INFO)
    with caplog.at_level(logging.INFO, logger="attentivenas.progress"):
        for _ in progress_bar(range(3), desc="fitness", leave=False):
            pass
    assert ["3/3" in r.getMessage() for r in caplog.records if r.name == "attentivenas.progress"] == [True]


def test_quiet_hides_bars_and_a_terminal_gets_a_plain_bar(package_logger, monkeypatch):
    package_logger.setLevel(logging.WARNING)
    assert progress_bar(range(3)).disable
    package_logger.setLevel(logging.INFO)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    bar = progress_bar(range(3))
    assert type(bar) is tqdm and not bar.disable
    bar.close()
