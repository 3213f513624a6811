"""Datasets for Symbolic DNN-Tuner: load images and labels, check them, split them.

`load_dataset(name_or_path, seed)` accepts a registered name (`DATASET_NAMES`), the path of an
.npz file, the path of an image folder, or a user's function given as `module:function`, and
returns a `Dataset`: float32 NHWC images in [0, 1], int64 class indices, and three disjoint
sets. The test set is fixed by the data (the publishers' split, or a fixed-seed split for
data without one); the validation set is carved out of the training set with the run's seed,
stratified by class, so the tuner can early-stop, diagnose and score on validation data and
touch the test set only for the final report.

Each named source keeps the interface of the SoftwareX paper (Listing 1): a function with no
arguments returning the raw tuple `(x_train, x_test, y_train, y_test, num_classes)`; all the
normalising happens once, in `load_dataset`.

Rules applied to every source (callers may rely on them):

* Images become NHWC float32. HxW images get a channel axis. Integer pixels must be 0..255 and
  are divided by 255. Float pixels are divided by 255 if the largest value of train and test
  together is above 1.0, and kept as they are otherwise; the decision is taken once for the
  whole dataset so that train and test are scaled alike. Pixels below 0, above 255, NaN or
  infinite are rejected (standardised images are not accepted: pass raw pixels).
  Caveat of the rule: a float dataset in 0..255 whose brightest pixel is at most 1 (an almost
  black dataset) is taken as already scaled.
* Labels become 1-D int64 class indices. One-hot rows are turned into indices; float labels
  are accepted when they are whole numbers. Labels are NOT remapped: they must be 0..K-1 and
  `num_classes` is the largest label + 1 over train and test (or the one-hot width if larger).
  A class index missing from the training set is allowed (logged as a warning): the model
  still gets an output for it.
* `image_size=(height, width)` resizes every source (INTER_AREA when shrinking, INTER_LINEAR
  when enlarging). Image folders hold photos of any size, so they are always resized, to
  32x32 unless told otherwise.
* Stratification needs at least 2 samples of every class, and at least one sample per class
  on each side of the split. When the data do not allow it (tiny user datasets), the split
  falls back to an unstratified seeded split and logs a warning instead of failing.

Where the job ends: no augmentation, no batching, no model; this module never imports Keras
except to fetch the keras.datasets sources, and then only inside their loader functions.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
import types
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sdt.core.errors import DatasetError

logger = logging.getLogger(__name__)

# (x_train, x_test, y_train, y_test, num_classes): the paper's dataset interface (Listing 1).
RawDataset = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]

# Found from this file's location, never from the working directory.
DATA_DIR = Path(__file__).resolve().parent
FASHION_MNIST_SMALL_FILE = DATA_DIR / "fashion_mnist_small.npz"
# Installed by the Debian package dataset-fashion-mnist; used when present to avoid a download.
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}

DEFAULT_DATASET = "fashion_mnist_small"
# Photos in a folder come in any size; 32x32 is CIFAR's size, small enough to train on a CPU
# and large enough for the paper's network plus one added conv block.
DEFAULT_IMAGE_FOLDER_SIZE = (32, 32)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
NPZ_REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
NPZ_OPTIONAL_KEYS = ("class_names", "allows_horizontal_flip")
# Sources without an official test split (digits, image folders) get one of this fraction.
# Its seed is fixed, not the run's: the test set is part of the data, identical across runs
# with different seeds, so their final scores are comparable.
TEST_SPLIT_FRACTION = 0.2
TEST_SPLIT_SEED = 0
MAX_VALIDATION_FRACTION = 0.5

FASHION_MNIST_CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DIGIT_CLASS_NAMES = tuple(str(digit) for digit in range(10))
CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
                       "dog", "frog", "horse", "ship", "truck")
# The 100 "fine" labels of CIFAR-100, in label order (alphabetical).
CIFAR100_CLASS_NAMES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle",
    "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)


# ---------------------------------------------------------------------------------------------
# The record handed to the rest of the tuner
# ---------------------------------------------------------------------------------------------

# eq=False: the generated __eq__/__hash__ would compare numpy arrays, which raises; two
# Dataset objects are equal only if they are the same object.
@dataclass(frozen=True, eq=False)
class Dataset:
    """Images and labels split into three disjoint sets, ready for training.

    Images are float32 NHWC in [0, 1]; labels are int64 class indices 0..num_classes-1.
    """

    name: str                      # the name or path it was loaded from
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    allows_horizontal_flip: bool   # a mirrored image is still the same class (not for digits)
    class_names: tuple[str, ...] | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one image, as Python ints."""
        height, width, channels = self.x_train.shape[1:]
        return int(height), int(width), int(channels)

    def summary(self) -> str:
        """One line for logs: name, set sizes, image shape and number of classes."""
        height, width, channels = self.input_shape
        return (f"{self.name}: {len(self.x_train)} train / {len(self.x_val)} validation / "
                f"{len(self.x_test)} test images of {height}x{width}x{channels}, "
                f"{self.num_classes} classes")

    def to_dict(self) -> dict[str, Any]:
        """What a run record keeps about the data (JSON-ready); no pixels.

        There is no from_dict: the arrays are rebuilt with load_dataset(name, seed).
        """
        return {
            "name": self.name,
            "train_size": len(self.x_train),
            "validation_size": len(self.x_val),
            "test_size": len(self.x_test),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "allows_horizontal_flip": self.allows_horizontal_flip,
            "class_names": list(self.class_names) if self.class_names is not None else None,
        }


