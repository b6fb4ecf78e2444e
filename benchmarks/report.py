"""A benchmark's output: printed as it is measured, and saved with the machine it was measured on."""

from __future__ import annotations

import contextlib
import platform
import sys
from pathlib import Path

import torch


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


class Report:
    def __init__(self, script: str):
        self.lines = [f"$ python {Path(script).relative_to(Path(script).parents[1])} {' '.join(sys.argv[1:])}".rstrip(),
                      f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU {cpu_model()}, "
                      f"Python {platform.python_version()}"]
        for line in self.lines:
            print(line, flush=True)

    def line(self, text: str) -> None:
        print(text, flush=True)
        self.lines.append(text)

    def save(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(self.lines) + "\n")
