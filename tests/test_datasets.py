"""Tests of datasets.py: every source, the normalising rules, the splits, and every bad input.

Nothing here touches the network: the keras.datasets sources are tested with a stand-in
`keras` module (and once with the real one, its loader monkeypatched to fail).
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import sys
import types
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from sdt.data import datasets
from sdt.data.datasets import DATASET_NAMES, DEFAULT_DATASET, Dataset, load_dataset
from sdt.core.errors import ConfigurationError, DatasetError


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

def write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def numbered_images(count: int, height: int = 4, width: int = 4) -> np.ndarray:
    """uint8 images whose every pixel is the image's index: a split can be traced back."""
    return np.broadcast_to(np.arange(count, dtype=np.uint8)[:, None, None],
                           (count, height, width)).copy()


def image_ids(x: np.ndarray) -> list[int]:
    """Indices of numbered_images after scaling to [0, 1]."""
    return [int(v) for v in np.rint(x[:, 0, 0, 0] * 255)]


def balanced_npz(path: Path, classes: int = 3, per_class: int = 20, test_per_class: int = 4,
                 **extra) -> Path:
    y_train = np.repeat(np.arange(classes), per_class)
    y_test = np.repeat(np.arange(classes), test_per_class)
    return write_npz(path, x_train=numbered_images(len(y_train)), y_train=y_train,
                     x_test=numbered_images(len(y_test)), y_test=y_test, **extra)


def install_fake_keras(monkeypatch, **loaders) -> None:
    """Make `import keras` return a stand-in whose keras.datasets.<name>.load_data are `loaders`."""
    fake_datasets = types.SimpleNamespace(
        **{name: types.SimpleNamespace(load_data=load) for name, load in loaders.items()})
    monkeypatch.setitem(sys.modules, "keras", types.SimpleNamespace(datasets=fake_datasets))


def write_image(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image), path


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    with gzip.open(path, "wb") as file:
        file.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def default_dataset() -> Dataset:
    return load_dataset(DEFAULT_DATASET, seed=0)


# ---------------------------------------------------------------------------------------------
# The default dataset
# ---------------------------------------------------------------------------------------------

def test_default_dataset_is_registered_and_shipped():
    assert DEFAULT_DATASET == "fashion_mnist_small"
    assert DEFAULT_DATASET in DATASET_NAMES
    assert set(DATASET_NAMES) >= {"fashion_mnist", "mnist", "cifar10", "cifar100", "digits"}
    # Found next to datasets.py, never from the working directory.
    repo_dir = Path(datasets.__file__).resolve().parent
    assert datasets.FASHION_MNIST_SMALL_FILE == repo_dir / "fashion_mnist_small.npz"
    assert datasets.FASHION_MNIST_SMALL_FILE.is_file()
    assert (datasets.DATA_DIR / "LICENSE-fashion-mnist.txt").read_text().count("Zalando SE") == 1


def test_default_dataset_shapes_types_and_range(default_dataset):
    d = default_dataset
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (5400, 600, 1000)
    assert d.input_shape == (28, 28, 1)
    assert all(type(dim) is int for dim in d.input_shape)
    for x, y in ((d.x_train, d.y_train), (d.x_val, d.y_val), (d.x_test, d.y_test)):
        assert x.dtype == np.float32 and x.shape[1:] == (28, 28, 1)
        assert y.dtype == np.int64 and y.ndim == 1 and len(y) == len(x)
        # Scaled exactly once: the brightest pixel is 1.0, not 1/255.
        assert x.min() == 0.0 and x.max() == 1.0
    assert d.num_classes == 10
    assert d.class_names[0] == "T-shirt/top" and len(d.class_names) == 10
    assert d.allows_horizontal_flip is True
    assert d.name == "fashion_mnist_small"


def test_default_splits_partition_the_shipped_file(default_dataset):
    d = default_dataset
    with np.load(datasets.FASHION_MNIST_SMALL_FILE) as raw:
        raw_x_train, raw_y_train = raw["x_train"], raw["y_train"]
        raw_x_test, raw_y_test = raw["x_test"], raw["y_test"]

    def pairs(x, y):
        return Counter((image.tobytes(), int(label)) for image, label in zip(x, y))

    def unscale(x):
        return np.rint(x[..., 0] * 255).astype(np.uint8)

    # train + validation is exactly the shipped training set (nothing lost, nothing twice)...
    assert (pairs(unscale(d.x_train), d.y_train) + pairs(unscale(d.x_val), d.y_val)
            == pairs(raw_x_train, raw_y_train))
    # ...and the test set is the shipped test set, untouched.
    np.testing.assert_array_equal(unscale(d.x_test), raw_x_test)
    np.testing.assert_array_equal(d.y_test, raw_y_test)