# ---------------------------------------------------------------------------------------------
# Named sources: each returns the raw tuple of the paper (Listing 1)
# ---------------------------------------------------------------------------------------------

def fashion_mnist_small_dataset() -> RawDataset:
    """The default: 6000 train + 1000 test Fashion-MNIST images shipped in data/ (see README)."""
    if not FASHION_MNIST_SMALL_FILE.is_file():
        raise DatasetError(
            f"the default dataset file '{FASHION_MNIST_SMALL_FILE}' is missing; rebuild it with "
            f"scripts/make_fashion_mnist_small.py or pass another dataset")
    arrays = _read_npz(FASHION_MNIST_SMALL_FILE)
    return arrays["x_train"], arrays["x_test"], arrays["y_train"], arrays["y_test"], 10


def fashion_mnist_dataset() -> RawDataset:
    """Full Fashion-MNIST (60000 + 10000): the Debian package's files if installed, else Keras."""
    if all((DEBIAN_FASHION_MNIST_DIR / file).is_file() for file in FASHION_MNIST_FILES.values()):
        return read_fashion_mnist_idx(DEBIAN_FASHION_MNIST_DIR)
    return _load_keras_dataset("fashion_mnist", 10)


def mnist_dataset() -> RawDataset:
    """MNIST handwritten digits (60000 + 10000, 28x28 grayscale) through keras.datasets."""
    return _load_keras_dataset("mnist", 10)


def cifar10_dataset() -> RawDataset:
    """CIFAR-10 (50000 + 10000, 32x32 colour) through keras.datasets."""
    return _load_keras_dataset("cifar10", 10)


def cifar100_dataset() -> RawDataset:
    """CIFAR-100 with its 100 fine labels (50000 + 10000, 32x32 colour) through keras.datasets."""
    return _load_keras_dataset("cifar100", 100)


def digits_dataset() -> RawDataset:
    """scikit-learn's 1797 handwritten digits, 8x8, with a fixed stratified 20% test split.

    The pixels are counts 0..16 (each sums a 4x4 block of a 32x32 bitmap), so they are scaled
    by 16 here, not by 255; load_dataset then keeps them (maximum 1.0).
    """
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    train, test = _split_indices(labels, TEST_SPLIT_FRACTION, TEST_SPLIT_SEED,
                                 "dataset 'digits'", "test")
    return images[train], images[test], labels[train], labels[test], 10


