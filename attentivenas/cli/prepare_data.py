"""Check the configured data and record its splits: sizes, class counts and a digest of the source."""

from __future__ import annotations

import argparse
import hashlib
import logging
from collections import Counter
from pathlib import Path

from attentivenas.cli._config import add_config_arguments, read_job
from attentivenas.data import DataError, build_splits
from attentivenas.io import write_json
from attentivenas.runtime import set_threads
from attentivenas.space import SearchSpace

HELP = "check the data of a config and write its split summary"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, "prepare_data")
    parser.add_argument("--out", required=True, help="summary JSON to write")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")


def _digest(path: Path) -> str | None:
    if not path.is_file():
        return None
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    job = read_job(args, "prepare_data")
    space = SearchSpace.load(job.space)
    splits = build_splits(job.data, image_size=space.base_resolution)
    if splits.num_classes != space.num_classes or splits.in_channels != space.in_channels:
        raise DataError(f"config key 'data' gives {splits.num_classes} classes of {splits.in_channels}-channel "
                        f"images, but space {space.name!r} expects {space.num_classes} classes of "
                        f"{space.in_channels}-channel images; pick a matching config key 'space'")
    summary = {"dataset": job.data["dataset"], "source": job.data["source"],
               "source_sha256": _digest(Path(job.data["source"])),
               "image_size": splits.image_size, "num_classes": splits.num_classes}
    for name in ("train", "search", "test"):
        dataset = getattr(splits, name)
        counts = Counter(int(t) for t in dataset.targets)
        summary[name] = {"images": len(dataset), "per_class": [counts.get(c, 0) for c in range(splits.num_classes)]}
    write_json(args.out, summary)
    logger.info(f"{summary['dataset']}: train {summary['train']['images']}, search {summary['search']['images']}, "
                f"test {summary['test']['images']} images")
    return 0
