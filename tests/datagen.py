"""Small datasets the tests write themselves: CSV blobs, NPZ, and MNIST-format IDX files."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
from pathlib import Path

import numpy as np


def blobs(n: int = 600, features: int = 5, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters, one per class: learnable well above chance."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(classes, features))
    y = rng.integers(0, classes, size=n)
    x = centres[y] + rng.normal(0, 1, size=(n, features))
    return x.astype(np.float32), y.astype(np.int64)


def write_csv(path: Path, x: np.ndarray, y: np.ndarray, label: str = "label") -> Path:
    cols = [f"f{i}" for i in range(x.shape[1])]
    lines = [",".join(cols + [label])]
    lines += [",".join(f"{v:.5f}" for v in row) + f",{int(t)}" for row, t in zip(x, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def idx_bytes(array: np.ndarray) -> bytes:
    return (
        bytes([0, 0, 0x08, array.ndim])
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.astype(np.uint8).tobytes()
    )


def mnist_like(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits scaled up to 28x28 bytes, split into MNIST's train and t10k files."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.kron(d.images, np.ones((3, 3)))  # 24x24
    images = np.pad(images, ((0, 0), (2, 2), (2, 2)))  # 28x28, MNIST's size
    images = (images / 16.0 * 255).astype(np.uint8)
    cut = 1500
    return images[:cut], d.target[:cut], images[cut:], d.target[cut:]


def write_idx_zip(path: Path, gz: bool = True) -> Path:
    tr_x, tr_y, te_x, te_y = mnist_like()
    files = {
        "train-images-idx3-ubyte": idx_bytes(tr_x),
        "train-labels-idx1-ubyte": idx_bytes(tr_y),
        "t10k-images-idx3-ubyte": idx_bytes(te_x),
        "t10k-labels-idx1-ubyte": idx_bytes(te_y),
    }
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"mnist/{name}" + (".gz" if gz else ""), gzip.compress(data) if gz else data)
    return path


def write_idx_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tr_x, tr_y, te_x, te_y = mnist_like()
    for name, arr in {
        "train-images-idx3-ubyte.gz": tr_x,
        "train-labels-idx1-ubyte.gz": tr_y,
        "t10k-images-idx3-ubyte.gz": te_x,
        "t10k-labels-idx1-ubyte.gz": te_y,
    }.items():
        (folder / name).write_bytes(gzip.compress(idx_bytes(arr)))
    return folder


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()
