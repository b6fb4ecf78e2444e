"""Datasets, splits and loaders: the one data pipeline every stage uses.

The `data` section of an experiment config picks one of three datasets: Fashion-MNIST (the embedded
default, from a .npz subset in the repository or a directory of IDX files), CIFAR-10 and any ImageFolder
tree (ImageNet layout). `build_splits` turns it into the views the stages share: supernet training,
the search split held out of the training images, the test split, and BatchNorm calibration. The search
split is carved out of the training files only, so architecture search never looks at test images.
"""

from __future__ import annotations

import gzip
import math
import random
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision import datasets
from torchvision.transforms import v2

from attentivenas.errors import UserInputError

DATASETS = ("fashion_mnist", "cifar10", "imagefolder")

# Per-channel mean and std of the training images, the constants the literature normalizes with.
NORMALIZATION = {
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "imagefolder": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # ImageNet
}
EVAL_CROP_FRACTION = 0.875  # ImageNet evaluation: resize to size / 0.875, then center-crop to size

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FASHION_MNIST_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
                       "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
FASHION_MNIST_HINT = ("a Fashion-MNIST .npz subset (data/fashion-mnist/fmnist-10k-2k.npz is shipped in the "
                      "repository) or a directory of the IDX files (/usr/share/datasets/fashion-mnist after "
                      "`apt-get install dataset-fashion-mnist`, or your own download)")

# IDX type codes (the third byte of the magic number); multi-byte values are big-endian.
_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(UserInputError):
    """The `data` section of a config, or the files it points to, cannot be used."""


# ---------------------------------------------------------------- reading files

