"""The data pipeline: loaders for each dataset (on the shipped subset and tiny fake trees), splits,
augmentation, subsets and loaders, and the messages a wrong `data` section gets."""

import gzip
import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attentivenas.data import (
    DataError,
    ImageView,
    build_splits,
    make_loader,
    parse_data_config,
    read_fashion_mnist_idx,
    read_idx,
    subset,
)

REPO = Path(__file__).resolve().parents[1]
SMALL_NPZ = "data/fashion-mnist/fmnist-2k-500.npz"
NO_AUGMENTATION = {"random_crop_padding": 0, "horizontal_flip": False}


def fmnist_cfg(**overrides):
    return {"dataset": "fashion_mnist", "source": SMALL_NPZ, "search_holdout": 0.2, "split_seed": 0,
            **overrides}


def stack(dataset):
    images, labels = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.stack(images), torch.tensor(labels)


def write_idx(path, array):
    codes = {np.dtype("uint8"): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + np.array(array.shape, ">u4").tobytes()
    (gzip.open if path.suffix == ".gz" else open)(path, "wb").write(header + array.tobytes())


def fake_fashion_mnist_dir(directory, suffix=".gz"):
    """Fashion-MNIST IDX files with 4 train and 2 test images per class; each pixel equals its label."""
    directory.mkdir()
    for prefix, per_class in (("train", 4), ("t10k", 2)):
        labels = np.repeat(np.arange(10, dtype=np.uint8), per_class)
        images = np.repeat(labels, 28 * 28).reshape(-1, 28, 28)
        write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return directory


# ---------------------------------------------------------------- Fashion-MNIST

def test_shipped_subsets_are_stratified():
    for name, train, test in (("fmnist-2k-500", 200, 50), ("fmnist-10k-2k", 1000, 200)):
        with np.load(REPO / f"data/fashion-mnist/{name}.npz") as npz:
            assert npz["x_train"].dtype == np.uint8 and npz["x_train"].shape == (10 * train, 28, 28)
            assert npz["y_train"].dtype == np.int64
            assert np.bincount(npz["y_train"]).tolist() == [train] * 10
            assert np.bincount(npz["y_test"]).tolist() == [test] * 10


def test_npz_loader_shapes_and_normalization():
    splits = build_splits(fmnist_cfg(), image_size=28, root=REPO)
    assert (len(splits.train), len(splits.search), len(splits.test)) == (1600, 400, 500)
    assert (splits.num_classes, splits.in_channels, splits.image_size) == (10, 1, 28)
    images, labels = stack(splits.search)
    assert images.dtype == torch.float32 and images.shape == (400, 1, 28, 28)
    assert sorted(labels.unique().tolist()) == list(range(10))
    assert abs(images.mean().item()) < 0.1 and abs(images.std().item() - 1) < 0.1


def test_image_size_resizes():
    splits = build_splits(fmnist_cfg(augmentation={"random_crop_padding": 2}), image_size=32, root=REPO)
    assert splits.train[0][0].shape == splits.test[0][0].shape == (1, 32, 32)


def test_split_is_deterministic_disjoint_and_stratified():
    first, again = (build_splits(fmnist_cfg(), 28, REPO) for _ in range(2))
    other = build_splits(fmnist_cfg(split_seed=1), 28, REPO)
    assert np.array_equal(first.search.indices, again.search.indices)
    assert not np.array_equal(first.search.indices, other.search.indices)
    train, search = set(first.train.indices.tolist()), set(first.search.indices.tolist())
    assert not train & search and len(train | search) == 2000
    assert np.bincount(first.search.targets).tolist() == [40] * 10
    assert np.bincount(first.train.targets).tolist() == [160] * 10
    # search is carved from the training file; test is a different dataset altogether
    assert first.search.base is first.train.base is first.calibration.base
    assert first.test.base is not first.train.base


def test_holdout_as_count():
    splits = build_splits(fmnist_cfg(search_holdout=300), 28, REPO)
    assert (len(splits.train), len(splits.search)) == (1700, 300)
    assert np.bincount(splits.search.targets).tolist() == [30] * 10


@pytest.mark.parametrize("holdout", [0, 0.0, 1.0, -3, True, "0.2"])
def test_bad_holdout_is_rejected_before_loading(holdout):
    with pytest.raises(DataError, match="data.search_holdout"):
        parse_data_config(fmnist_cfg(search_holdout=holdout), REPO)


def test_holdout_larger_than_the_training_set():
    with pytest.raises(DataError, match="data.search_holdout=2000"):
        build_splits(fmnist_cfg(search_holdout=2000), 28, REPO)


# ---------------------------------------------------------------- IDX files

@pytest.mark.parametrize("suffix", [".gz", ""])
def test_read_idx(tmp_path, suffix):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / f"images{suffix}", images)
    assert np.array_equal(read_idx(tmp_path / f"images{suffix}"), images)
    counts = np.array([1, -2, 70000], dtype=">i4")
    write_idx(tmp_path / f"counts{suffix}", counts)
    assert read_idx(tmp_path / f"counts{suffix}").tolist() == [1, -2, 70000]


