"""Build data/fashion_mnist_small.npz, the default dataset, from the Fashion-MNIST IDX files.

A seeded, stratified subset: `--train-per-class` images of each class drawn from the official
training split and `--test-per-class` from the official test split (600 and 100 by default:
6000 + 1000 images, 28x28 grayscale uint8). Keys: x_train, y_train, x_test, y_test.
With `--metadata` the file also holds class_names and allows_horizontal_flip, so that a subset of
another size (for a benchmark, say) loads as the registered dataset does: with Fashion-MNIST's class
names, and mirrored by data augmentation. The default dataset's file does not need them.
The source files are those of the Debian package dataset-fashion-mnist by default; the
published ones (https://github.com/zalandoresearch/fashion-mnist) have the same names.

    python3 scripts/make_fashion_mnist_small.py [--source-dir DIR] [--output FILE] [--seed N]
        [--train-per-class N] [--test-per-class N] [--metadata]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR))  # run as a script from anywhere: datasets.py is at the top

from sdt.data.datasets import (DEBIAN_FASHION_MNIST_DIR, FASHION_MNIST_CLASS_NAMES,  # noqa: E402
                      FASHION_MNIST_FILES, FASHION_MNIST_SMALL_FILE, read_fashion_mnist_idx)


def stratified_subset(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `per_class` random samples of every class, in random order."""
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < per_class:
            raise SystemExit(f"class {label} has only {len(members)} images, {per_class} asked")
        chosen.append(rng.choice(members, size=per_class, replace=False))
    # Shuffled so that any prefix of the arrays still holds every class.
    return rng.permutation(np.concatenate(chosen))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", type=Path, default=DEBIAN_FASHION_MNIST_DIR,
                        help="folder with the four *-ubyte.gz files (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=FASHION_MNIST_SMALL_FILE,
                        help="npz file to write (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--train-per-class", type=int, default=600)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--metadata", action="store_true",
                        help="also store class_names and allows_horizontal_flip (True)")
    args = parser.parse_args(argv)

    x_train, x_test, y_train, y_test, _ = read_fashion_mnist_idx(args.source_dir)
    rng = np.random.default_rng(args.seed)
    train = stratified_subset(y_train, args.train_per_class, rng)
    test = stratified_subset(y_test, args.test_per_class, rng)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    metadata = ({"class_names": np.array(FASHION_MNIST_CLASS_NAMES),
                 "allows_horizontal_flip": np.bool_(True)} if args.metadata else {})
    np.savez_compressed(args.output,
                        x_train=x_train[train], y_train=y_train[train].astype(np.uint8),
                        x_test=x_test[test], y_test=y_test[test].astype(np.uint8), **metadata)

    for file in FASHION_MNIST_FILES.values():
        digest = hashlib.md5((args.source_dir / file).read_bytes()).hexdigest()
        print(f"source {file}: md5 {digest}")
    print(f"wrote {args.output}: {len(train)} train + {len(test)} test images, "
          f"{args.output.stat().st_size} bytes, md5 "
          f"{hashlib.md5(args.output.read_bytes()).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