@dataclass(frozen=True)
class _Source:
    load: Callable[[], RawDataset]
    allows_horizontal_flip: bool   # False for digits: a mirrored 2 or 7 is not a digit
    class_names: tuple[str, ...] | None


_SOURCES = types.MappingProxyType({
    "fashion_mnist_small": _Source(fashion_mnist_small_dataset, True, FASHION_MNIST_CLASS_NAMES),
    "fashion_mnist": _Source(fashion_mnist_dataset, True, FASHION_MNIST_CLASS_NAMES),
    "mnist": _Source(mnist_dataset, False, DIGIT_CLASS_NAMES),
    "digits": _Source(digits_dataset, False, DIGIT_CLASS_NAMES),
    "cifar10": _Source(cifar10_dataset, True, CIFAR10_CLASS_NAMES),
    "cifar100": _Source(cifar100_dataset, True, CIFAR100_CLASS_NAMES),
})
DATASET_NAMES: tuple[str, ...] = tuple(_SOURCES)


def _keras_cache_dir() -> Path:
    # Where keras.utils.get_file keeps downloads (KERAS_HOME overrides ~/.keras).
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"


def _load_keras_dataset(module_name: str, num_classes: int) -> RawDataset:
    """Fetch a keras.datasets source (downloaded once, then read from Keras's cache)."""
    try:
        import keras  # here only: importing Keras loads TensorFlow, seconds the others never pay
    except ImportError as err:
        raise DatasetError(
            f"dataset '{module_name}' is loaded through keras.datasets, but Keras cannot be "
            f"imported ({err}); pass the path of a local .npz file instead") from err
    try:
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, module_name).load_data()
    except Exception as err:  # keras.utils.get_file raises a bare Exception on network errors
        raise DatasetError(
            f"could not load dataset '{module_name}' through keras.datasets "
            f"({type(err).__name__}: {err}); Keras downloads it once into {_keras_cache_dir()}/ "
            f"and there is no cached copy there and no internet? Pass the path of a local .npz "
            f"file (keys {', '.join(NPZ_REQUIRED_KEYS)}) instead") from err
    return x_train, x_test, y_train, y_test, num_classes


# ---------------------------------------------------------------------------------------------
# Files: IDX (Fashion-MNIST), .npz, image folders
# ---------------------------------------------------------------------------------------------