def test_read_idx_rejects_truncated_and_foreign_files(tmp_path):
    write_idx(tmp_path / "images", np.zeros((2, 3, 4), np.uint8))
    (tmp_path / "truncated").write_bytes((tmp_path / "images").read_bytes()[:-1])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "truncated")
    (tmp_path / "foreign").write_bytes(b"PK\x03\x04 not an idx file")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "foreign")


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_fashion_mnist_from_an_idx_directory(tmp_path, suffix):
    directory = fake_fashion_mnist_dir(tmp_path / "fmnist", suffix)
    arrays = read_fashion_mnist_idx(directory)
    assert arrays["x_train"].shape == (40, 28, 28) and arrays["y_train"].dtype == np.int64
    splits = build_splits(fmnist_cfg(source="fmnist", search_holdout=10), 28, root=tmp_path)
    assert (len(splits.train), len(splits.search), len(splits.test)) == (30, 10, 20)
    raw_image, label = splits.search.base[int(splits.search.indices[0])]
    assert raw_image.shape == (1, 28, 28) and (raw_image == label).all()


def test_subset_script_is_deterministic_and_stratified(tmp_path):
    path = REPO / "scripts/make_fashion_mnist_subset.py"
    spec = importlib.util.spec_from_file_location("make_fashion_mnist_subset", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    directory = fake_fashion_mnist_dir(tmp_path / "idx")
    for name in ("a.npz", "b.npz"):
        script.main(["--idx-dir", str(directory), "--train", "20", "--test", "10", "--seed", "3",
                     "--out", str(tmp_path / name)])
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert all(np.array_equal(a[key], b[key]) for key in ("x_train", "y_train", "x_test", "y_test"))
        assert np.bincount(a["y_train"]).tolist() == [2] * 10
        assert np.bincount(a["y_test"]).tolist() == [1] * 10
        assert (a["x_train"] == a["y_train"][:, None, None]).all()


# ---------------------------------------------------------------- CIFAR-10 and ImageFolder

def fake_cifar10(root, per_batch=20):
    """cifar-10-batches-py as torchvision reads it: pickled dicts of uint8 rows (R, G, B planes), labels.

    torchvision unpickles with encoding="latin1", so the keys are str ("data", "labels"), as in the real
    Python 2 pickles."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "labels": [i % 10 for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))


def test_cifar10_through_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets.cifar

    fake_cifar10(tmp_path)
    # torchvision checks the md5 sums of the real files; the fake ones are only right in format
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    cfg = {"dataset": "cifar10", "source": str(tmp_path), "search_holdout": 20,
           "augmentation": {"random_crop_padding": 4, "horizontal_flip": True}}
    splits = build_splits(cfg, image_size=32)
    assert (len(splits.train), len(splits.search), len(splits.test)) == (80, 20, 20)
    assert (splits.num_classes, splits.in_channels) == (10, 3)
    assert splits.train[0][0].shape == splits.test[0][0].shape == (3, 32, 32)
    assert np.bincount(splits.search.targets).tolist() == [2] * 10
    first_row = pickle.loads((tmp_path / "cifar-10-batches-py/data_batch_1").read_bytes())["data"][0]
    assert np.array_equal(splits.train.base.images[0].numpy().reshape(-1), first_row)


def test_cifar10_corrupt_files_name_the_source(tmp_path):
    fake_cifar10(tmp_path)
    with pytest.raises(DataError, match="data.source=.*cifar-10-batches-py"):
        build_splits({"dataset": "cifar10", "source": str(tmp_path)}, 32)


def fake_image_folder(root, classes=("cat", "dog"), per_class=(4, 2)):
    rng = np.random.default_rng(0)
    for split, count in zip(("train", "val"), per_class, strict=True):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (30 + i, 40, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")


@pytest.mark.parametrize("augmentation", [{}, {"random_resized_crop": True, "horizontal_flip": True}])
def test_image_folder(tmp_path, augmentation):
    fake_image_folder(tmp_path / "images")
    cfg = {"dataset": "imagefolder", "source": "images", "search_holdout": 0.25, "augmentation": augmentation}
    splits = build_splits(cfg, image_size=16, root=tmp_path)
    assert (len(splits.train), len(splits.search), len(splits.test)) == (6, 2, 4)
    assert (splits.num_classes, splits.in_channels) == (2, 3)
    assert sorted(splits.search.targets) == [0, 1]
    for view in (splits.train, splits.search, splits.test):
        image, _ = view[0]
        assert image.dtype == torch.float32 and image.shape == (3, 16, 16)


def test_image_folder_needs_the_same_classes_in_val(tmp_path):
    fake_image_folder(tmp_path)
    (tmp_path / "val/dog").rename(tmp_path / "val/bird")
    with pytest.raises(DataError, match="same class folders"):
        build_splits({"dataset": "imagefolder", "source": str(tmp_path)}, 16)


# ---------------------------------------------------------------- errors in the config

def test_missing_source_names_key_path_and_remedy(tmp_path):
    with pytest.raises(DataError, match="data.source") as err:
        build_splits(fmnist_cfg(source="nowhere/fmnist.npz"), 28, root=tmp_path)
    assert str(tmp_path / "nowhere/fmnist.npz") in str(err.value)
    assert "apt-get install dataset-fashion-mnist" in str(err.value)
    with pytest.raises(DataError, match="data.source=.*missing train-images-idx3-ubyte"):
        build_splits(fmnist_cfg(source=str(tmp_path)), 28)
    for dataset, expected in (("cifar10", "cifar-10-batches-py"), ("imagefolder", "train/ and val/")):
        with pytest.raises(DataError, match="data.source") as err:
            build_splits({"dataset": dataset, "source": str(tmp_path)}, 32)
        assert expected in str(err.value)
    with pytest.raises(DataError, match="data.source is missing"):
        parse_data_config({"dataset": "cifar10"})


def test_unknown_dataset_and_keys_are_named():
    with pytest.raises(DataError, match="data.dataset='mnist'.*fashion_mnist.*cifar10.*imagefolder"):
        build_splits(fmnist_cfg(dataset="mnist"), 28, REPO)
    with pytest.raises(DataError, match="data.augmentation.*allowed keys.*horizontal_flip"):
        parse_data_config(fmnist_cfg(augmentation={"horizontal_flips": True}), REPO)
    with pytest.raises(DataError, match=r"data: unknown key\(s\) \['split_sed'\]"):
        parse_data_config(fmnist_cfg(split_sed=1), REPO)


def test_relative_source_is_resolved_against_root():
    cfg = parse_data_config(fmnist_cfg(), root=REPO)
    assert cfg.source == REPO / SMALL_NPZ and cfg.augmentation.random_crop_padding == 2


# ---------------------------------------------------------------- augmentation

def eval_view_of(view, splits):
    return ImageView(view.base, view.indices, splits.search.transform)


def test_no_augmentation_keeps_training_pixels():
    splits = build_splits(fmnist_cfg(augmentation=NO_AUGMENTATION), 28, REPO)
    assert torch.equal(stack(splits.train)[0], stack(eval_view_of(splits.train, splits))[0])


@pytest.mark.parametrize("augmentation", [{"random_crop_padding": 2}, {"horizontal_flip": True},
                                          {"random_resized_crop": True}, {"autoaugment": True}])
def test_augmentation_changes_pixels_deterministically(augmentation):
    splits = build_splits(fmnist_cfg(augmentation={**NO_AUGMENTATION, **augmentation}), 28, REPO)
    few = subset(splits.train, 64, seed=0)
    torch.manual_seed(0)
    first = stack(few)[0]
    torch.manual_seed(0)
    assert torch.equal(first, stack(few)[0])
    assert not torch.equal(first, stack(eval_view_of(few, splits))[0])
    assert first.shape == (64, 1, 28, 28)


# ---------------------------------------------------------------- subsets and loaders

def test_subset_is_fixed_by_seed():
    search = build_splits(fmnist_cfg(), 28, REPO).search
    chosen = subset(search, 100, seed=5)
    assert len(chosen) == 100 and chosen.transform is search.transform
    assert set(chosen.indices.tolist()) <= set(search.indices.tolist())
    assert np.array_equal(chosen.indices, subset(search, 100, seed=5).indices)
    assert not np.array_equal(chosen.indices, subset(search, 100, seed=6).indices)
    assert len(subset(search, 10_000, seed=0)) == len(search)


def batches(loader):
    return [(images, labels) for images, labels in loader]


def test_make_loader_shuffles_deterministically():
    search = build_splits(fmnist_cfg(), 28, REPO).search
    labels = [torch.cat([b[1] for b in make_loader(search, 64, shuffle=True, seed=s)]) for s in (0, 0, 1)]
    assert torch.equal(labels[0], labels[1]) and not torch.equal(labels[0], labels[2])
    ordered = torch.cat([b[1] for b in make_loader(search, 64, shuffle=False, seed=0)])
    assert ordered.tolist() == search.targets
    loader = make_loader(search, 64, shuffle=True, seed=0, drop_last=True)
    assert len(loader) == 400 // 64 and all(len(b[1]) == 64 for b in loader)


def test_make_loader_with_workers_fixes_augmentation():
    augmentation = {"random_crop_padding": 2, "horizontal_flip": True}
    splits = build_splits(fmnist_cfg(augmentation=augmentation), 28, REPO)
    few = subset(splits.train, 128, seed=0)
    runs = [batches(make_loader(few, 32, shuffle=True, seed=7, num_workers=2)) for _ in range(2)]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(*runs, strict=True))
