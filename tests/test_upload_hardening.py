"""Hostile and careless dataset uploads and request bodies (issue 15, items 1, 5 and 6).

Every file here is made by the test, small on disk: the bombs declare or expand to far
more than the limit the test sets, and each must be refused with a 4xx naming the
reason, with nothing stored, without the process ever holding the expanded bytes.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from storage_app import formats
from storage_app.formats import DatasetFormatError, DatasetTooLarge, expansion_limit, inspect_file, load_file
from storage_app.models import Dataset
from tests.datagen import blobs, idx_bytes, npz_bytes, write_csv, write_idx_zip

MiB = 1 << 20
LIMIT = 16 * MiB  # the expanded-bytes limit these tests set


@pytest.fixture
def limit(settings):
    settings.TENSORFLEET_MAX_DATASET_EXPANDED_BYTES = LIMIT
    return LIMIT


# --- hostile files --------------------------------------------------------------------


def deflated(n: int, wbits: int = 15, pattern: bytes = b"\0") -> bytes:
    """n bytes of ``pattern`` repeated, deflated without ever holding them (about 1000:1)."""
    c = zlib.compressobj(9, zlib.DEFLATED, wbits)
    chunk = pattern * (MiB // len(pattern))
    parts = [c.compress(chunk) for _ in range(n // len(chunk))]
    parts.append(c.flush())
    return b"".join(parts)


def gz_bomb(n: int, head: bytes = b"", pattern: bytes = b"\0") -> bytes:
    """A gzip stream of ``head`` then about n bytes of ``pattern``: gzip members concatenate."""
    return gzip.compress(head) + deflated(n, wbits=31, pattern=pattern)


def idx_header(*dims: int) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def idx_zip(images: bytes, labels: bytes | None = None, compress=zipfile.ZIP_DEFLATED, gz=True) -> bytes:
    labels = idx_bytes(np.arange(10) % 2) if labels is None else labels
    suffix = ".gz" if gz else ""
    if gz and labels[:2] != b"\x1f\x8b":
        labels = gzip.compress(labels)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compress) as zf:
        zf.writestr("train-images-idx3-ubyte" + suffix, images)
        zf.writestr("train-labels-idx1-ubyte" + suffix, labels)
    return buf.getvalue()


def npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    """A version 1.0 .npy header, as numpy writes it."""
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode("latin1")
    pad = 64 - (10 + len(header) + 1) % 64
    header += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def npz_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def npz_bomb(expanded: int) -> bytes:
    """An NPZ whose X is ``expanded`` bytes of zeros, written without holding them."""
    n = expanded // (4 * 8)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("X.npy", "w", force_zip64=True) as fh:
            fh.write(npy_header((n, 8)))
            chunk = bytes(MiB)
            for _ in range(n * 32 // MiB):
                fh.write(chunk)
            fh.write(bytes(n * 32 % MiB))
        zf.writestr("y.npy", npz_member(np.arange(n, dtype=np.int8) % 2))
    return buf.getvalue()


def npz_member(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def zip_with_flag(method: int | None = None, encrypted: bool = False) -> bytes:
    """An IDX zip whose members say they are encrypted, or use compression ``method``."""
    data = bytearray(idx_zip(b"x" * 10, gz=False, compress=zipfile.ZIP_STORED))
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # local and central headers
        i = data.find(signature)
        while i >= 0:
            if encrypted:
                data[i + flags_at] |= 0x1
            if method is not None:
                data[i + flags_at + 2 : i + flags_at + 4] = struct.pack("<H", method)
            i = data.find(signature, i + 4)
    return bytes(data)


def traced_peak_mib(fn) -> float:
    """Peak bytes Python and numpy allocated while ``fn`` ran (numpy reports to tracemalloc)."""
    tracemalloc.start()
    try:
        fn()
    except DatasetFormatError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / MiB


def stored(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def upload(api, data: bytes, filename: str, **fields):
    f = io.BytesIO(data)
    f.name = filename
    return api.post("/api/v1/datasets", {"file": f, **fields}, format="multipart")


def assert_refused(r, local_storage, status=400, field="file", reason=""):
    assert r.status_code == status, (r.status_code, r.content[:500])
    body = r.json()
    assert field in body, body
    assert reason.lower() in " ".join(body[field]).lower(), body
    assert stored(local_storage) == [] and Dataset.objects.count() == 0


# --- bombs -----------------------------------------------------------------------------

BOMBS = {
    # a zip of a gzipped IDX file whose header declares 1x32768x32768 images (1 GiB)
    "idx-declares-1GiB.zip": lambda: idx_zip(gzip.compress(idx_header(1, 32768, 32768))),
    # dimensions whose product wraps around in 64-bit arithmetic
    "idx-declares-overflow.zip": lambda: idx_zip(idx_header(2**32 - 1, 2**32 - 1, 2**32 - 1), gz=False),
    # the header tells the truth: its gzip stream really expands to 4x the limit
    "idx-gz-expands.zip": lambda: idx_zip(gz_bomb(4 * LIMIT, idx_header(16, 2048, 2048))),
    # a stored (not deflated) zip member that is itself a gzip bomb
    "idx-gz-stored.zip": lambda: idx_zip(gz_bomb(4 * LIMIT, idx_header(16, 2048, 2048)), compress=zipfile.ZIP_STORED),
    # a deflated zip member (no gzip) whose size in the zip's directory is over the limit
    "idx-member-expands.zip": lambda: idx_zip(idx_header(16, 2048, 2048) + bytes(16 * 2048 * 2048), gz=False),
    "npz-expands.npz": lambda: npz_bomb(4 * LIMIT),
    # an NPZ whose X header declares 10**12 floats and holds none
    "npz-declares-4TB.npz": lambda: npz_zip(
        {"X.npy": npy_header((4, 250_000_000_000)), "y.npy": npz_member(np.arange(4) % 2)}
    ),
    "csv-expands.csv.gz": lambda: gz_bomb(4 * LIMIT, b"a,label\n", pattern=b"0,1\n1,0\n"),
}
FORMAT_OF = {".zip": "idx", ".npz": "npz", ".gz": "csv", ".csv": "csv"}


@pytest.fixture(scope="module")
def bomb_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    for name, make in BOMBS.items():
        (folder / name).write_bytes(make())
    return folder


@pytest.mark.parametrize("filename", sorted(BOMBS))
def test_a_bomb_is_refused_before_it_expands(bomb_files, filename):
    path = bomb_files / filename
    assert path.stat().st_size < 200 * 1024  # small on disk ...
    fmt = FORMAT_OF[path.suffix]
    with pytest.raises(DatasetTooLarge, match="decompressed"):
        inspect_file(path, fmt, max_bytes=LIMIT)
    # ... and refused holding a fraction of the limit (each bomb holds 4x the limit, or declares far more)
    peak = traced_peak_mib(lambda: inspect_file(path, fmt, max_bytes=LIMIT))
    assert peak < LIMIT / MiB / 2, f"{filename}: {peak:.1f} MiB allocated"


@pytest.mark.parametrize("filename", sorted(BOMBS))
def test_a_bomb_upload_is_413_and_leaves_nothing(api, local_storage, limit, bomb_files, filename):
    r = upload(api, (bomb_files / filename).read_bytes(), filename)
    assert_refused(r, local_storage, status=413, reason="decompressed")


def test_workers_load_under_the_same_limit(settings, bomb_files):
    settings.TENSORFLEET_MAX_DATASET_EXPANDED_BYTES = LIMIT
    # a worker's cached copy is named <sha256>.csv even when its bytes are gzip
    cached = bomb_files / "cached.csv"
    cached.write_bytes((bomb_files / "csv-expands.csv.gz").read_bytes())
    with pytest.raises(DatasetTooLarge):
        load_file(cached, "csv")
    with pytest.raises(DatasetTooLarge):
        load_file(bomb_files / "npz-expands.npz", "npz")


def test_a_zip_of_too_many_entries_is_refused_before_its_directory_is_read(tmp_path):
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(formats.MAX_ZIP_MEMBERS + 1):
            zf.writestr(f"e{i}", b"")
    with pytest.raises(DatasetTooLarge, match="entries"):
        inspect_file(path, "idx")


def test_the_expansion_ratio_bounds_a_small_files_cost(tmp_path, monkeypatch):
    assert expansion_limit(1000, max_bytes=1 << 30, ratio=100)[0] == formats.EXPANSION_FLOOR
    monkeypatch.setattr(formats, "EXPANSION_FLOOR", MiB)
    assert expansion_limit(10 * MiB, max_bytes=1 << 30, ratio=100)[0] == 1000 * MiB
    assert expansion_limit(100 * MiB, max_bytes=1 << 30, ratio=100)[0] == 1 << 30  # the absolute limit
    assert expansion_limit(100 * MiB, max_bytes=1 << 30, ratio=0)[0] == 1 << 30  # no ratio
    path = tmp_path / "d.csv.gz"
    path.write_bytes(gz_bomb(8 * MiB, b"a,label\n", pattern=b"0,1\n1,0\n"))  # about 700:1
    with pytest.raises(DatasetTooLarge, match="100 times the file's"):
        inspect_file(path, "csv", max_bytes=1 << 30, ratio=100)
    assert inspect_file(path, "csv", max_bytes=1 << 30, ratio=1000).num_samples == 2 * MiB


def test_a_csv_bomb_costs_time_in_proportion_to_the_limit(tmp_path):
    """The 305 kB .csv.gz that took 131 s of API CPU: rows of four bytes, 700:1 in gzip."""
    path = tmp_path / "rows.csv.gz"
    path.write_bytes(gz_bomb(256 * MiB, b"a,label\n", pattern=b"0,1\n1,0\n"))
    assert path.stat().st_size < 400 * 1024
    start = time.process_time()
    with pytest.raises(DatasetTooLarge):
        inspect_file(path, "csv", max_bytes=1 << 30, ratio=100)  # 100 x 391 kB < the 64 MiB floor
    assert time.process_time() - start < 20  # about 2.5 s here; reading all 256 MiB took 43 s


# --- malformed files: a 400 with the reason, never a 500 ------------------------------

MALFORMED = {
    "idx-header-ends-early.zip": (lambda: idx_zip(bytes([0, 0, 8, 3, 0, 0]), gz=False), "ends after"),
    "idx-4-dims-wrapping-to-0.zip": (
        lambda: idx_zip(idx_header(65536, 65536, 65536, 65536), gz=False),
        "3-dimensional",
    ),
    "idx-short-data.zip": (lambda: idx_zip(idx_header(10, 4, 4) + bytes(100), gz=False), "holds 100 values"),
    "idx-more-data-than-declared.zip": (lambda: idx_zip(gz_bomb(4 * LIMIT, idx_header(10, 4, 4))), "more values"),
    "idx-empty-images.zip": (lambda: idx_zip(idx_header(10, 0, 0), gz=False), "hold nothing"),
    "idx-encrypted.zip": (lambda: zip_with_flag(encrypted=True), "encrypted"),
    "idx-method-99.zip": (lambda: zip_with_flag(method=99), "method 99"),
    "idx-junk-gz.zip": (lambda: idx_zip(b"\x1f\x8bjunkjunkjunk"), "corrupt"),
    "idx-truncated-gz.zip": (lambda: idx_zip(gzip.compress(idx_bytes(np.zeros((10, 4, 4))))[:30]), "truncated"),
    "idx-bad-crc.zip": (
        lambda: idx_zip(idx_bytes(np.zeros((10, 4, 4)))[:-1] + b"\x01", gz=False).replace(
            zlib.crc32(idx_bytes(np.zeros((10, 4, 4)))[:-1] + b"\x01").to_bytes(4, "little"), b"\0\0\0\0"
        ),
        "crc",
    ),
    "truncated-gz.csv.gz": (lambda: gzip.compress(b"a,label\n1,0\n2,1\n" * 100)[:-20], "truncated"),
    "label-1e19.csv": (lambda: b"a,label\n1,0\n2,1e19\n", "at most 10000 classes"),
    "nan.csv": (lambda: b"a,label\n1,0\nnan,1\n", "not a finite number"),
    "inf.csv": (lambda: b"a,label\n1,0\n-inf,1\n", "not a finite number"),
    "beyond-float32.csv": (lambda: b"a,label\n1,0\n1e39,1\n", "float32"),
    "a-npy-not-an-npz.npz": (lambda: npz_member(np.zeros((4, 2))), "not an NPZ file"),
    "x-not-npy.npz": (lambda: npz_zip({"X": b"hello", "y.npy": npz_member(np.arange(4) % 2)}), "not a .npy"),
    "y-1e19.npz": (lambda: npz_bytes(X=np.zeros((2, 2)), y=np.array([0, 1e19])), "labels go up to"),
    "y-uint64-huge.npz": (lambda: npz_bytes(X=np.zeros((2, 2)), y=np.array([0, 2**63], np.uint64)), "labels go up to"),
    "x-beyond-float32.npz": (lambda: npz_bytes(X=np.array([[1e39, 0], [0, 0]]), y=np.array([0, 1])), "float32"),
    "x-no-features.npz": (lambda: npz_bytes(X=np.zeros((2, 0)), y=np.array([0, 1])), "no features"),
    "x-data-ends-early.npz": (
        lambda: npz_zip({"X.npy": npy_header((4, 2)) + bytes(8), "y.npy": npz_member(np.arange(4) % 2)}),
        "ends early",
    ),
}


@pytest.mark.parametrize("filename", sorted(MALFORMED))
def test_a_malformed_file_is_refused_with_its_reason(tmp_path, filename):
    make, reason = MALFORMED[filename]
    path = tmp_path / filename
    path.write_bytes(make())
    with pytest.raises(DatasetFormatError, match=f"(?i){reason}"):
        inspect_file(path, FORMAT_OF[path.suffix], max_bytes=LIMIT)


@pytest.mark.parametrize("filename", sorted(MALFORMED))
def test_a_malformed_upload_is_400_and_leaves_nothing(api, local_storage, limit, filename):
    make, reason = MALFORMED[filename]
    assert_refused(upload(api, make(), filename), local_storage, reason=reason)


def test_a_csv_gz_that_is_plain_text_is_read_as_text(api, local_storage, tmp_path):
    r = upload(api, b"a,label\n1,0\n2,1\n", "plain.csv.gz", name="plain")
    assert r.status_code == 201, r.content
    assert r.json()["num_samples"] == 2


def test_a_gzipped_csv_loads_from_a_worker_cache_named_csv(tmp_path):
    """Stored and cached as <sha256>.csv: the reader goes by the bytes, not the name."""
    x, y = blobs(30, 3, 2)
    plain = write_csv(tmp_path / "d.csv", x, y)
    cached = tmp_path / "cached.csv"
    cached.write_bytes(gzip.compress(plain.read_bytes()))
    lx, ly = load_file(cached, "csv")
    px, py = load_file(plain, "csv")
    assert np.array_equal(lx, px) and np.array_equal(ly, py) and len(ly) == 30


def test_csv_fast_and_slow_paths_agree(tmp_path, monkeypatch):
    """numpy parses clean blocks, the csv module the rest: the same numbers either way."""
    rows = '1.5,0,"2"\r\n\r\n -3 ,1,4e2\r\n0.1,2,1e-3\r\n'
    path = tmp_path / "d.csv"
    path.write_text("f0,label,f1\r\n" + rows * 500)
    fast = load_file(path, "csv")
    monkeypatch.setattr(np, "loadtxt", lambda *a, **k: (_ for _ in ()).throw(ValueError("off")))
    slow = load_file(path, "csv")
    assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1])
    assert fast[0].shape == (1500, 2) and fast[0].dtype == np.float32
    assert list(fast[1][:3]) == [0, 1, 2] and fast[0][1].tolist() == [-3.0, 400.0]


def test_idx_and_npz_load_as_before(tmp_path):
    x, y = load_file(write_idx_zip(tmp_path / "mnist.zip"), "idx")
    assert x.shape == (1797, 1, 28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1.0
    fortran = tmp_path / "f.npz"
    array = np.asfortranarray(np.arange(24, dtype=np.float64).reshape(4, 6))
    fortran.write_bytes(npz_bytes(X=array, y=np.array([0, 1, 0, 1])))
    lx, _ = load_file(fortran, "npz")
    assert np.array_equal(lx, array.astype(np.float32))


# --- names -----------------------------------------------------------------------------


CSV = b"a,label\n1,0\n2,1\n"


@pytest.mark.parametrize(
    "filename, fields, reason",
    [
        ("digits.csv", {}, "built-in"),
        ("iris.csv.gz", {}, "built-in"),
        ("12345678-1234-5678-1234-567812345678.csv", {}, "look like an id"),
        ("x.csv", {"name": "12345678123456781234567812345678"}, "look like an id"),
        ("x.csv", {"name": "wine"}, "built-in"),
    ],
)
def test_a_name_from_the_file_obeys_the_name_rules(api, local_storage, filename, fields, reason):
    assert_refused(upload(api, CSV, filename, **fields), local_storage, field="name", reason=reason)


@pytest.mark.parametrize(
    "filename, expected",
    [
        ("é" * 130 + ".csv", "é" * 130),  # 264 bytes: past the file system's 255
        ("a" * 256 + ".csv", "a" * 200),  # Django keeps 255 characters; a name holds 200
        ("  spaced .csv", "spaced"),
        (".csv", "dataset"),
    ],
)
def test_a_long_or_odd_file_name_gives_a_valid_name(api, local_storage, filename, expected):
    r = upload(api, CSV, filename)
    assert r.status_code == 201, r.content
    assert r.json()["name"] == expected


def test_a_long_file_name_on_a_large_upload(api, local_storage, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 10  # spooled to a temporary file named after it
    r = upload(api, CSV, "x." + "é" * 200)
    assert r.status_code in (201, 400), r.content
    assert r.status_code == 400 or Dataset.objects.count() == 1


# --- request bodies --------------------------------------------------------------------


@pytest.mark.parametrize("depth", [33, 5000])
def test_deeply_nested_json_is_a_400(api, depth):
    body = '{"model_type": "mlp", "dataset": "iris", "hyperparameters": ' + "[" * depth + "]" * depth + "}"
    r = api.generic("POST", "/api/v1/jobs", body, content_type="application/json")
    assert r.status_code == 400, r.content[:300]
    assert "nested more than 32 levels" in r.json()["detail"]


def test_json_nested_within_the_limit_is_parsed(api, monkeypatch):
    body = json.dumps({"model_type": "mlp", "dataset": "iris", "colour": [[[[1]]]]})
    r = api.generic("POST", "/api/v1/jobs", body, content_type="application/json")
    assert r.status_code == 400 and r.json() == {"colour": ["Unknown field."]}  # parsed, then validated


def test_a_chunked_body_without_a_length_is_411(api):
    r = api.generic("POST", "/api/v1/jobs", b"", content_type="application/json", HTTP_TRANSFER_ENCODING="chunked")
    assert r.status_code == 411
    assert "Content-Length" in r.json()["detail"]


def test_a_bad_content_length_is_400(api):
    r = api.generic(
        "POST", "/api/v1/datasets", b"", CONTENT_LENGTH="abc", content_type="multipart/form-data; boundary=x"
    )
    assert r.status_code == 400 and "Content-Length" in r.json()["detail"]


def test_a_json_body_over_the_limit_is_413_naming_it(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    r = api.post("/api/v1/jobs", {"model_type": "mlp", "name": "x" * 2000}, format="json")
    assert r.status_code == 413
    assert "limit is 1000 bytes" in r.json()["detail"]


@pytest.mark.parametrize(
    "make, limit",
    [
        (lambda: {f"f{i}": "x" for i in range(1001)} | {"file": io.BytesIO(CSV)}, "DATA_UPLOAD_MAX_NUMBER_FIELDS"),
        (lambda: {f"file{i}": io.BytesIO(b"x") for i in range(101)}, "DATA_UPLOAD_MAX_NUMBER_FILES"),
    ],
)
def test_a_form_past_djangos_limits_is_a_400_naming_the_limit(api, local_storage, make, limit):
    r = api.post("/api/v1/datasets", make(), format="multipart")
    assert r.status_code == 400 and limit in r.json()["detail"]
    form = "&".join(f"a{i}=1" for i in range(1001))
    r = api.generic("POST", "/api/v1/jobs", form, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 400 and "DATA_UPLOAD_MAX_NUMBER_FIELDS" in r.json()["detail"]