# IDX type codes (third byte of the magic number) -> big-endian numpy dtypes.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (the MNIST / Fashion-MNIST format), gzip-compressed if named *.gz."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"cannot read IDX file '{path}': {err}") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DatasetError(f"'{path}' is not an IDX file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DatasetError(f"IDX file '{path}' is truncated inside its header")
    shape = tuple(int(dim) for dim in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - header_size != expected:
        raise DatasetError(f"IDX file '{path}' holds {len(data) - header_size} bytes of data, "
                           f"expected {expected} for shape {shape}")
    array = np.frombuffer(data, dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy


def read_fashion_mnist_idx(folder: str | os.PathLike[str]) -> RawDataset:
    """Read the four Fashion-MNIST IDX files of `folder` (names as published) as the raw tuple."""
    folder = Path(folder)
    arrays = {key: read_idx(folder / file) for key, file in FASHION_MNIST_FILES.items()}
    return arrays["x_train"], arrays["x_test"], arrays["y_train"], arrays["y_test"], 10


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Read the required (and any optional) arrays of an .npz dataset file."""
    if not path.is_file():
        raise DatasetError(f"dataset file '{path}' does not exist")
    try:
        # allow_pickle=False: an .npz is data, and a pickle inside one could run code.
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DatasetError(f"dataset file '{path}' is not a valid .npz archive ({err})") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DatasetError(f"dataset file '{path}' holds a single .npy array, not an .npz "
                           f"archive with keys {', '.join(NPZ_REQUIRED_KEYS)} (np.savez)")
    with archive:
        missing = [key for key in NPZ_REQUIRED_KEYS if key not in archive.files]
        if missing:
            keys = ", ".join(f"'{key}'" for key in missing)
            raise DatasetError(f"dataset file '{path}' has no key{'s' if len(missing) > 1 else ''} "
                               f"{keys} (found: {', '.join(archive.files) or 'nothing'})")
        arrays: dict[str, np.ndarray] = {}
        for key in NPZ_REQUIRED_KEYS + NPZ_OPTIONAL_KEYS:
            if key not in archive.files:
                continue
            try:
                arrays[key] = archive[key]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
                # Corrupt member data, or an object array (refused: pickles can run code).
                raise DatasetError(f"dataset file '{path}': cannot read array '{key}' "
                                   f"({err})") from err
    return arrays


def _npz_extras(arrays: dict[str, np.ndarray], path: Path) -> tuple[tuple[str, ...] | None, bool]:
    """The optional keys of a user .npz: class names, and whether mirroring keeps the class."""
    class_names = None
    if "class_names" in arrays:
        names = arrays["class_names"]
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DatasetError(f"dataset file '{path}': 'class_names' must be a 1-D array of "
                               f"strings, got dtype {names.dtype} and shape {names.shape}")
        class_names = tuple(str(name) for name in names)
    # Unknown content: mirroring is off unless the file says otherwise, because a wrong flip
    # corrupts labels (digits, text) while a missing one only forgoes some augmentation.
    allows_flip = False
    if "allows_horizontal_flip" in arrays:
        flag = arrays["allows_horizontal_flip"]
        if flag.shape != () or flag.dtype != np.bool_:
            raise DatasetError(f"dataset file '{path}': 'allows_horizontal_flip' must be a single "
                               f"boolean, got dtype {flag.dtype} and shape {flag.shape}")
        allows_flip = bool(flag)
    return class_names, allows_flip


def _truncation(data: bytes) -> str | None:
    """Why an image file's bytes end before the image does (None: complete, or not a format
    checked here). OpenCV decodes a truncated JPEG with a warning and grey where the data
    stopped; a JPEG must have its end-of-image marker after its last start-of-scan, a PNG its
    IEND chunk."""
    if data.startswith(b"\xff\xd8"):
        scan = data.rfind(b"\xff\xda")
        if scan < 0 or data.rfind(b"\xff\xd9") < scan:
            return "a JPEG without its end-of-image marker"
    elif data.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND" not in data[-16:]:
        return "a PNG without its IEND chunk"
    return None


def image_folder_dataset(folder: str | os.PathLike[str],
                         image_size: tuple[int, int] = DEFAULT_IMAGE_FOLDER_SIZE,
                         ) -> tuple[RawDataset, tuple[str, ...]]:
    """Read a folder with one sub-folder of images per class; return the raw tuple and class names.

    Classes are the sub-folder names in sorted order (label i = i-th name). Only files directly
    inside a class folder with a suffix in IMAGE_SUFFIXES (any case) are read; other files and
    hidden entries are ignored. If every image is grayscale the set keeps 1 channel, otherwise
    all become RGB. Every image is resized to `image_size` (height, width). The test set is a
    stratified 20% split with a fixed seed.
    """
    import cv2  # here only: the other sources never need OpenCV

    folder = Path(folder)
    where = f"image folder '{folder}'"
    if not folder.is_dir():
        raise DatasetError(f"{where} does not exist or is not a folder")
    entries = [entry for entry in folder.iterdir() if not entry.name.startswith(".")]
    if not entries:
        raise DatasetError(f"{where} is empty: expected one sub-folder of images per class")
    class_dirs = sorted((entry for entry in entries if entry.is_dir()), key=lambda d: d.name)
    if len(class_dirs) < 2:
        found = ", ".join(f"'{d.name}'" for d in class_dirs) or "none"
        raise DatasetError(f"{where} has {len(class_dirs)} class sub-folder(s) ({found}); "
                           f"a classifier needs one sub-folder of images per class, at least 2")
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(file for file in class_dir.iterdir()
                       if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DatasetError(f"class folder '{class_dir}' holds no images "
                               f"({' '.join(IMAGE_SUFFIXES)})")
        for file in files:
            # ANYCOLOR keeps grayscale files 2-D and gives colour ones as 3-channel BGR
            # (alpha dropped); without ANYDEPTH 16-bit files come back as 8-bit.
            try:
                data = file.read_bytes()
            except OSError as err:
                raise DatasetError(f"cannot read image '{file}': {err.strerror or err}") from None
            truncated = _truncation(data)
            if truncated:
                raise DatasetError(f"cannot read image '{file}': truncated ({truncated}), so only part of "
                                   f"it would be decoded; replace or remove the file")
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYCOLOR)
            if image is None:
                raise DatasetError(f"cannot read image '{file}': corrupt, or not a "
                                   f"PNG/JPEG/BMP despite its name")
            images.append(_resize_image(image, image_size))
            labels.append(label)
    if all(image.ndim == 2 for image in images):
        x = np.stack(images)[..., np.newaxis]
    else:
        x = np.stack([cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if image.ndim == 2
                                   else cv2.COLOR_BGR2RGB) for image in images])
    y = np.asarray(labels, dtype=np.int64)
    train, test = _split_indices(y, TEST_SPLIT_FRACTION, TEST_SPLIT_SEED, where, "test")
    class_names = tuple(class_dir.name for class_dir in class_dirs)
    return (x[train], x[test], y[train], y[test], len(class_dirs)), class_names


def _resize_image(image: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    import cv2

    height, width = image_size
    if image.shape[:2] == (height, width):
        return image
    # INTER_AREA averages the pixels it merges (no aliasing when shrinking) but repeats
    # pixels like nearest-neighbour when enlarging, where INTER_LINEAR is smoother.
    shrinking = height <= image.shape[0] and width <= image.shape[1]
    resized = cv2.resize(image, (width, height),  # OpenCV takes (width, height)
                         interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    # OpenCV drops a trailing channel axis of size 1; put it back for NHWC arrays.
    return resized.reshape(height, width, *image.shape[2:])


# ---------------------------------------------------------------------------------------------
# Normalising and splitting
# ---------------------------------------------------------------------------------------------

def load_dataset(name_or_path: str | os.PathLike[str], seed: int = 0,
                 validation_fraction: float = 0.1,
                 image_size: tuple[int, int] | None = None) -> Dataset:
    """Load a registered dataset, an .npz file or an image folder, and split it three ways.

    `name_or_path`: one of DATASET_NAMES (registered names win over a same-named path: write
    './mnist' for a folder called mnist), the path of an .npz file with keys x_train, y_train,
    x_test, y_test (optional: class_names, allows_horizontal_flip; mirroring is off by
    default for .npz data), a folder with one sub-folder of images per class, or a function
    `module:function` / `path/to/file.py:function` returning the paper's tuple (x_train, x_test,
    y_train, y_test, num_classes); optional attributes on the function: class_names,
    allows_horizontal_flip (default False).
    `seed` drives the validation split; `validation_fraction` in (0, 0.5] is the share of the
    training set held out for validation; `image_size` (height, width) resizes the images
    (image folders default to 32x32). Raises DatasetError naming the file and the fault.
    """
    _check_seed(seed)
    _check_validation_fraction(validation_fraction)
    size = _check_image_size(image_size)
    if isinstance(name_or_path, os.PathLike):
        name_or_path = os.fspath(name_or_path)
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise DatasetError(f"dataset must be a name ({', '.join(DATASET_NAMES)}) or the path of "
                           f"an .npz file or image folder, got {name_or_path!r}")

    if name_or_path in _SOURCES:
        source = _SOURCES[name_or_path]
        where = f"dataset '{name_or_path}'"
        x_train, x_test, y_train, y_test, num_classes = source.load()
        class_names, allows_flip = source.class_names, source.allows_horizontal_flip
    else:
        path = Path(name_or_path).expanduser()
        if path.is_dir():
            where = f"image folder '{path}'"
            raw, class_names = image_folder_dataset(path, size or DEFAULT_IMAGE_FOLDER_SIZE)
            x_train, x_test, y_train, y_test, num_classes = raw
            allows_flip = True  # photos of objects: a mirrored photo shows the same object
            size = None  # already resized while reading
        elif path.suffix.lower() == ".npz":
            where = f"dataset file '{path}'"
            arrays = _read_npz(path)
            x_train, x_test = arrays["x_train"], arrays["x_test"]
            y_train, y_test = arrays["y_train"], arrays["y_test"]
            num_classes = None  # inferred from the labels
            class_names, allows_flip = _npz_extras(arrays, path)
        elif path.exists():
            raise DatasetError(f"'{path}' is neither an .npz file nor an image folder")
        elif _is_function_spec(name_or_path):
            where = f"dataset function '{name_or_path}'"
            x_train, x_test, y_train, y_test, num_classes = _call_dataset_function(name_or_path)
            source_function = _dataset_function(name_or_path)
            class_names = getattr(source_function, "class_names", None)
            class_names = None if class_names is None else tuple(str(c) for c in class_names)
            allows_flip = bool(getattr(source_function, "allows_horizontal_flip", False))
        else:
            raise DatasetError(
                f"unknown dataset '{name_or_path}': not a registered name "
                f"({', '.join(DATASET_NAMES)}) and no such file or folder; a path to an .npz "
                f"file (keys {', '.join(NPZ_REQUIRED_KEYS)}), to an image folder (one "
                f"sub-folder per class) or a function module:function is accepted too")

    x_train, x_test = (_check_images(x, part, where) for x, part in
                       ((x_train, "x_train"), (x_test, "x_test")))
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(f"{where}: train images are {_shape_text(x_train)} but test images "
                           f"are {_shape_text(x_test)}; both must have the same size and channels")
    divisor = _pixel_divisor(x_train, x_test, where)
    y_train, train_width = _check_labels(y_train, "y_train", where)
    y_test, test_width = _check_labels(y_test, "y_test", where)
    for x, y, part in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(x) != len(y):
            raise DatasetError(f"{where}: x_{part} has {len(x)} images but y_{part} has "
                               f"{len(y)} labels")
    num_classes = _count_classes(y_train, y_test, num_classes, (train_width, test_width), where)
    if class_names is not None and len(class_names) != num_classes:
        raise DatasetError(f"{where}: {len(class_names)} class names for {num_classes} classes")

    train, val = _split_indices(y_train, validation_fraction, seed, where, "validation")
    # Index the raw (often uint8) arrays first and convert each part afterwards: the float32
    # copy of the whole training set would otherwise sit in memory next to its two parts.
    def prepare(x: np.ndarray) -> np.ndarray:
        x = np.true_divide(x, np.float32(divisor), dtype=np.float32)
        return _resize_images(x, size) if size is not None else x

    dataset = Dataset(
        name=name_or_path,
        x_train=prepare(x_train[train]), y_train=y_train[train],
        x_val=prepare(x_train[val]), y_val=y_train[val],
        x_test=prepare(x_test), y_test=y_test,
        num_classes=num_classes,
        allows_horizontal_flip=allows_flip,
        class_names=class_names,
    )
    logger.info("loaded %s", dataset.summary())
    return dataset


def _is_function_spec(text: str) -> bool:
    from sdt.core.user_code import is_spec
    return is_spec(text)


def _dataset_function(spec: str) -> Callable[[], RawDataset]:
    from sdt.core.user_code import load_callable
    return load_callable(spec, option="--dataset", error=DatasetError)


def _call_dataset_function(spec: str) -> RawDataset:
    """The paper's tuple from a user's `module:function` (Listing 1); its faults as DatasetError."""
    function = _dataset_function(spec)
    try:
        raw = function()
    except Exception as err:  # noqa: BLE001 - the user's code: report it in one line
        raise DatasetError(f"dataset function '{spec}' raised {type(err).__name__}: "
                           f"{' '.join(str(err).split())}") from err
    if not isinstance(raw, (tuple, list)) or len(raw) != 5:
        raise DatasetError(f"dataset function '{spec}' must return (x_train, x_test, y_train, y_test, "
                           f"num_classes), got {type(raw).__name__}"
                           + (f" of length {len(raw)}" if isinstance(raw, (tuple, list)) else ""))
    num_classes = raw[4]
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise DatasetError(f"dataset function '{spec}': num_classes (the 5th value) must be an "
                           f"integer >= 2, got {num_classes!r}")
    return raw[0], raw[1], raw[2], raw[3], int(num_classes)


def _check_seed(seed: Any) -> None:
    # sklearn's random_state accepts 0..2**32-1; bool is an int subclass but surely a mistake.
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise DatasetError(f"seed must be an integer in 0..2**32-1, got {seed!r}")


def _check_validation_fraction(fraction: Any) -> None:
    if (isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating))
            or not 0.0 < fraction <= MAX_VALIDATION_FRACTION):
        raise DatasetError(f"validation_fraction must be a number in (0, "
                           f"{MAX_VALIDATION_FRACTION}], got {fraction!r}")


def _check_image_size(image_size: Any) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if (isinstance(image_size, (tuple, list)) and len(image_size) == 2
            and all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1
                    for d in image_size)):
        return int(image_size[0]), int(image_size[1])
    raise DatasetError(f"image_size must be (height, width), two positive integers in pixels, "
                       f"got {image_size!r}")


def _shape_text(x: np.ndarray) -> str:
    return "x".join(str(d) for d in x.shape[1:])


def _check_images(x: Any, part: str, where: str) -> np.ndarray:
    """Check one image array and return it NHWC (dtype untouched)."""
    x = np.asarray(x)
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer)
                                   or np.issubdtype(x.dtype, np.floating)):
        raise DatasetError(f"{where}: {part} must hold numeric pixels, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[..., np.newaxis]  # HxW grayscale -> HxWx1
    elif x.ndim != 4:
        raise DatasetError(f"{where}: {part} must be images shaped (N, H, W) or (N, H, W, C), "
                           f"got shape {x.shape}")
    if len(x) == 0:
        raise DatasetError(f"{where}: {part} holds no images")
    return x


def _pixel_divisor(x_train: np.ndarray, x_test: np.ndarray, where: str) -> float:
    """255.0 or 1.0: what to divide the pixels by so that they end up in [0, 1]."""
    # np.minimum/np.maximum, unlike min/max, propagate a NaN found in either array.
    low = np.minimum(x_train.min(), x_test.min())
    high = np.maximum(x_train.max(), x_test.max())
    if np.issubdtype(x_train.dtype, np.floating) or np.issubdtype(x_test.dtype, np.floating):
        if not (np.isfinite(low) and np.isfinite(high)):
            raise DatasetError(f"{where}: the images contain NaN or infinite pixel values")
    if low < 0:
        raise DatasetError(f"{where}: pixel values must be 0..255 (or 0..1 floats), found "
                           f"{low}; pass raw pixels, not standardised ones")
    if high > 255:
        raise DatasetError(f"{where}: pixel values must be 0..255 (or 0..1 floats), found "
                           f"{high}; 16-bit images must be converted to 8 bits")
    integer_pixels = (np.issubdtype(x_train.dtype, np.integer)
                      and np.issubdtype(x_test.dtype, np.integer))
    return 255.0 if integer_pixels or high > 1.0 else 1.0


def _check_labels(y: Any, part: str, where: str) -> tuple[np.ndarray, int | None]:
    """Return labels as 1-D int64 class indices, and the one-hot width if they were one-hot."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # keras' CIFAR labels come as a column
    one_hot_width = None
    if y.ndim == 2:
        if not np.issubdtype(y.dtype, np.number) and y.dtype != np.bool_:
            raise DatasetError(f"{where}: 2-D {part} must be one-hot numbers, got dtype {y.dtype}")
        if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
            raise DatasetError(f"{where}: 2-D {part} (shape {y.shape}) must be one-hot: a single "
                               f"1 per row, zeros elsewhere")
        one_hot_width = y.shape[1]
        y = y.argmax(axis=1)
    elif y.ndim != 1:
        raise DatasetError(f"{where}: {part} must be class indices (N,) or one-hot rows (N, K), "
                           f"got shape {y.shape}")
    if y.dtype == np.bool_:
        y = y.astype(np.int64)
    if np.issubdtype(y.dtype, np.floating):
        whole = np.isfinite(y) & (y == np.round(y))
        if not whole.all():
            raise DatasetError(f"{where}: {part} must be integer class indices, found "
                               f"{y[~whole][0].item()!r}")
    elif not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{where}: {part} must be integer class indices 0..K-1, got dtype "
                           f"{y.dtype} (map names to indices, or use an image folder)")
    if len(y) and y.min() < 0:
        raise DatasetError(f"{where}: {part} holds the negative label {y.min()}; labels must be "
                           f"class indices 0..K-1")
    return y.astype(np.int64), one_hot_width