def test_default_validation_split_is_stratified(default_dataset):
    # 600 training images per class; a stratified 10% split holds out 60 of each.
    np.testing.assert_array_equal(np.bincount(default_dataset.y_val), [60] * 10)
    np.testing.assert_array_equal(np.bincount(default_dataset.y_train), [540] * 10)
    np.testing.assert_array_equal(np.bincount(default_dataset.y_test), [100] * 10)


def test_same_seed_same_split_other_seed_other_split(default_dataset):
    again = load_dataset(DEFAULT_DATASET, seed=0)
    np.testing.assert_array_equal(again.x_val, default_dataset.x_val)
    np.testing.assert_array_equal(again.y_train, default_dataset.y_train)
    other = load_dataset(DEFAULT_DATASET, seed=1)
    assert not np.array_equal(other.x_val, default_dataset.x_val)
    # The seed only moves the validation split; the test set is the data's own.
    np.testing.assert_array_equal(other.x_test, default_dataset.x_test)


def test_validation_fraction_sets_the_validation_size():
    d = load_dataset(DEFAULT_DATASET, validation_fraction=0.5)
    assert (len(d.x_train), len(d.x_val)) == (3000, 3000)


def test_default_dataset_loads_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert len(load_dataset(DEFAULT_DATASET).x_test) == 1000


def test_summary_and_to_dict(default_dataset):
    summary = default_dataset.summary()
    assert "\n" not in summary
    for part in ("fashion_mnist_small", "5400 train", "600 validation", "1000 test",
                 "28x28x1", "10 classes"):
        assert part in summary
    record = json.loads(json.dumps(default_dataset.to_dict()))
    assert record["input_shape"] == [28, 28, 1] and record["validation_size"] == 600
    assert record["allows_horizontal_flip"] is True


def test_missing_default_file_says_how_to_rebuild(tmp_path, monkeypatch):
    # Invalid: the shipped npz has been deleted.
    monkeypatch.setattr(datasets, "FASHION_MNIST_SMALL_FILE", tmp_path / "gone.npz")
    with pytest.raises(DatasetError, match="is missing; rebuild it with scripts/make_fashion_mnist_small.py"):
        load_dataset(DEFAULT_DATASET)


# ---------------------------------------------------------------------------------------------
# Other named sources
# ---------------------------------------------------------------------------------------------

def test_digits_scaled_by_16_with_fixed_stratified_test_split():
    d = load_dataset("digits", seed=3)
    assert d.input_shape == (8, 8, 1) and d.num_classes == 10
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 1797
    assert len(d.x_test) == math.ceil(0.2 * 1797)
    # 0..16 counts scaled by 16 once: the top value is 1.0 and 1/16 steps survive.
    assert d.x_train.max() == 1.0 and d.x_train.dtype == np.float32
    np.testing.assert_array_equal(np.unique(d.x_test * 16), np.arange(17))
    # Each class has 174..183 images: a stratified 20% split holds 35..37 of each.
    assert np.bincount(d.y_test).min() >= 35 and np.bincount(d.y_test).max() <= 37
    assert d.allows_horizontal_flip is False
    np.testing.assert_array_equal(d.x_test, load_dataset("digits", seed=4).x_test)


def test_image_size_resizes_a_named_source():
    d = load_dataset("digits", image_size=(16, 12))
    assert d.input_shape == (16, 12, 1)
    assert d.x_val.shape[1:] == (16, 12, 1) and d.x_test.shape[1:] == (16, 12, 1)
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0


@pytest.mark.skipif(not all((datasets.DEBIAN_FASHION_MNIST_DIR / f).is_file()
                            for f in datasets.FASHION_MNIST_FILES.values()),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_full_fashion_mnist_from_debian_files():
    d = load_dataset("fashion_mnist")
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (54000, 6000, 10000)
    assert d.input_shape == (28, 28, 1) and d.x_train.max() == 1.0
    np.testing.assert_array_equal(np.bincount(d.y_test), [1000] * 10)


def test_fashion_mnist_reads_idx_files_when_present(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    write_idx_gz(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)))
    write_idx_gz(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(20) % 10)
    write_idx_gz(tmp_path / "t10k-images-idx3-ubyte.gz", np.full((10, 28, 28), 255))
    write_idx_gz(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(10))
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", tmp_path)
    d = load_dataset("fashion_mnist")
    assert (len(d.x_train) + len(d.x_val), len(d.x_test)) == (20, 10)
    np.testing.assert_array_equal(d.y_test, np.arange(10))
    assert (d.x_test == 1.0).all()


