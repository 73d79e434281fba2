import os
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from coe.errors import InputError
from coe.imageio import check_image, check_text, load_image, load_image_bytes, read_text_file


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but whose pixel data is garbage."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", b"not zlib data") + chunk(b"IEND", b""))


@pytest.fixture
def png(tmp_path) -> Path:
    path = tmp_path / "ok.png"
    img = Image.effect_noise((120, 80), 64).convert("RGB")
    img.save(path)
    return path


def test_ok_image(png):
    img = load_image(png)
    assert img.mode == "RGB" and img.size == (120, 80)


@pytest.mark.parametrize("mode", ["L", "P", "1", "CMYK"])
def test_other_modes_become_rgb(tmp_path, mode):
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    Image.new(mode, (10, 10)).save(path)
    assert load_image(path).mode == "RGB"


def test_transparency_is_flattened_onto_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(path)
    assert load_image(path).getpixel((0, 0)) == (255, 255, 255)


def _gradient16(width: int = 256, height: int = 8):
    """A left-to-right 16-bit grey ramp over the whole range: 0 ... 65535."""
    import numpy as np
    row = np.linspace(0, 65535, width).round().astype(np.uint16)
    return np.tile(row, (height, 1))


def test_sixteen_bit_png_keeps_its_gradient(tmp_path):
    import numpy as np
    path = tmp_path / "ramp16.png"
    Image.fromarray(_gradient16()).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")  # the premise: Pillow reads the file as 16-bit grey
    rgb = np.asarray(load_image(path))
    assert rgb.dtype == np.uint8 and rgb.shape == (8, 256, 3)
    red = rgb[0, :, 0].astype(int)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    assert (rgb == rgb[0]).all()  # every row the same ramp
    assert (np.diff(red) >= 0).all() and red[0] == 0 and red[-1] == 255  # order kept, whole range used
    assert (red < 255).mean() > 0.9  # not white: Pillow's own conversion clips 99 % of it to 255
    assert abs(red[128] - 128) <= 1  # mid-grey stays mid-grey (65535/256 steps per 8-bit level)


@pytest.mark.parametrize("values,expected", [
    ([[0, 1000], [65535, 32768]], [[0, 4], [255, 128]]),                  # "I" holding 16-bit samples
    ([[-55, 0], [100, 200]], [[0, 55], [155, 255]]),                       # "I" outside 16 bits: its range
    ([[0.0, 0.5], [1.0, 0.25]], [[0, 128], [255, 64]]),                    # "F" in [0, 1]
])
def test_wide_integer_and_float_images_are_scaled(values, expected):
    import numpy as np
    dtype = np.float32 if isinstance(values[0][0], float) else np.int32
    img = check_image(Image.fromarray(np.array(values, dtype=dtype)))
    assert np.asarray(img)[..., 0].tolist() == expected


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="image not found: .*nope.png"):
        load_image(tmp_path / "nope.png")


def test_directory(tmp_path):
    with pytest.raises(InputError, match="directory"):
        load_image(tmp_path)


def test_text_file_renamed_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("just some text\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"not a readable image: .*notes.png \(.+\)"):
        load_image(path)


def test_truncated_png(tmp_path, png):
    path = tmp_path / "cut.png"
    data = png.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="not a readable image"):
        load_image(path)


def test_over_byte_limit(png):
    with pytest.raises(InputError, match="image too large: .*bytes"):
        load_image(png, max_bytes=100)


@pytest.mark.parametrize(("width", "height", "detail"), [
    (8000, 6000, "8000x6000 pixels, limit 40000000"),  # over our limit, under PIL's
    (20000, 20000, "400000000 pixels"),  # PIL refuses this one while opening
])
def test_huge_dimensions_rejected_from_header(tmp_path, width, height, detail):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(width, height))
    assert path.stat().st_size < 200
    # The pixel data is not even valid zlib, so reaching "too large" proves nothing was decoded.
    with pytest.raises(InputError, match=rf"image too large: .*bomb.png \(.*{detail}"):
        load_image(path)


def test_pixel_limit_is_configurable(png):
    with pytest.raises(InputError, match="120x80 pixels, limit 5000"):
        load_image(png, max_pixels=5000)


def test_real_bomb_png_is_rejected(tmp_path):
    path = tmp_path / "bomb1.png"
    Image.new("1", (20000, 20000)).save(path)
    with pytest.raises(InputError, match="image too large"):
        load_image(path)