def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST / Fashion-MNIST format), gzip-compressed (.gz) or plain."""
    path = Path(path)
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as file:
            raw = file.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: cannot be read ({err or type(err).__name__}); the file is truncated or "
                        f"not {'gzip-compressed' if path.suffix == '.gz' else 'an IDX file'}") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (magic number {raw[:4].hex()})")
    ndim, dtype = raw[3], np.dtype(_IDX_DTYPES[raw[2]])
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(raw) - offset != math.prod(shape) * dtype.itemsize:
        raise DataError(f"{path}: header says shape {shape} of {dtype}, but the file holds "
                        f"{len(raw) - offset} data bytes; the file is truncated or corrupt")
    return np.frombuffer(raw, dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def _fashion_mnist_idx_paths(directory: Path) -> dict[str, Path]:
    """The four IDX files of `directory` (gzip-compressed or plain), or a DataError naming the missing."""
    paths, missing = {}, []
    for key, name in FASHION_MNIST_FILES.items():
        found = [path for path in (directory / f"{name}.gz", directory / name) if path.is_file()]
        if found:
            paths[key] = found[0]
        else:
            missing.append(f"{name}[.gz]")
    if missing:
        raise DataError(f"data.source={directory}: missing {', '.join(missing)}; "
                        f"expected {FASHION_MNIST_HINT}")
    return paths


def read_fashion_mnist_idx(directory: str | Path) -> dict[str, np.ndarray]:
    """The full Fashion-MNIST from its IDX files, keyed like the .npz subsets (x_train, y_train, ...)."""
    arrays = {key: read_idx(path) for key, path in _fashion_mnist_idx_paths(Path(directory)).items()}
    return {key: a.astype(np.int64) if key.startswith("y") else a for key, a in arrays.items()}


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = sorted(set(FASHION_MNIST_FILES) - set(npz.files))
            if missing:
                raise DataError(f"data.source={path}: the .npz lacks {missing}; expected {FASHION_MNIST_HINT}, "
                                "made by scripts/make_fashion_mnist_subset.py")
            return {key: npz[key] for key in FASHION_MNIST_FILES}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, AttributeError, zipfile.BadZipFile, zlib.error) as err:
        raise DataError(f"data.source={path}: not a readable .npz archive ({err or type(err).__name__}); the file "
                        f"is truncated or of another kind; expected {FASHION_MNIST_HINT}") from None


# ---------------------------------------------------------------- the config

@dataclass(frozen=True)
class Augmentation:
    """Training-time augmentation; the defaults are those of attentivenas/config_schema.yaml."""

    random_crop_padding: int = 2  # RandomCrop at image size after zero padding (small images); 0 = off
    horizontal_flip: bool = True
    random_resized_crop: bool = False  # ImageNet-style RandomResizedCrop at image size
    autoaugment: bool = False  # torchvision AutoAugment, ImageNet policy


@dataclass(frozen=True)
class DataConfig:
    """The checked `data` section: `source` is resolved, the files it needs are known to exist."""

    dataset: str
    source: Path
    search_holdout: float | int = 0.2
    split_seed: int = 0
    augmentation: Augmentation = field(default_factory=Augmentation)
    num_workers: int = 0


def parse_data_config(data_cfg: dict[str, Any], root: str | Path = ".") -> DataConfig:
    """Check the `data` section of a config (cheaply, nothing is loaded); resolve `source` against `root`."""
    known = {f.name for f in fields(DataConfig)}
    unknown = sorted(set(data_cfg) - known)
    if unknown:
        raise DataError(f"data: unknown key(s) {unknown}; allowed: {sorted(known)}")
    dataset = data_cfg.get("dataset")
    if dataset not in DATASETS:
        raise DataError(f"data.dataset={dataset!r} is not supported; use one of {list(DATASETS)}")
    if not data_cfg.get("source"):
        raise DataError("data.source is missing: give the path of the dataset (relative paths are resolved "
                        "against the working directory)")
    source = Path(data_cfg["source"]).expanduser()
    source = source if source.is_absolute() else Path(root) / source
    _check_source(dataset, source)

    holdout = data_cfg.get("search_holdout", 0.2)
    if isinstance(holdout, bool) or not (
        (isinstance(holdout, int) and holdout >= 1) or (isinstance(holdout, float) and 0 < holdout < 1)
    ):
        raise DataError(f"data.search_holdout={holdout!r}: give a fraction 0 < f < 1 (e.g. 0.2) or a count "
                        "of training images (an integer >= 1)")
    aug_cfg = data_cfg.get("augmentation") or {}
    allowed = [f.name for f in fields(Augmentation)]
    if not isinstance(aug_cfg, dict) or set(aug_cfg) - set(allowed):
        raise DataError(f"data.augmentation={aug_cfg!r}: allowed keys are {allowed}")
    augmentation = Augmentation(**aug_cfg)
    if not isinstance(augmentation.random_crop_padding, int) or augmentation.random_crop_padding < 0:
        raise DataError(f"data.augmentation.random_crop_padding={augmentation.random_crop_padding!r}: "
                        "give an integer >= 0 (0 = off)")
    for key in ("split_seed", "num_workers"):
        value = data_cfg.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DataError(f"data.{key}={value!r}: give an integer >= 0")
    return DataConfig(dataset, source, holdout, data_cfg.get("split_seed", 0), augmentation,
                      data_cfg.get("num_workers", 0))


def _check_source(dataset: str, source: Path) -> None:
    if dataset == "fashion_mnist":
        if source.is_dir():
            _fashion_mnist_idx_paths(source)
        elif not (source.is_file() and source.suffix == ".npz"):
            raise DataError(f"data.source={source}: not found or not a .npz; expected {FASHION_MNIST_HINT}")
    elif dataset == "cifar10" and not (source / "cifar-10-batches-py").is_dir():
        raise DataError(f"data.source={source}: no cifar-10-batches-py/ inside; expected torchvision's "
                        "CIFAR10 root, the folder that holds the extracted cifar-10-python.tar.gz")
    elif dataset == "imagefolder" and not ((source / "train").is_dir() and (source / "val").is_dir()):
        raise DataError(f"data.source={source}: expected a folder with train/ and val/ sub-folders, each "
                        "with one sub-folder of images per class (the ImageNet layout)")


# ---------------------------------------------------------------- datasets and views

class InMemoryImages(Dataset):
    """Small datasets held whole as a uint8 tensor N x C x H x W: indexing is cheap, even on 2 cores."""

    def __init__(self, images: torch.Tensor, targets: Sequence[int], classes: Sequence[str]):
        self.images, self.classes = images.contiguous(), list(classes)
        self.targets = [int(t) for t in targets]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], self.targets[index]


class ImageView(Dataset):
    """The images `indices` of a dataset of raw (image, label) pairs, through one transform.

    Splits and subsets are views, so the training and search splits share one copy of the images and
    differ only in indices and transform.
    """

    def __init__(self, base: Dataset, indices: Sequence[int], transform: v2.Transform):
        self.base, self.indices, self.transform = base, np.asarray(indices, dtype=np.int64), transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.base[int(self.indices[index])]
        return self.transform(image), label

    @property
    def targets(self) -> list[int]:
        return [self.base.targets[i] for i in self.indices]


@dataclass
class DataSplits:
    """What every stage gets. `train` and `search` are disjoint parts of the training files; `calibration`
    is the training images with training augmentation, the distribution the BatchNorm statistics of a
    subnet are recomputed on."""

    train: ImageView
    search: ImageView
    test: ImageView
    calibration: ImageView
    num_classes: int
    in_channels: int
    image_size: int


def _load_fashion_mnist(source: Path) -> tuple[Dataset, Dataset]:
    arrays = _read_npz(source) if source.is_file() else read_fashion_mnist_idx(source)
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        well_formed = images.dtype == np.uint8 and images.shape[1:] == (28, 28) and len(images) == len(labels)
        if not (well_formed and set(np.unique(labels)) <= set(range(10))):
            raise DataError(f"data.source={source}: x_{split} must be uint8 N x 28 x 28 and y_{split} N "
                            f"labels 0..9, got {images.dtype} {images.shape} and {len(labels)} labels")
    return tuple(InMemoryImages(torch.from_numpy(arrays[f"x_{split}"]).unsqueeze(1), arrays[f"y_{split}"],
                                FASHION_MNIST_CLASSES) for split in ("train", "test"))


def _load_cifar10(source: Path) -> tuple[Dataset, Dataset]:
    try:
        splits = [datasets.CIFAR10(source, train=train, download=False) for train in (True, False)]
    except RuntimeError as err:
        raise DataError(f"data.source={source}: torchvision cannot read cifar-10-batches-py/ ({err}); "
                        "expected the extracted cifar-10-python.tar.gz: data_batch_1..5, test_batch and "
                        "batches.meta") from None
    return tuple(InMemoryImages(torch.from_numpy(split.data).permute(0, 3, 1, 2), split.targets,
                                split.classes) for split in splits)


def _load_imagefolder(source: Path) -> tuple[Dataset, Dataset]:
    try:
        train, test = datasets.ImageFolder(source / "train"), datasets.ImageFolder(source / "val")
    except FileNotFoundError as err:
        raise DataError(f"data.source={source}: {err}; expected one sub-folder of images per class in "
                        "train/ and in val/") from None
    if train.class_to_idx != test.class_to_idx:
        raise DataError(f"data.source={source}: train/ has classes {train.classes} but val/ has "
                        f"{test.classes}; both need the same class folders")
    return train, test


_LOADERS = {"fashion_mnist": _load_fashion_mnist, "cifar10": _load_cifar10, "imagefolder": _load_imagefolder}


def _transforms(dataset: str, augmentation: Augmentation, image_size: int,
                native_size: int | None) -> tuple[v2.Compose, v2.Compose]:
    """(train, eval) transforms from a raw image (uint8 tensor or PIL) to a normalized float C x H x W tensor.

    `native_size` is the side of fixed-size images, None for photos of any size (ImageFolder), which are
    resized and center-cropped the ImageNet way.
    """
    if native_size is None:
        geometry = [v2.Resize(int(image_size / EVAL_CROP_FRACTION)), v2.CenterCrop(image_size)]
    else:
        geometry = [v2.Resize(image_size)] if native_size != image_size else []
    to_tensor = [] if native_size else [v2.PILToTensor()]  # in-memory images are uint8 tensors already
    mean, std = NORMALIZATION[dataset]
    to_float = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]

    train = list(to_tensor)
    if augmentation.random_resized_crop:
        train.append(v2.RandomResizedCrop(image_size))
    else:
        train += geometry
        if augmentation.random_crop_padding:
            train.append(v2.RandomCrop(image_size, padding=augmentation.random_crop_padding))
    if augmentation.horizontal_flip:
        train.append(v2.RandomHorizontalFlip())
    if augmentation.autoaugment:
        train.append(v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET))
    return v2.Compose(train + to_float), v2.Compose(to_tensor + geometry + to_float)


def stratified_split(labels: Sequence[int], holdout: float | int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices 0..N-1 into sorted (kept, held_out) with the class proportions of `labels` in both.

    `holdout` is a fraction (0 < f < 1) or a count of images to hold out; the split is fixed by `seed`.
    """
    kept, held = train_test_split(np.arange(len(labels)), test_size=holdout, stratify=np.asarray(labels),
                                  random_state=seed)
    return np.sort(kept), np.sort(held)


