"""Image folders (a zip or tar of class_name/*.png|jpg): decoded once at upload into an
NPZ the workers load, class names as labels, and every hostile archive refused with
its reason before it costs more than the limit, nothing stored."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zipfile
import zlib

import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image

from storage_app.formats import DatasetFormatError, DatasetTooLarge, guess_format, load_file, prepare_file
from storage_app.formats.common import Budget
from storage_app.formats.images import MAX_IMAGE_MEMBERS, images_to_npz, parse_image_size
from storage_app.models import Dataset
from tests.datagen import write_idx_zip
from tests.imagegen import SHAPES, encoded, shape_files, shape_image, tar_of, zip_of
from tests.test_upload_hardening import (
    LIMIT,
    MiB,
    assert_refused,
    deflated,
    stored,
    traced_peak_mib,
    upload,
)


@pytest.fixture
def limit(settings):
    settings.TENSORFLEET_MAX_DATASET_EXPANDED_BYTES = LIMIT
    return LIMIT


def png_declaring(width: int, height: int, idat: bytes = b"") -> bytes:
    """A grayscale PNG whose header says ``width`` x ``height``, with ``idat`` as its data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def noise_png() -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return encoded(Image.fromarray(pixels, "RGB"))


def with_class(files: dict[str, bytes], name: str, data: bytes) -> dict[str, bytes]:
    return {**files, name: data}


# --- what an image folder becomes -----------------------------------------------------


def test_an_image_zip_uploads_as_an_npz_of_its_classes(api, local_storage):
    files = shape_files(12, seed=1, root="shapes/")
    r = upload(api, zip_of(files), "shapes.zip")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["format"] == "images" and body["input_shape"] == [3, 32, 32]
    assert (body["num_samples"], body["num_classes"], body["class_names"]) == (36, 3, sorted(SHAPES))
    key = f"datasets/{body['sha256'][:2]}/{body['sha256']}.npz"
    assert stored(local_storage) == [key]  # the decoded NPZ, not the archive
    x, y = load_file(local_storage / key, "images")
    assert x.shape == (36, 3, 32, 32) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert list(np.bincount(y)) == [12, 12, 12]
    # sample i is the i-th path in sorted order, its pixels as Pillow decodes them
    first = sorted(files)[0]
    expected = np.asarray(Image.open(io.BytesIO(files[first])), np.float32).transpose(2, 0, 1) / 255
    assert np.array_equal(x[0], expected) and y[0] == sorted(SHAPES).index(first.split("/")[1])
    listed = api.get("/api/v1/datasets").json()["results"][0]
    assert listed["class_names"] == ["circle", "square", "triangle"]
    download = api.get(f"/api/v1/datasets/{body['id']}/download")
    assert download["Content-Disposition"].endswith('shapes.npz"')


def test_the_same_images_in_a_tar_gz_are_the_same_stored_dataset(api, local_storage):
    files = shape_files(5, seed=2)
    from_zip = upload(api, zip_of(files), "a.zip").json()
    reordered = dict(reversed(list(files.items())))
    from_tar = upload(api, tar_of(reordered, gz=True), "b.tar.gz").json()
    assert from_tar["format"] == "images" and from_tar["sha256"] == from_zip["sha256"]
    assert len(stored(local_storage)) == 1 and Dataset.objects.count() == 2


def test_image_size_resizes_every_image(api, local_storage):
    files = shape_files(4, seed=3, size=24)
    r = upload(api, zip_of(files), "s.zip", image_size="16x8")
    assert r.status_code == 201, r.content
    assert r.json()["input_shape"] == [3, 8, 16]  # WIDTHxHEIGHT given, (C, H, W) stored
    assert upload(api, zip_of(files), "t.zip", image_size="20").json()["input_shape"] == [3, 20, 20]


def test_the_most_common_size_wins_when_none_is_given(tmp_path):
    files = shape_files(4, seed=4, size=32)
    files["circle/odd.png"] = encoded(shape_image("circle", np.random.default_rng(0), size=48))
    (tmp_path / "s.zip").write_bytes(zip_of(files))
    _, info = prepare_file(tmp_path / "s.zip", "images", workdir=tmp_path)
    assert info.input_shape == (3, 32, 32) and info.num_samples == 13


