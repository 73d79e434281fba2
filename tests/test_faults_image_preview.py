"""A 16-bit PNG uploaded to the console: the preview (Streamlit re-encodes a resized picture as JPEG) shows the
same 8-bit picture the pipeline reads, instead of failing with ``cannot write mode I;16 as JPEG``."""

import io

import numpy as np
import pytest
from PIL import Image

from coe.imageio import load_image


@pytest.fixture
def ramp16(tmp_path):
    row = np.linspace(0, 65535, 640).round().astype(np.uint16)
    path = tmp_path / "ramp16.png"
    Image.fromarray(np.tile(row, (40, 1))).save(path)
    return path


def test_upload_of_a_16_bit_png_is_kept_as_the_8_bit_picture(ramp16, tmp_path, monkeypatch):
    from coe.ui.uploads import save_upload

    monkeypatch.setenv("COE_HOME", str(tmp_path / "home"))
    with Image.open(ramp16) as raw, pytest.raises(OSError, match="cannot write mode I;16 as JPEG"):
        raw.save(io.BytesIO(), "JPEG")  # the premise: what the preview did with the raw upload
    data = ramp16.read_bytes()
    saved = save_upload("scan.png", data)
    with Image.open(saved) as kept:
        assert kept.mode == "RGB" and kept.format == "PNG"
        kept.thumbnail((240, 240))
        kept.save(io.BytesIO(), "JPEG")  # what the preview does with a wide picture
    assert np.array_equal(np.asarray(load_image(saved)), np.asarray(load_image(ramp16)))
    assert save_upload("again.png", data) == saved
    assert sorted(p.name for p in saved.parent.iterdir()) == [saved.name]  # the raw 16-bit copy is gone


def test_ordinary_upload_is_kept_as_sent(tmp_path, monkeypatch):
    from coe.ui.uploads import save_upload

    monkeypatch.setenv("COE_HOME", str(tmp_path / "home"))
    encoded = io.BytesIO()
    Image.new("RGB", (32, 16), (10, 200, 30)).save(encoded, "JPEG")
    saved = save_upload("photo.jpg", encoded.getvalue())
    assert saved.suffix == ".jpg" and saved.read_bytes() == encoded.getvalue()