def test_fashion_mnist_falls_back_to_keras_without_idx_files(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "absent")
    calls = []

    def load_data():
        calls.append("fashion_mnist")
        return ((numbered_images(20, 28, 28), np.arange(20) % 10),
                (numbered_images(10, 28, 28), np.arange(10)))

    install_fake_keras(monkeypatch, fashion_mnist=load_data)
    assert load_dataset("fashion_mnist").num_classes == 10
    assert calls == ["fashion_mnist"]


def test_keras_sources_are_normalised(monkeypatch):
    rng = np.random.default_rng(0)
    install_fake_keras(
        monkeypatch,
        # keras' shapes: MNIST labels are (N,), CIFAR labels a (N, 1) column.
        mnist=lambda: ((rng.integers(0, 256, (30, 28, 28), dtype=np.uint8), np.arange(30) % 10),
                       (rng.integers(0, 256, (10, 28, 28), dtype=np.uint8), np.arange(10))),
        cifar10=lambda: ((rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8),
                          (np.arange(30) % 10)[:, None]),
                         (rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8),
                          np.arange(10)[:, None])),
        cifar100=lambda: ((np.zeros((200, 32, 32, 3), np.uint8), (np.arange(200) % 100)[:, None]),
                          (np.zeros((100, 32, 32, 3), np.uint8), np.arange(100)[:, None])),
    )
    mnist = load_dataset("mnist")
    assert mnist.input_shape == (28, 28, 1) and mnist.allows_horizontal_flip is False
    cifar10 = load_dataset("cifar10")
    assert cifar10.input_shape == (32, 32, 3) and cifar10.y_train.shape == (27,)
    assert cifar10.y_train.dtype == np.int64 and cifar10.allows_horizontal_flip is True
    assert cifar10.class_names[0] == "airplane" and 0.0 <= cifar10.x_train.min() <= cifar10.x_train.max() <= 1.0
    cifar100 = load_dataset("cifar100")
    assert cifar100.num_classes == 100
    # The fine labels are alphabetical: the list must be 100 distinct names in sorted order.
    assert list(cifar100.class_names) == sorted(set(cifar100.class_names))
    assert len(cifar100.class_names) == 100


def test_keras_download_failure_is_a_clear_error(monkeypatch):
    # Invalid: no cached copy and no network, so keras.utils.get_file fails.
    monkeypatch.delenv("KERAS_HOME", raising=False)

    def offline():
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: "
                        "[Errno -3] Temporary failure in name resolution")

    install_fake_keras(monkeypatch, cifar10=offline)
    with pytest.raises(DatasetError, match="could not load dataset 'cifar10'") as caught:
        load_dataset("cifar10")
    message = str(caught.value)
    assert "no internet" in message and ".npz" in message
    assert str(Path.home() / ".keras" / "datasets") in message
    assert "Temporary failure in name resolution" in str(caught.value.__cause__)


def test_keras_not_importable_is_a_clear_error(monkeypatch):
    # Invalid: Keras is not installed (a None entry makes `import keras` raise ImportError).
    monkeypatch.setitem(sys.modules, "keras", None)
    with pytest.raises(DatasetError, match="Keras cannot be imported"):
        load_dataset("mnist")


@pytest.mark.slow  # imports TensorFlow (seconds); no network
def test_real_keras_loader_failure_is_a_clear_error(monkeypatch):
    keras = pytest.importorskip("keras")
    for name in ("mnist", "fashion_mnist", "cifar10", "cifar100"):
        assert callable(getattr(keras.datasets, name).load_data)

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network in tests")

    # Invalid: the download fails.
    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(DatasetError, match=r"could not load dataset 'mnist'.*no internet"):
        load_dataset("mnist")


# ---------------------------------------------------------------------------------------------
# User .npz files
# ---------------------------------------------------------------------------------------------