def test_grayscale_keeps_one_channel_and_a_mix_becomes_rgb(tmp_path):
    gray = shape_files(3, seed=5, mode="L")
    (tmp_path / "g.zip").write_bytes(zip_of(gray))
    _, info = prepare_file(tmp_path / "g.zip", "images", workdir=tmp_path)
    assert info.input_shape == (1, 32, 32)
    rng = np.random.default_rng(6)
    mixed = {
        **gray,
        "square/rgba.png": encoded(shape_image("square", rng, mode="RGBA")),
        "triangle/palette.png": encoded(shape_image("triangle", rng, mode="P")),
    }
    (tmp_path / "m.zip").write_bytes(zip_of(mixed))
    out, info = prepare_file(tmp_path / "m.zip", "images", workdir=tmp_path)
    assert info.input_shape == (3, 32, 32) and info.num_samples == 11
    x, _ = load_file(out, "images")
    gray_image = x[0]  # circle/0000.png, gray: the same value in all three channels
    assert np.array_equal(gray_image[0], gray_image[1]) and np.array_equal(gray_image[1], gray_image[2])


def test_jpeg_images_decode(tmp_path):
    (tmp_path / "j.tgz").write_bytes(tar_of(shape_files(3, seed=7, fmt="JPEG")))
    _, info = prepare_file(tmp_path / "j.tgz", "images", workdir=tmp_path)
    assert info.num_samples == 9 and info.class_names == tuple(sorted(SHAPES))


def test_a_zip_is_idx_when_it_holds_mnists_names_and_images_otherwise(tmp_path):
    (tmp_path / "images.zip").write_bytes(zip_of(shape_files(1)))
    assert guess_format("images.zip", tmp_path / "images.zip") == "images"
    assert guess_format("mnist.zip", write_idx_zip(tmp_path / "mnist.zip")) == "idx"
    assert [guess_format(n) for n in ("x.tar", "x.tar.gz", "x.tgz", "x.parquet")] == [
        "images",
        "images",
        "images",
        "parquet",
    ]


@pytest.mark.parametrize("value, expected", [("32", (32, 32)), ("64x32", (32, 64)), (" 8 X 4 ", (4, 8)), (None, None)])
def test_image_size_parses(value, expected):
    assert parse_image_size(value) == expected


@pytest.mark.parametrize(
    "fields, field, reason",
    [
        ({"image_size": "0"}, "image_size", "from 1 to 1024"),
        ({"image_size": "2000x20"}, "image_size", "from 1 to 1024"),
        ({"image_size": "big"}, "image_size", "WIDTHxHEIGHT"),
        ({"image_size": "32", "format": "npz"}, "image_size", "for image folders"),
    ],
)
def test_a_bad_image_size_is_400(api, local_storage, fields, field, reason):
    assert_refused(upload(api, zip_of(shape_files(1)), "s.zip", **fields), local_storage, field=field, reason=reason)


def test_upload_dataset_command_takes_image_folders(user, local_storage, tmp_path):
    path = tmp_path / "shapes.tgz"
    path.write_bytes(tar_of(shape_files(3, seed=8), gz=True))
    out = io.StringIO()
    call_command("upload_dataset", str(path), "--image-size", "16", "--owner", user.username, stdout=out)
    assert "9 samples, shape [3, 16, 16], 3 classes (circle, square, triangle)" in out.getvalue()
    assert Dataset.objects.get(owner=user).class_names == ["circle", "square", "triangle"]


# --- hostile and broken archives -------------------------------------------------------


def tar_member_declaring(n: int) -> bytes:
    """A .tar.gz whose one member says it holds ``n`` bytes, and does (zeros, deflated)."""
    info = tarfile.TarInfo("circle/big.png")
    info.size = n
    return gzip.compress(info.tobuf()) + _gz_zeros(n)


