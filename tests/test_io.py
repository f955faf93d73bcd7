"""Reading, writing, ids, listing and matching (datamodules.io)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from datamodules.io import (
    ImageReadError,
    image_id,
    list_images,
    match_pairs,
    read_id_list,
    read_image,
    sha256_file,
    write_image,
)


def _pattern(height: int = 20, width: int = 30) -> np.ndarray:
    """uint8 RGB with a white top-left quadrant and distinct channels elsewhere."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = 200  # red background: catches BGR/RGB swaps
    image[: height // 2, : width // 2] = 255
    return image


def _save_with_orientation(image: np.ndarray, path: Path, orientation: int, **options: object) -> None:
    pil = Image.fromarray(image)
    exif = pil.getexif()
    exif[0x0112] = orientation
    pil.save(path, exif=exif.tobytes(), **options)


# ---------------------------------------------------------------------------------------------
# read_image / write_image


def test_png_8bit_round_trip_is_exact(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    write_image(tmp_path / "sub" / "x.png", pixels)  # parent folder created
    out = read_image(tmp_path / "sub" / "x.png")
    assert out.dtype == np.float32 and out.shape == (7, 9, 3)
    np.testing.assert_array_equal(out, pixels.astype(np.float32) / 255)


def test_write_image_quantises_round_after_clamp(tmp_path: Path) -> None:
    image = np.array([[[-0.2, 0.2, 1.3], [0.5, 1.0, 0.0]]], np.float32)
    write_image(tmp_path / "q.png", image)
    stored = cv2.imread(str(tmp_path / "q.png"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    np.testing.assert_array_equal(stored, [[[0, 51, 255], [128, 255, 0]]])
    assert [p.name for p in tmp_path.iterdir()] == ["q.png"]  # no temp file left behind


def test_write_image_rejects_wrong_shape_and_nan(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shape"):
        write_image(tmp_path / "a.png", np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        write_image(tmp_path / "b.png", np.full((4, 4, 3), np.nan, np.float32))


def test_png_16bit_scaled_by_65535_in_rgb_order(tmp_path: Path) -> None:
    rgb = np.zeros((5, 6, 3), np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 65535, 1000, 7
    cv2.imwrite(str(tmp_path / "x.png"), rgb[..., ::-1])
    out = read_image(tmp_path / "x.png")
    np.testing.assert_allclose(out[0, 0], [1.0, 1000 / 65535, 7 / 65535], rtol=1e-6)


def test_jpeg_reads_close_to_source_in_rgb(tmp_path: Path) -> None:
    image = _pattern(32, 48)
    Image.fromarray(image).save(tmp_path / "x.jpg", quality=95)
    out = read_image(tmp_path / "x.jpg")
    assert out.shape == (32, 48, 3)
    assert np.abs(out * 255 - image).mean() < 3
    assert out[-1, -1, 0] > 0.7 and out[-1, -1, 2] < 0.1  # red stays red


def test_tiff_16bit_exact(tmp_path: Path) -> None:
    rgb = np.random.default_rng(1).integers(0, 65536, (6, 8, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "x.tif", rgb, photometric="rgb")
    np.testing.assert_array_equal(read_image(tmp_path / "x.tif"), rgb.astype(np.float32) / 65535)


def test_float_tiff_rejected_with_name(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "f.tif", np.zeros((4, 4, 3), np.float32), photometric="rgb")
    with pytest.raises(ImageReadError, match=r"f\.tif.*floating-point"):
        read_image(tmp_path / "f.tif")


def test_jpeg_exif_orientation_6_is_rotated_clockwise(tmp_path: Path) -> None:
    image = _pattern(20, 30)  # landscape, white top-left quadrant
    _save_with_orientation(image, tmp_path / "o6.jpg", 6, quality=95)
    out = read_image(tmp_path / "o6.jpg")
    assert out.shape == (30, 20, 3)  # portrait after rotation
    # 90 degrees clockwise moves the top-left quadrant to the top-right.
    assert out[:15, 10:].mean() > 0.95
    assert out[:15, :10, 2].mean() < 0.05


@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_exif_orientations_match_pillow(tmp_path: Path, orientation: int) -> None:
    image = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    _save_with_orientation(image, tmp_path / "o.png", orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    np.testing.assert_array_equal(read_image(tmp_path / "o.png"), expected.astype(np.float32) / 255)


@pytest.mark.parametrize("orientation", [3, 6, 7])
def test_tiff_orientation_applied_once(tmp_path: Path, orientation: int) -> None:
    # OpenCV's TIFF decoder applies the tag itself; read_image must not apply it again.
    image = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    _save_with_orientation(image, tmp_path / "ref.png", orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "ref.png")))
    orientation_tag = (274, "H", 1, orientation, True)
    tifffile.imwrite(tmp_path / "o.tif", image, photometric="rgb", extratags=[orientation_tag])
    np.testing.assert_array_equal(read_image(tmp_path / "o.tif"), expected.astype(np.float32) / 255)


def test_grayscale_replicated_to_three_channels(tmp_path: Path) -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (3, 4, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], gray / np.float32(255))


def test_transparent_rgba_rejected_with_file_name(tmp_path: Path) -> None:
    rgba = np.full((4, 4, 4), 255, np.uint8)
    rgba[0, 0, 3] = 10
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "alpha.png")
    with pytest.raises(ImageReadError, match=r"alpha\.png.*transparent"):
        read_image(tmp_path / "alpha.png")


def test_opaque_rgba_drops_alpha(tmp_path: Path) -> None:
    rgba = np.full((4, 4, 4), 255, np.uint8)
    rgba[..., :3] = (10, 20, 30)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "opaque.png")
    out = read_image(tmp_path / "opaque.png")
    assert out.shape == (4, 4, 3)
    np.testing.assert_allclose(out[0, 0] * 255, [10, 20, 30], atol=1e-4)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\x89PNG\r\n\x1a\n garbage", "cannot decode"), (b"", "empty"), (None, "does not exist")],
)
def test_bad_files_named_in_error(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "broken_a0042.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError, match=message) as info:
        read_image(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------------------------------------
# ids, listing, matching


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a0001-jmac_DSC1459.tif", "a0001"),
        ("/data/fivek/expertC/a4501.jpg", "a4501"),
        ("a0001", "a0001"),
        ("a0001.v2.png", "a0001"),
        ("coffee.png", "coffee"),
        ("motorcycle_left.png", "motorcycle_left"),
        ("a00012.png", "a00012"),  # five digits is not a FiveK id
        ("A0001.png", "A0001"),
    ],
)
def test_image_id(name: str, expected: str) -> None:
    assert image_id(name) == expected


def test_list_images_skips_non_images_and_hidden(tmp_path: Path) -> None:
    for name in ("a0002.PNG", "a0001-x.jpeg", "notes.txt", "._a0003.jpg", "a0004.tiff"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "nested").mkdir()
    found = list_images(tmp_path)
    assert list(found) == ["a0001", "a0002", "a0004"]
    assert found["a0001"].name == "a0001-x.jpeg"


def test_list_images_rejects_duplicate_ids_naming_both(tmp_path: Path) -> None:
    (tmp_path / "a0001.png").write_bytes(b"x")
    (tmp_path / "a0001-jmac.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"a0001-jmac\.jpg.*a0001\.png|a0001\.png.*a0001-jmac\.jpg"):
        list_images(tmp_path)


def test_list_images_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_images(tmp_path / "nowhere")


def test_match_pairs_by_id_not_listing_position(tmp_path: Path) -> None:
    inputs, targets = tmp_path / "input", tmp_path / "target"
    for key, value in (("a0001", 10), ("a0002", 20), ("a0003", 30)):
        write_image(inputs / f"{key}-x.png", np.full((2, 2, 3), value, np.uint8))
    for key, value in (("a0002", 20), ("a0003", 30), ("a0004", 40)):
        write_image(targets / f"{key}.png", np.full((2, 2, 3), value, np.uint8))
    # The second sorted input (a0002) would meet the first target by position; ids must decide.
    match = match_pairs(inputs, targets)
    assert [key for key, _, _ in match.pairs] == ["a0002", "a0003"]
    for key, source, target in match.pairs:
        assert source.name == f"{key}-x.png" and target.name == f"{key}.png"
        np.testing.assert_array_equal(read_image(source), read_image(target))
    assert match.missing_target == ["a0001"]
    assert match.missing_input == ["a0004"]


def test_read_id_list(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("# header\n\na0003-jmac_DSC1.tif\na0001.jpg  # note\n  coffee \n", encoding="utf-8")
    assert read_id_list(path) == ["a0003", "a0001", "coffee"]


def test_read_id_list_rejects_duplicates_naming_file_and_id(tmp_path: Path) -> None:
    path = tmp_path / "dups.txt"
    path.write_text("a0001\na0002\na0001-x.png\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"dups\.txt.*'a0001'"):
        read_id_list(path)


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"qmap" * 1000)
    assert sha256_file(path) == hashlib.sha256(b"qmap" * 1000).hexdigest()