def test_npz_with_hxw_uint8_images(tmp_path):
    path = balanced_npz(tmp_path / "small.npz")
    d = load_dataset(str(path), seed=0, validation_fraction=0.25)
    assert d.input_shape == (4, 4, 1) and d.num_classes == 3
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (45, 15, 12)
    assert d.name == str(path)
    # Mirroring is off unless the file says otherwise; no class names unless given.
    assert d.allows_horizontal_flip is False and d.class_names is None
    # Train and validation are disjoint and together the whole training set.
    train, val = image_ids(d.x_train), image_ids(d.x_val)
    assert sorted(train + val) == list(range(60))
    np.testing.assert_array_equal(np.bincount(d.y_val), [5, 5, 5])
    # Each image keeps its own label: image i of the file has label i // 20.
    assert [i // 20 for i in val] == d.y_val.tolist()


def test_npz_path_object_and_optional_keys(tmp_path):
    path = balanced_npz(tmp_path / "named.npz", classes=2,
                        class_names=np.array(["cat", "dog"]),
                        allows_horizontal_flip=np.array(True))
    d = load_dataset(path)
    assert d.class_names == ("cat", "dog") and d.allows_horizontal_flip is True


def test_npz_with_hxwxc_float_images_in_0_255_are_divided_by_255(tmp_path):
    x_train = np.full((12, 5, 6, 3), 127.5)
    x_train[0] = 255.0
    path = write_npz(tmp_path / "colour.npz", x_train=x_train, y_train=np.arange(12) % 2,
                     x_test=np.full((4, 5, 6, 3), 51.0), y_test=np.arange(4) % 2)
    d = load_dataset(str(path))
    assert d.input_shape == (5, 6, 3)
    np.testing.assert_allclose(d.x_test, 0.2, rtol=1e-6)
    assert max(d.x_train.max(), d.x_val.max()) == 1.0
    assert d.x_train.dtype == np.float32


def test_npz_with_float_images_in_0_1_are_kept(tmp_path):
    x_train = np.linspace(0, 1, 12 * 9).reshape(12, 3, 3)
    path = write_npz(tmp_path / "unit.npz", x_train=x_train, y_train=np.arange(12) % 2,
                     x_test=np.full((2, 3, 3), 0.75), y_test=np.array([0, 1]))
    d = load_dataset(str(path))
    np.testing.assert_array_equal(d.x_test, np.full((2, 3, 3, 1), 0.75, np.float32))
    all_train = np.sort(np.concatenate([d.x_train, d.x_val]).ravel())
    np.testing.assert_allclose(all_train, np.sort(x_train.ravel()), rtol=1e-6)


def test_npz_with_one_hot_and_column_labels(tmp_path):
    labels = np.arange(20) % 3
    one_hot = np.eye(4, dtype=np.float32)[labels]  # 4 columns, class 3 never used
    path = write_npz(tmp_path / "onehot.npz", x_train=numbered_images(20), y_train=one_hot,
                     x_test=numbered_images(6), y_test=(np.arange(6) % 3)[:, None])
    d = load_dataset(str(path))
    # The one-hot width says how many classes there are, even if one is unused.
    assert d.num_classes == 4
    assert d.y_train.dtype == np.int64 and d.y_train.ndim == 1
    assert [i % 3 for i in image_ids(d.x_train)] == d.y_train.tolist()
    np.testing.assert_array_equal(d.y_test, np.arange(6) % 3)


def test_npz_whole_float_labels_are_accepted(tmp_path):
    path = write_npz(tmp_path / "floats.npz", x_train=numbered_images(10),
                     y_train=(np.arange(10) % 2).astype(float),
                     x_test=numbered_images(2), y_test=np.array([0.0, 1.0]))
    assert load_dataset(str(path)).y_test.tolist() == [0, 1]


def test_labels_are_not_remapped_and_missing_classes_are_warned(tmp_path, caplog):
    # Labels 0 and 2 only: num_classes is max label + 1 = 3, and class 1 has no images.
    path = write_npz(tmp_path / "gap.npz", x_train=numbered_images(10),
                     y_train=np.array([0, 2] * 5), x_test=numbered_images(2),
                     y_test=np.array([0, 2]))
    with caplog.at_level(logging.WARNING, logger="datasets"):
        d = load_dataset(str(path))
    assert d.num_classes == 3 and set(d.y_train.tolist()) <= {0, 2}
    assert "1 of 3 classes have no training image" in caplog.text


def test_a_huge_label_id_is_refused_without_building_anything_that_large(tmp_path):
    import tracemalloc
    from sdt.data.datasets import MAX_CLASSES
    path = write_npz(tmp_path / "huge.npz", x_train=numbered_images(10),
                     y_train=np.array([0, 1] * 4 + [0, 10**12]), x_test=numbered_images(2), y_test=np.array([0, 1]))
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match=f"label 1000000000000 would make 1000000000001 classes, more than "
                                               f"the {MAX_CLASSES}"):
            load_dataset(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20                    # a set of 10**12 class numbers would never fit


def test_test_labels_unseen_in_training_are_accepted(tmp_path):
    path = write_npz(tmp_path / "unseen.npz", x_train=numbered_images(10),
                     y_train=np.arange(10) % 2, x_test=numbered_images(3),
                     y_test=np.array([0, 1, 2]))
    assert load_dataset(str(path)).num_classes == 3


def test_split_of_a_class_with_one_sample_falls_back_to_unstratified(tmp_path, caplog):
    # Class 2 has a single training image: sklearn cannot stratify, the split must still work.
    y_train = np.array([0] * 10 + [1] * 10 + [2])
    path = write_npz(tmp_path / "rare.npz", x_train=numbered_images(21), y_train=y_train,
                     x_test=numbered_images(3), y_test=np.arange(3))
    with caplog.at_level(logging.WARNING, logger="datasets"):
        d = load_dataset(str(path), seed=5)
    assert "validation split is not stratified" in caplog.text
    assert len(d.x_val) == math.ceil(0.1 * 21) and len(d.x_train) == 21 - len(d.x_val)
    assert sorted(image_ids(d.x_train) + image_ids(d.x_val)) == list(range(21))
    again = load_dataset(str(path), seed=5)
    np.testing.assert_array_equal(again.x_val, d.x_val)


def test_a_single_training_image_is_refused(tmp_path):
    # Invalid: one training image is one class, and cannot be split into train and validation.
    path = write_npz(tmp_path / "one.npz", x_train=numbered_images(1), y_train=np.array([0]),
                     x_test=numbered_images(2), y_test=np.array([0, 1]))
    with pytest.raises(DatasetError, match=r"y_train holds a single class \(0\)"):
        load_dataset(str(path))


# Bad .npz files: each (content, expected message) is one fault.
def _valid_arrays(**overrides):
    arrays = dict(x_train=numbered_images(10), y_train=np.arange(10) % 2,
                  x_test=numbered_images(4), y_test=np.arange(4) % 2)
    arrays.update(overrides)
    return {key: value for key, value in arrays.items() if value is not None}


@pytest.mark.parametrize("arrays, message", [
    # y_test is missing.
    (_valid_arrays(y_test=None), r"has no key 'y_test' \(found: x_train, y_train, x_test\)"),
    # Two keys missing, wrongly named.
    (dict(images=numbered_images(3), labels=np.arange(3)), r"has no keys 'x_train', 'y_train'"),
    # 10 images, 9 labels.
    (_valid_arrays(y_train=np.arange(9) % 2), "x_train has 10 images but y_train has 9 labels"),
    # 4 test images, 3 labels.
    (_valid_arrays(y_test=np.arange(3) % 2), "x_test has 4 images but y_test has 3 labels"),
    # Every training label is the same class.
    (_valid_arrays(y_train=np.zeros(10, int)), r"y_train holds a single class \(0\)"),
    # Fractional labels.
    (_valid_arrays(y_train=np.arange(10) / 2), "y_train must be integer class indices, found 0.5"),
    # Class names as strings instead of indices.
    (_valid_arrays(y_train=np.array(["a", "b"] * 5)), "y_train must be integer class indices 0..K-1, got dtype <U1"),
    # Negative label.
    (_valid_arrays(y_test=np.array([0, 1, -1, 0])), "y_test holds the negative label -1"),
    # Two 1s in a row is not one-hot.
    (_valid_arrays(y_train=np.ones((10, 2))), r"must be one-hot: a single 1 per row"),
    # Labels with three axes.
    (_valid_arrays(y_train=np.zeros((10, 2, 2))), r"y_train must be class indices \(N,\) or one-hot"),
    # Flattened images (rank 2).
    (_valid_arrays(x_train=np.zeros((10, 16), np.uint8)),
     r"x_train must be images shaped \(N, H, W\) or \(N, H, W, C\), got shape \(10, 16\)"),
    # Rank 5.
    (_valid_arrays(x_test=np.zeros((4, 2, 2, 2, 1), np.uint8)),
     r"x_test must be images shaped .* got shape \(4, 2, 2, 2, 1\)"),
    # Train 4x4 but test 5x5.
    (_valid_arrays(x_test=np.zeros((4, 5, 5), np.uint8)), "train images are 4x4x1 but test images are 5x5x1"),
    # Empty test set.
    (_valid_arrays(x_test=np.zeros((0, 4, 4), np.uint8), y_test=np.zeros(0, int)), "x_test holds no images"),
    # Strings as pixels.
    (_valid_arrays(x_train=np.full((10, 2, 2), "a")), "x_train must hold numeric pixels"),
    # Pixel values beyond 8 bits.
    (_valid_arrays(x_train=np.full((10, 4, 4), 300.0)), "found 300.0; 16-bit images must be converted"),
    # Standardised (negative) pixels.
    (_valid_arrays(x_test=np.full((4, 4, 4), -0.5)), "found -0.5; pass raw pixels, not standardised"),
    # NaN pixels.
    (_valid_arrays(x_test=np.full((4, 4, 4), np.nan)), "NaN or infinite pixel values"),
    # Two names for three classes.
    (_valid_arrays(y_test=np.array([0, 1, 2, 0]), class_names=np.array(["a", "b"])), "2 class names for 3 classes"),
    # class_names given as numbers.
    (_valid_arrays(class_names=np.array([1, 2])), "'class_names' must be a 1-D array of strings"),
    # Flip flag given as an int array.
    (_valid_arrays(allows_horizontal_flip=np.array([1, 0])), "'allows_horizontal_flip' must be a single boolean"),
])
def test_bad_npz_contents(tmp_path, arrays, message):
    path = write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=message) as caught:
        load_dataset(str(path))
    assert str(path) in str(caught.value)  # every message names the file


