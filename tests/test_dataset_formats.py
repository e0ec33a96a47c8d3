"""Dataset files are checked at upload: each malformed case gets its reason."""

from __future__ import annotations

import numpy as np
import pytest

from storage_app.formats import DatasetFormatError, inspect_file, load_file
from tests.datagen import blobs, npz_bytes, write_csv, write_idx_zip


def test_csv_shape_and_classes(tmp_path):
    x, y = blobs(50, 4, 3)
    path = write_csv(tmp_path / "d.csv", x, y, label="target")
    info = inspect_file(path, "csv", "target")
    assert (info.num_samples, info.input_shape, info.num_classes) == (50, (4,), int(y.max()) + 1)
    lx, ly = load_file(path, "csv", "target")
    assert lx.shape == (50, 4) and np.allclose(lx, x, atol=1e-4) and (ly == y).all()


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("a,b,label\n", "no rows"),
        ("a,b,label\n1,2,0\n3,4\n", "line 3: 2 fields"),
        ("a,b,label\n1,x,0\n3,4,1\n", "'b' value 'x' is not a number"),
        ("a,b,label\n1,2,0.5\n3,4,1\n", "label '0.5' is not an integer"),
        ("a,b,label\n1,2,0\n3,4,cat\n", "line 3: label 'cat' is not an integer, but the labels before it are"),
        ("a,b,label\n1,2,-1\n3,4,1\n", "from 0 upwards"),
        ("a,b,klass\n1,2,0\n", "no column named 'label'"),
        ("a,b,label\n1,2,0\n3,4,0\n", "at least two classes"),
        ('a,b,label\n"1,2,0\n', "fields"),
    ],
)
def test_bad_csv_is_refused_with_its_reason(tmp_path, text, reason):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DatasetFormatError, match=reason):
        inspect_file(path, "csv")


def test_npz(tmp_path):
    x, y = blobs(40, 3, 2)
    path = tmp_path / "d.npz"
    path.write_bytes(npz_bytes(X=x, y=y))
    assert inspect_file(path, "npz").input_shape == (3,)
    images = tmp_path / "im.npz"
    images.write_bytes(npz_bytes(X=np.zeros((10, 6, 6)), y=np.arange(10) % 2))
    assert inspect_file(images, "npz").input_shape == (1, 6, 6)


@pytest.mark.parametrize(
    "arrays, reason",
    [
        (dict(X=np.zeros((5, 2)), y=np.zeros(4, dtype=int)), "5 rows but y has 4"),
        (dict(X=np.zeros((5, 2))), "missing y"),
        (dict(X=np.array([["a", "b"]] * 4), y=np.array([0, 1, 0, 1])), "numeric"),
        (dict(X=np.zeros((4, 2)), y=np.array([0.5, 1, 0, 1])), "integer class labels"),
        (dict(X=np.full((4, 2), np.nan), y=np.array([0, 1, 0, 1])), "NaN"),
        (dict(X=np.array([{"a": 1}] * 4, dtype=object), y=np.array([0, 1, 0, 1])), "cannot read"),
    ],
)
def test_bad_npz_is_refused(tmp_path, arrays, reason):
    path = tmp_path / "bad.npz"
    path.write_bytes(npz_bytes(**arrays))
    with pytest.raises(DatasetFormatError, match=reason):
        inspect_file(path, "npz")


def test_npz_never_unpickles(tmp_path):
    path = tmp_path / "evil.npz"
    path.write_bytes(npz_bytes(X=np.array([object()] * 4, dtype=object), y=np.array([0, 1, 0, 1])))
    with pytest.raises(DatasetFormatError):
        load_file(path, "npz")


def test_idx_zip_of_gzipped_mnist_files(tmp_path):
    path = write_idx_zip(tmp_path / "mnist.zip")
    info = inspect_file(path, "idx")
    assert (info.num_samples, info.input_shape, info.num_classes) == (1797, (1, 28, 28), 10)
    x, y = load_file(path, "idx")
    assert x.shape == (1797, 1, 28, 28) and 0 <= x.min() and x.max() <= 1.0


def test_idx_needs_the_training_files(tmp_path):
    import zipfile

    path = tmp_path / "partial.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(DatasetFormatError, match="train-images-idx3-ubyte"):
        inspect_file(path, "idx")
    (tmp_path / "notzip.zip").write_bytes(b"plain")
    with pytest.raises(DatasetFormatError, match="zip"):
        inspect_file(tmp_path / "notzip.zip", "idx")