# The most classes a dataset may have: a label beyond it is a data error (an id, not a class
# index), refused before a network with that many outputs, or a set of them, is built.
MAX_CLASSES = 100_000


def _count_classes(y_train: np.ndarray, y_test: np.ndarray, declared: int | None,
                   one_hot_widths: tuple[int | None, ...], where: str) -> int:
    """num_classes = largest label + 1 (or the one-hot width / declared count if larger)."""
    present = np.unique(y_train)
    if len(present) < 2:
        raise DatasetError(f"{where}: y_train holds a single class ({present[0]}); a classifier "
                           f"needs at least 2")
    largest = int(max(y_train.max(), y_test.max()))
    if largest >= MAX_CLASSES:
        raise DatasetError(f"{where}: label {largest} would make {largest + 1} classes, more than the "
                           f"{MAX_CLASSES} a classifier here may have ({len(present)} different labels in "
                           f"y_train): labels must be class indices 0..K-1")
    inferred = max([largest + 1] + [width for width in one_hot_widths if width is not None])
    if declared is not None:
        if largest >= declared:
            raise DatasetError(f"{where}: label {largest} is out of range for {declared} classes")
        inferred = declared
    if len(present) < inferred:
        missing = np.setdiff1d(np.arange(inferred), present).tolist()
        logger.warning("%s: %d of %d classes have no training image (e.g. %s); labels are not "
                       "remapped, so num_classes is %d", where, len(missing), inferred,
                       missing[:5], inferred)
    return inferred


def _split_indices(y: np.ndarray, fraction: float, seed: int, where: str,
                   held_out: str) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of range(len(y)) into (kept, held out), stratified by class when possible."""
    from sklearn.model_selection import train_test_split

    if len(y) < 2:
        raise DatasetError(f"{where}: {len(y)} training image(s) cannot be split into a "
                           f"{held_out} set; at least 2 are needed")
    indices = np.arange(len(y))
    try:
        kept, held = train_test_split(indices, test_size=fraction, random_state=seed, stratify=y)
    except ValueError as err:
        # sklearn refuses to stratify when a class has a single sample or when a side of the
        # split is smaller than the number of classes: small user data, not an error.
        logger.warning("%s: %s split is not stratified (%s)", where, held_out, err)
        kept, held = train_test_split(indices, test_size=fraction, random_state=seed)
    return kept, held


def _resize_images(x: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    if x.shape[1:3] == tuple(image_size):
        return x
    return np.stack([_resize_image(image, image_size) for image in x])