def test_missing_npz_file(tmp_path):
    # Invalid: the file does not exist.
    with pytest.raises(DatasetError, match=r"dataset file '.*absent\.npz' does not exist"):
        load_dataset(str(tmp_path / "absent.npz"))


def test_truncated_npz_file(tmp_path):
    # Invalid: the archive was cut in half (its zip directory is lost).
    good = balanced_npz(tmp_path / "good.npz").read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(DatasetError, match=r"cut\.npz' is not a valid \.npz archive") as caught:
        load_dataset(str(path))
    assert caught.value.__cause__ is not None


def test_text_file_named_npz(tmp_path):
    # Invalid: not an archive at all.
    path = tmp_path / "notes.npz"
    path.write_text("x_train,y_train\n1,2\n")
    with pytest.raises(DatasetError, match=r"notes\.npz' is not a valid \.npz archive"):
        load_dataset(str(path))


def test_corrupt_array_inside_npz(tmp_path):
    # Invalid: the zip directory is intact but the compressed bytes of x_train are damaged.
    path = tmp_path / "damaged.npz"
    rng = np.random.default_rng(0)
    np.savez_compressed(path, x_train=rng.integers(0, 8, (400, 16, 16), dtype=np.uint8),
                        y_train=np.arange(400) % 2, x_test=numbered_images(4),
                        y_test=np.arange(4) % 2)
    data = bytearray(path.read_bytes())
    middle = len(data) // 3
    data[middle:middle + 64] = bytes(64)
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"damaged\.npz': cannot read array 'x_train'"):
        load_dataset(str(path))