def _gz_zeros(n: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(MiB)
    return b"".join([*(c.compress(chunk) for _ in range(n // MiB)), c.flush()])


HOSTILE = {
    # a header declaring 10 gigapixels: refused from the header, before a byte is decoded
    "header-bomb.zip": (
        lambda: zip_of(with_class(shape_files(1), "circle/bomb.png", png_declaring(100_000, 100_000))),
        413,
        "pixels",
    ),
    # a real bomb: 8192x8192 gray pixels of zeros, 64 KiB deflated, under Pillow's own limit
    "zeros-bomb.zip": (
        lambda: zip_of(with_class(shape_files(1), "circle/bomb.png", png_declaring(8192, 8192, deflated(64 * MiB)))),
        413,
        "decompressed",
    ),
    "member-declares-4x.tar.gz": (lambda: tar_member_declaring(4 * LIMIT), 413, "decompressed"),
    "symlink.tar": (lambda: tar_of(shape_files(1), links={"circle/passwd.png": "/etc/passwd"}), 400, "link"),
    "outside.tar": (
        lambda: tar_of(
            with_class(shape_files(1), "../circle/x.png", encoded(shape_image("circle", np.random.default_rng(0))))
        ),
        400,
        "outside",
    ),
    "absolute.zip": (lambda: zip_of(with_class(shape_files(1), "/tmp/circle/x.png", b"x")), 400, "outside"),
    "not-an-image.zip": (lambda: zip_of(with_class(shape_files(1), "circle/notes.txt", b"hello")), 400, "not a .png"),
    "text-as-png.zip": (lambda: zip_of(with_class(shape_files(1), "circle/x.png", b"hello")), 400, "not a PNG or JPEG"),
    "bmp-as-png.zip": (
        lambda: zip_of(with_class(shape_files(1), "circle/x.png", encoded(Image.new("RGB", (4, 4)), "BMP"))),
        400,
        "not a PNG or JPEG",
    ),
    "truncated.zip": (
        lambda: zip_of(
            with_class(shape_files(1), "circle/x.png", noise_png()[:1000])  # 3 kB of noise, cut in its data
        ),
        400,
        "broken image",
    ),
    "no-folders.zip": (
        lambda: zip_of({"a.png": encoded(Image.new("L", (4, 4))), "b.png": encoded(Image.new("L", (4, 4)))}),
        400,
        "one folder per class",
    ),
    "mixed-depths.zip": (
        lambda: zip_of(with_class(shape_files(1), "x/circle/y.png", encoded(Image.new("L", (4, 4))))),
        400,
        "same depth",
    ),
    "one-class.zip": (lambda: zip_of({"cat/a.png": encoded(Image.new("L", (4, 4)))}), 400, "at least two classes"),
    "empty.tar": (lambda: tar_of({}), 400, "no .png"),
    "junk.tar.gz": (lambda: gzip.compress(b"junk" * 300), 400, "tar"),
}


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile-images")
    for name, (make, _, _) in HOSTILE.items():
        (folder / name).write_bytes(make())
    return folder


@pytest.mark.parametrize("filename", sorted(HOSTILE))
def test_a_hostile_image_archive_is_refused_with_its_reason(api, local_storage, limit, hostile_files, filename):
    _, status, reason = HOSTILE[filename]
    data = (hostile_files / filename).read_bytes()
    assert len(data) < 200 * 1024
    assert_refused(upload(api, data, filename, format="images"), local_storage, status=status, reason=reason)


@pytest.mark.parametrize("filename", ["header-bomb.zip", "zeros-bomb.zip", "member-declares-4x.tar.gz"])
def test_an_image_bomb_is_refused_holding_a_fraction_of_the_limit(settings, hostile_files, tmp_path, filename):
    settings.TENSORFLEET_MAX_DATASET_EXPANDED_BYTES = LIMIT
    path = hostile_files / filename
    with pytest.raises(DatasetTooLarge):
        prepare_file(path, "images", workdir=tmp_path)
    peak = traced_peak_mib(lambda: prepare_file(path, "images", workdir=tmp_path))
    assert peak < LIMIT / MiB / 2, f"{filename}: {peak:.1f} MiB allocated"


def test_a_zip_of_100k_members_is_refused_before_its_directory_is_read(tmp_path):
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(100_000):
            zf.writestr(f"c{i % 2}/{i}.png", b"")
    with pytest.raises(DatasetTooLarge, match=f"at most {MAX_IMAGE_MEMBERS}"):
        prepare_file(path, "images", workdir=tmp_path)


def test_a_tar_of_too_many_members_is_refused_as_it_streams(tmp_path, monkeypatch):
    from storage_app.formats import images

    monkeypatch.setattr(images, "MAX_IMAGE_MEMBERS", 10)
    (tmp_path / "many.tar").write_bytes(tar_of(shape_files(4)))
    with pytest.raises(DatasetTooLarge, match="more than 10 entries"):
        prepare_file(tmp_path / "many.tar", "images", workdir=tmp_path)


def test_decoded_images_over_the_budget_are_refused_before_allocation(tmp_path):
    (tmp_path / "s.zip").write_bytes(zip_of(shape_files(2)))
    with pytest.raises(DatasetTooLarge, match="the decoded images"):
        images_to_npz(tmp_path / "s.zip", tmp_path / "o.npz", (1024, 1024), Budget(8 * MiB))
    assert not (tmp_path / "o.npz").exists()


def test_an_empty_or_broken_archive_is_a_format_error(tmp_path):
    (tmp_path / "empty.zip").write_bytes(b"")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04" + bytes(40))
    for name in ("empty.zip", "broken.zip"):
        with pytest.raises(DatasetFormatError):
            prepare_file(tmp_path / name, "images", workdir=tmp_path)
