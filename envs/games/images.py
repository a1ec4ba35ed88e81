"""Digit images for the games: scikit-learn's bundled 8 x 8 digits (no download) and real
MNIST from its idx files (by path). Both give ``(images [M, H, W] float32 in [0, 1],
labels [M] int32)``."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

IDX_IMAGES, IDX_LABELS = 2051, 2049  # the idx magic numbers of MNIST's image and label files


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8 x 8 digits (pixel values 0-16, scaled to [0, 1])."""
    from sklearn.datasets import load_digits as sklearn_digits

    data = sklearn_digits()
    return (data.images / 16.0).astype(np.float32), data.target.astype(np.int32)


def _read_idx(path: str | Path, magic: int) -> np.ndarray:
    path = Path(path)
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: idx magic number {found}, expected {magic}")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} ({np.prod(dims)} bytes), found {data.size}")
    return data.reshape(dims)


def load_idx(images: str | Path, labels: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-format idx files (``train-images-idx3-ubyte[.gz]`` and the labels beside it)."""
    x, y = _read_idx(images, IDX_IMAGES), _read_idx(labels, IDX_LABELS)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} images but {len(y)} labels in {images} and {labels}")
    return (x / 255.0).astype(np.float32), y.astype(np.int32)