def test_single_npy_array_named_npz(tmp_path):
    # Invalid: np.save output (one array), not an np.savez archive.
    path = tmp_path / "single.npz"
    with open(path, "wb") as file:
        np.save(file, numbered_images(3))
    with pytest.raises(DatasetError, match="holds a single .npy array, not an .npz archive"):
        load_dataset(str(path))


def test_pickled_object_array_is_refused(tmp_path):
    # Invalid: an object array would need unpickling, which could run code.
    path = tmp_path / "objects.npz"
    np.savez(path, **_valid_arrays(y_train=np.array([0, 1] * 5, dtype=object)))
    with pytest.raises(DatasetError, match="cannot read array 'y_train'.*allow_pickle"):
        load_dataset(str(path))


# ---------------------------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------------------------

def test_grayscale_image_folder(tmp_path):
    # "b_dark" sorts after "a_light": label 0 is light, label 1 dark.
    for i in range(5):
        write_image(tmp_path / "photos" / "b_dark" / f"{i}.png", np.full((10, 14), 20, np.uint8))
        write_image(tmp_path / "photos" / "a_light" / f"{i}.PNG", np.full((40, 30), 230, np.uint8))
    (tmp_path / "photos" / "a_light" / "notes.txt").write_text("not an image, ignored")
    (tmp_path / "photos" / ".cache").mkdir()  # hidden: not a class
    d = load_dataset(str(tmp_path / "photos"), seed=0)
    assert d.class_names == ("a_light", "b_dark") and d.num_classes == 2
    assert d.input_shape == (32, 32, 1)  # the default size
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 10
    assert len(d.x_test) == 2 and sorted(d.y_test.tolist()) == [0, 1]  # stratified 20%
    for x, y in ((d.x_train, d.y_train), (d.x_val, d.y_val), (d.x_test, d.y_test)):
        np.testing.assert_allclose(x.mean(axis=(1, 2, 3)), np.where(y == 0, 230, 20) / 255,
                                   rtol=1e-6)
    assert d.allows_horizontal_flip is True