@pytest.mark.parametrize("side", [10000, 20000])
def test_pil_bomb_guard_becomes_input_error(tmp_path, side):
    # With our own limit lifted, PIL's warning (10000^2) and error (20000^2) still stop it.
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(side, side))
    with pytest.raises(InputError, match="image too large"):
        load_image(path, max_pixels=10**12)
    assert not any(f[2] is Image.DecompressionBombWarning and f[0] == "error"
                   for f in warnings.filters)


def test_bytes_and_decoded_images_get_the_same_checks(png):
    assert load_image_bytes(png.read_bytes()).size == (120, 80)
    with pytest.raises(InputError, match="image too large: upload .120x80 pixels, limit 5000"):
        load_image_bytes(png.read_bytes(), max_pixels=5000, label="upload")
    with pytest.raises(InputError, match=r"image too large: image bytes \(\d+ bytes, limit 10\)"):
        load_image_bytes(png.read_bytes(), max_bytes=10)
    with pytest.raises(InputError, match="not a readable image: image bytes"):
        load_image_bytes(_png_header_only(64, 64))
    assert check_image(Image.new("LA", (8, 8))).mode == "RGB"
    with pytest.raises(InputError, match="image too large: image .30x30 pixels, limit 800"):
        check_image(Image.new("RGB", (30, 30)), max_pixels=800)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=600), st.booleans())
def test_arbitrary_bytes_never_escape_as_other_errors(data, png_signature):
    if png_signature:
        data = b"\x89PNG\r\n\x1a\n" + data
    fd, name = tempfile.mkstemp(suffix=".png")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            assert load_image(name).mode == "RGB"
        except InputError:
            pass
    finally:
        os.unlink(name)


def test_check_text():
    assert check_text("hello", name="answer", max_chars=5) == "hello"
    with pytest.raises(InputError, match="answer must be text, got int"):
        check_text(3, name="answer", max_chars=5)
    with pytest.raises(InputError, match="answer contains a NUL"):
        check_text("a\x00b", name="answer", max_chars=5)
    with pytest.raises(InputError, match="answer too long: 6 characters"):
        check_text("abcdef", name="answer", max_chars=5)


def test_read_text_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffPhotosynthesis – light → sugar\n".encode())
    assert read_text_file(path) == "Photosynthesis – light → sugar\n"


def test_read_text_file_rejects_non_utf8(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café".encode("latin-1"))
    with pytest.raises(InputError) as err:
        read_text_file(path)
    assert str(err.value) == f"not UTF-8 text: {path} (invalid byte 0xe9 at offset 3)"


def test_read_text_file_missing_or_directory(tmp_path):
    with pytest.raises(InputError, match="text file not found"):
        read_text_file(tmp_path / "none.txt")
    with pytest.raises(InputError, match="directory"):
        read_text_file(tmp_path)


@pytest.fixture
def decoded(monkeypatch) -> list[str]:
    """The label of every picture decoded from here on, starting with none kept."""
    from coe import imageio

    imageio.clear_decoded_images()
    labels: list[str] = []
    real = imageio._decode

    def counting(open_image, label, limit):
        labels.append(label)
        return real(open_image, label, limit)

    monkeypatch.setattr(imageio, "_decode", counting)
    return labels


def test_a_picture_read_again_is_not_decoded_again(png, decoded):
    first = load_image(png)
    first.paste((255, 0, 0), (0, 0, 10, 10))  # a reader that draws on its copy
    second = load_image(png)
    assert len(decoded) == 1
    with Image.open(png) as original:
        assert second.tobytes() == original.convert("RGB").tobytes()
    # a tighter limit is not answered from what a looser one let through
    with pytest.raises(InputError, match="too large"):
        load_image(png, max_pixels=100)
    # the file changed: read again
    Image.effect_noise((60, 40), 64).convert("RGB").save(png)
    assert load_image(png).size == (60, 40)
    assert len(decoded) == 3


def test_the_model_plugins_reuse_the_picture_the_item_already_read(png, decoded):
    """The OCR step reads the picture with ``load_image``; the vision-language plugin's calls read it again
    through ``load_pil`` (by path or as bytes) and get it without decoding it again."""
    from coe.plugins.llm.protocol import ImageRef
    from coe.plugins.llm.transformers_processing import load_pil

    seen = load_image(png)
    for _ in range(3):
        assert load_pil(ImageRef(path=png)).tobytes() == seen.tobytes()
    data = png.read_bytes()
    for _ in range(2):
        assert load_pil(ImageRef(data=data)).tobytes() == seen.tobytes()
    assert len(decoded) == 2  # the file once, the same bytes sent inline once
    with pytest.raises(InputError, match="not a readable image"):
        load_pil(ImageRef(data=b"\x89PNG\r\n\x1a\nbroken"))