def _split(train_base: Dataset, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    try:
        return stratified_split(train_base.targets, cfg.search_holdout, cfg.split_seed)
    except ValueError as err:
        raise DataError(f"data.search_holdout={cfg.search_holdout!r} cannot split the {len(train_base)} "
                        f"training images of {cfg.source}: {err}") from None


def build_splits(data_cfg: dict[str, Any], image_size: int, root: str | Path = ".") -> DataSplits:
    """Load the dataset of the `data` config section and split it; images come out image_size x image_size."""
    cfg = parse_data_config(data_cfg, root)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise DataError(f"image_size={image_size!r}: give the input side of the network in pixels (e.g. 28)")
    train_base, test_base = _LOADERS[cfg.dataset](cfg.source)
    in_memory = isinstance(train_base, InMemoryImages)
    train_tf, eval_tf = _transforms(cfg.dataset, cfg.augmentation, image_size,
                                    train_base.images.shape[-1] if in_memory else None)
    train_idx, search_idx = _split(train_base, cfg)
    train = ImageView(train_base, train_idx, train_tf)
    return DataSplits(
        train=train,
        search=ImageView(train_base, search_idx, eval_tf),
        test=ImageView(test_base, range(len(test_base)), eval_tf),
        calibration=train,
        num_classes=len(train_base.classes),
        in_channels=train_base.images.shape[1] if in_memory else 3,  # ImageFolder loads RGB
        image_size=image_size,
    )


def train_split_size(data_cfg: dict[str, Any], root: str | Path = ".") -> int:
    """How many images the training split holds (what an epoch's steps are counted from), without
    building transforms: plans check against it before any job runs."""
    cfg = parse_data_config(data_cfg, root)
    train_base, _ = _LOADERS[cfg.dataset](cfg.source)
    return len(_split(train_base, cfg)[0])


# ---------------------------------------------------------------- subsets and loaders

def subset(dataset: ImageView, count: int, seed: int) -> ImageView:
    """A fixed random `count` images of `dataset` (all if it has fewer), in their original order.

    BatchNorm recalibration and quick evaluations use a fixed number of images, the same for every subnet.
    """
    if count < 1:
        raise DataError(f"subset: count={count}; give at least 1 image")
    chosen = np.random.default_rng(seed).choice(len(dataset), size=min(count, len(dataset)), replace=False)
    return ImageView(dataset.base, dataset.indices[np.sort(chosen)], dataset.transform)


def _seed_worker(worker_id: int) -> None:
    """Seed `random` and numpy in a loader worker from its torch seed, which the loader's generator fixed."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int, drop_last: bool = False,
                num_workers: int = 0, sampler: Sampler | None = None, pin_memory: bool = False) -> DataLoader:
    """A DataLoader whose order is fixed by `seed`, independent of the global RNG.

    Shuffling draws from the loader's own generator. Workers are seeded from it too, so with workers the
    augmentation is fixed by `seed`; without workers it draws from torch's global RNG, which the stage seeds.
    `pin_memory` (for a CUDA consumer) lets `.to(device, non_blocking=True)` copy while the host goes on.
    """
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler, drop_last=drop_last,
                      num_workers=num_workers, generator=torch.Generator().manual_seed(seed),
                      worker_init_fn=_seed_worker if num_workers else None, pin_memory=pin_memory)