def test_colour_image_folder_is_rgb_and_resized(tmp_path):
    red_bgr = np.zeros((12, 12, 3), np.uint8)
    red_bgr[..., 2] = 255
    for i in range(4):
        write_image(tmp_path / "red" / f"{i}.png", red_bgr)
        write_image(tmp_path / "red" / f"{i}.bmp", red_bgr)
        # One class is stored grayscale: it must be widened to 3 channels, not break stacking.
        write_image(tmp_path / "gray" / f"{i}.png", np.full((9, 9), 128, np.uint8))
        write_image(tmp_path / "gray" / f"{i}.jpg", np.full((9, 9), 128, np.uint8))
    d = load_dataset(str(tmp_path), image_size=(8, 6))
    assert d.input_shape == (8, 6, 3)
    images = np.concatenate([d.x_train, d.x_val, d.x_test])
    labels = np.concatenate([d.y_train, d.y_val, d.y_test])
    red = images[labels == d.class_names.index("red")]
    # OpenCV reads BGR; the dataset is RGB, so red is channel 0.
    np.testing.assert_allclose(red[..., 0], 1.0)
    np.testing.assert_allclose(red[..., 1:], 0.0)
    gray = images[labels == d.class_names.index("gray")]
    np.testing.assert_allclose(gray, 128 / 255, atol=2 / 255)  # JPEG may shift a level
    assert len(images) == 16


