"""Progress bars that suit where stderr goes: a live bar on a terminal, a log line now and then elsewhere.

Redirected to a file (a Snakemake rule log, a batch job), a tqdm bar rewrites its line with carriage
returns many times a second; off a terminal the bar's state is instead logged at most once per
`LOG_INTERVAL_SECONDS`, and once at the end. The command line's `-q` (the package logger set above
INFO) hides bars everywhere.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

LOG_INTERVAL_SECONDS = 30.0

logger = logging.getLogger(__name__)


class _Nowhere(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


class LoggedBar(tqdm):
    """A tqdm bar whose display is a log record, throttled, instead of a rewritten terminal line."""

    def __init__(self, *args: Any, **kwargs: Any):
        self._logged_at: float | None = None
        self._logged_n = 0
        super().__init__(*args, file=_Nowhere(), **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        now = self._time()
        finished = msg == "" or (self.total is not None and self.n >= self.total)
        since = self._logged_at if self._logged_at is not None else getattr(self, "start_t", now)
        due = now - since >= LOG_INTERVAL_SECONDS
        if self.n != self._logged_n and (finished or due):
            logger.info("%s", self.__str__())
            self._logged_at, self._logged_n = now, self.n
        return True


def progress_bar(iterable: Iterable | None = None, **kwargs: Any) -> tqdm:
    """`tqdm(iterable, **kwargs)` on a terminal; off one, a bar that logs its state now and then."""
    if logging.getLogger("attentivenas").level > logging.INFO:
        kwargs["disable"] = True
    if kwargs.get("disable") or sys.stderr.isatty():
        return tqdm(iterable, **kwargs)
    return LoggedBar(iterable, **kwargs)
