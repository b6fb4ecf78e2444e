"""Make a stratified Fashion-MNIST subset, the .npz files shipped in data/fashion-mnist/.

Run from the repository root with the package installed (`pip install -e .`):

    python scripts/make_fashion_mnist_subset.py --train 10000 --test 2000 \
        --out data/fashion-mnist/fmnist-10k-2k.npz
    python scripts/make_fashion_mnist_subset.py --train 2000 --test 500 \
        --out data/fashion-mnist/fmnist-2k-500.npz

Each class keeps its share of the images, and --seed fixes the choice: rerunning gives identical arrays.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from attentivenas.data import read_fashion_mnist_idx, stratified_split


def choose(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Sorted indices of `count` images, stratified by class (all of them if count >= len(labels))."""
    if count >= len(labels):
        return np.arange(len(labels))
    return stratified_split(labels, count, seed)[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idx-dir", type=Path, default=Path("/usr/share/datasets/fashion-mnist"),
                        help="folder of the four Fashion-MNIST IDX files, .gz or plain (Debian package "
                        "dataset-fashion-mnist; default: %(default)s)")
    parser.add_argument("--train", type=int, required=True, help="number of training images to keep")
    parser.add_argument("--test", type=int, required=True, help="number of test images to keep")
    parser.add_argument("--seed", type=int, default=0,
                        help="fixes the choice of images (default: %(default)s)")
    parser.add_argument("--out", type=Path, required=True, help="the .npz file to write")
    args = parser.parse_args(argv)
    if min(args.train, args.test) < 1:
        parser.error("--train and --test must be at least 1")

    full = read_fashion_mnist_idx(args.idx_dir)
    arrays = {}
    for split, count in (("train", args.train), ("test", args.test)):
        chosen = choose(full[f"y_{split}"], count, args.seed)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = full[f"x_{split}"][chosen], full[f"y_{split}"][chosen]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"{args.out}: {len(arrays['y_train'])} train / {len(arrays['y_test'])} test images, "
          f"seed {args.seed}, {args.out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