def test_image_folder_errors(tmp_path):
    # Invalid: an empty folder.
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"image folder '.*empty' is empty"):
        load_dataset(str(empty))

    # Invalid: a single class sub-folder (images loose beside it do not count).
    one = tmp_path / "one"
    write_image(one / "cats" / "0.png", np.zeros((4, 4), np.uint8))
    write_image(one / "loose.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetError, match=r"has 1 class sub-folder\(s\) \('cats'\).*at least 2"):
        load_dataset(str(one))

    # Invalid: a class folder without any image file.
    no_images = tmp_path / "no_images"
    write_image(no_images / "cats" / "0.png", np.zeros((4, 4), np.uint8))
    (no_images / "dogs").mkdir()
    (no_images / "dogs" / "readme.txt").write_text("dogs go here")
    with pytest.raises(DatasetError, match=r"class folder '.*dogs' holds no images"):
        load_dataset(str(no_images))

    # Invalid: a file named .png that is not an image.
    corrupt = tmp_path / "corrupt"
    for name in ("cats", "dogs"):
        write_image(corrupt / name / "0.png", np.zeros((4, 4), np.uint8))
    (corrupt / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DatasetError, match=r"cannot read image '.*dogs/broken\.png'"):
        load_dataset(str(corrupt))


@pytest.mark.parametrize("suffix, kept, reason", [
    (".jpg", 0.6, "a JPEG without its end-of-image marker"),
    (".png", 0.9, "a PNG without its IEND chunk"),
])
def test_a_truncated_image_is_refused_not_half_decoded(tmp_path, suffix, kept, reason):
    folder = tmp_path / "images"
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        for index in range(3):
            write_image(folder / name / f"{index}{suffix}", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    assert load_dataset(str(folder)).num_classes == 2           # complete files are read
    victim = folder / "dogs" / f"1{suffix}"
    data = victim.read_bytes()
    victim.write_bytes(data[:int(len(data) * kept)])
    assert cv2.imread(str(victim)) is not None or suffix == ".png"   # OpenCV alone takes the JPEG
    with pytest.raises(DatasetError, match=f"cannot read image '.*dogs/1{suffix}': truncated \\({reason}\\)"):
        load_dataset(str(folder))


def test_image_folder_too_small_to_split(tmp_path):
    # Invalid: one image per class; the test split takes one, leaving a single class to train on.
    for name in ("cats", "dogs"):
        write_image(tmp_path / name / "0.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetError, match=r"y_train holds a single class"):
        load_dataset(str(tmp_path))


# ---------------------------------------------------------------------------------------------
# Names, arguments, IDX files
# ---------------------------------------------------------------------------------------------

def test_unknown_name_lists_the_known_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # Invalid: neither a registered name nor an existing path.
    with pytest.raises(DatasetError, match="unknown dataset 'imagenet'") as caught:
        load_dataset("imagenet")
    message = str(caught.value)
    assert all(name in message for name in DATASET_NAMES)
    assert ".npz" in message and "image folder" in message


def test_existing_file_of_another_kind(tmp_path):
    # Invalid: a CSV file is neither an .npz nor a folder.
    path = tmp_path / "data.csv"
    path.write_text("1,2,3\n")
    with pytest.raises(DatasetError, match="neither an .npz file nor an image folder"):
        load_dataset(str(path))


@pytest.mark.parametrize("name", ["", "   ", None, 3])
def test_name_must_be_a_non_empty_string(name):
    # Invalid: "" would otherwise mean the working directory.
    with pytest.raises(DatasetError, match="dataset must be a name"):
        load_dataset(name)


@pytest.mark.parametrize("fraction", [0, 0.0, -0.1, 0.51, 1.0, "0.1", True, None])
def test_validation_fraction_must_be_in_0_to_half(fraction):
    # Invalid: outside (0, 0.5], or not a number.
    with pytest.raises(DatasetError, match=r"validation_fraction must be a number in \(0, 0.5\]"):
        load_dataset(DEFAULT_DATASET, validation_fraction=fraction)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "0", True, None])
def test_seed_must_be_a_non_negative_integer(seed):
    # Invalid: sklearn accepts only integers 0..2**32-1.
    with pytest.raises(DatasetError, match="seed must be an integer"):
        load_dataset(DEFAULT_DATASET, seed=seed)


@pytest.mark.parametrize("size", [(0, 32), (32,), (32, 32, 3), "32x32", (32.0, 32), (True, 32)])
def test_image_size_must_be_two_positive_integers(size):
    # Invalid: not (height, width) in whole pixels.
    with pytest.raises(DatasetError, match=r"image_size must be \(height, width\)"):
        load_dataset(DEFAULT_DATASET, image_size=size)


def test_dataset_error_is_a_configuration_error():
    # The CLI reports configuration errors before any training starts.
    assert issubclass(DatasetError, ConfigurationError)


def test_read_idx_rejects_bad_files(tmp_path):
    # Invalid: wrong magic number.
    bad_magic = tmp_path / "magic-idx1-ubyte"
    bad_magic.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(DatasetError, match="is not an IDX file"):
        datasets.read_idx(bad_magic)
    # Invalid: the header announces 10 labels, the file holds 3.
    short = tmp_path / "short-idx1-ubyte"
    short.write_bytes(bytes([0, 0, 8, 1]) + np.asarray([10], ">u4").tobytes() + b"\x00\x01\x02")
    with pytest.raises(DatasetError, match=r"holds 3 bytes of data, expected 10 for shape \(10,\)"):
        datasets.read_idx(short)
    # Invalid: named .gz but not gzip data.
    not_gzip = tmp_path / "plain-idx1-ubyte.gz"
    not_gzip.write_bytes(b"plain text")
    with pytest.raises(DatasetError, match="cannot read IDX file"):
        datasets.read_idx(not_gzip)


def test_read_idx_round_trip(tmp_path):
    array = np.arange(24).reshape(2, 3, 4) % 256
    write_idx_gz(tmp_path / "a-idx3-ubyte.gz", array)
    read = datasets.read_idx(tmp_path / "a-idx3-ubyte.gz")
    assert read.dtype == np.uint8 and read.flags.writeable
    np.testing.assert_array_equal(read, array)


def _subset_script():
    """scripts/make_fashion_mnist_small.py as a module (scripts/ is not a package)."""
    import importlib.util
    path = Path(__file__).resolve().parent.parent / "scripts" / "make_fashion_mnist_small.py"
    spec = importlib.util.spec_from_file_location("make_fashion_mnist_small", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("metadata", [False, True])
def test_subset_script_writes_a_stratified_subset_that_loads_like_fashion_mnist_with_metadata(tmp_path, metadata):
    source = tmp_path / "source"
    source.mkdir()
    rng = np.random.default_rng(0)
    write_idx_gz(source / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (60, 28, 28)))
    write_idx_gz(source / "train-labels-idx1-ubyte.gz", np.arange(60) % 10)
    write_idx_gz(source / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (30, 28, 28)))
    write_idx_gz(source / "t10k-labels-idx1-ubyte.gz", np.arange(30) % 10)
    output = tmp_path / "subset.npz"
    arguments = ["--source-dir", str(source), "--output", str(output),
                 "--train-per-class", "4", "--test-per-class", "2"] + (["--metadata"] if metadata else [])
    assert _subset_script().main(arguments) == 0
    d = load_dataset(str(output))
    np.testing.assert_array_equal(np.bincount(np.concatenate([d.y_train, d.y_val])), [4] * 10)
    np.testing.assert_array_equal(np.bincount(d.y_test), [2] * 10)
    # With the metadata the subset is mirrored by augmentation and named as Fashion-MNIST is.
    assert d.allows_horizontal_flip is metadata
    assert (d.class_names == datasets.FASHION_MNIST_CLASS_NAMES) is metadata
