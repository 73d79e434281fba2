import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from coe.dataset_loaders import ScienceQA
from coe.imageio import load_image
from coe.paths import scienceqa_dir
from coe.errors import CoeError
from coe.plugins.vision import ocr_caption
from coe.plugins.vision.ocr_caption import OcrCaptionReader, _bounded, _padded
from coe.plugins.vision.protocol import ImageReader, ImageText
from tests.tiers import require_file

FIXTURE = Path(__file__).parent / "fixtures" / "mini_scienceqa"
FOOD_CHAIN = FIXTURE / "images/test/7/image.png"
# A test-split food web whose labels are printed words.
REAL_PID = "23"


@pytest.fixture(scope="module")
def reader() -> OcrCaptionReader:
    return OcrCaptionReader()


def test_is_an_image_reader(reader):
    assert isinstance(reader, ImageReader)
    assert reader.name == "ocr-caption"


@pytest.mark.real_parts
def test_ocr_reads_diagram_labels_in_order(reader):
    text = reader.describe(load_image(FOOD_CHAIN))
    assert text.ocr_lines == ["grass", "rabbit", "fox"]
    assert text.ocr_text == "grass rabbit fox"
    assert (text.caption, text.source, text.scienceqa_pid) == ("", "ocr", None)


@pytest.mark.real_parts
def test_confidence_threshold(reader):
    strict = OcrCaptionReader(min_confidence=1.01)
    assert strict.describe(load_image(FOOD_CHAIN)).ocr_lines == []


@pytest.mark.real_parts
def test_large_image_is_downscaled_before_ocr(reader):
    big = load_image(FOOD_CHAIN).resize((3600, 1440))
    assert _bounded(big, 1600).size == (1600, 640)
    assert _bounded(load_image(FOOD_CHAIN), 1600).size == (900, 360)
    assert "rabbit" in reader.describe(big).ocr_text


def test_long_thin_images_are_padded():
    assert _padded(Image.new("RGB", (695, 94)), 3.0).size == (695, 232)
    assert _padded(Image.new("RGB", (50, 600)), 3.0).size == (200, 600)
    square = Image.new("RGB", (300, 200))
    assert _padded(square, 3.0) is square


def _box(x: float, y: float, w: float = 60, h: float = 20) -> list:
    return [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]


class _FakeEngine:
    def __init__(self, result=None, error: Exception | None = None):
        self.result, self.error = result, error

    def __call__(self, image):
        if self.error:
            raise self.error
        assert image.ndim == 3 and image.shape[2] == 3
        return self.result, [0.0]


def test_lines_are_ordered_filtered_and_cleaned(monkeypatch):
    result = [
        [_box(300, 100), "Final（°C）", 0.9],      # full-width brackets from the CJK model
        [_box(10, 108, h=14), "Initial", 0.95],  # same row, lower top edge
        [_box(10, 10), "Title", 0.99],
        [_box(100, 10), "noise", 0.2],           # below min_confidence
        [_box(10, 200), "荞菜", 0.8],              # misread lettering
        [_box(100, 200), "  a   b  ", 0.8],
    ]
    monkeypatch.setattr(ocr_caption, "_engine", lambda: _FakeEngine(result))
    lines = OcrCaptionReader().ocr_lines(Image.new("RGB", (400, 300), "white"))
    assert lines == ["Title", "Initial", "Final(°C)", "a b"]
    keep = OcrCaptionReader(drop_cjk=False).ocr_lines(Image.new("RGB", (400, 300), "white"))
    assert "荞菜" in keep


def test_engine_failure_is_one_line_error(monkeypatch):
    monkeypatch.setattr(ocr_caption, "_engine", lambda: _FakeEngine(error=RuntimeError("a\nb")))
    with pytest.raises(CoeError, match=r"^OCR failed on the image \(RuntimeError: a b\)$"):
        OcrCaptionReader().ocr_lines(Image.new("RGB", (40, 40)))


@pytest.mark.real_parts
def test_known_image_adds_dataset_caption(tmp_path):
    ds = ScienceQA(FIXTURE)
    reader = OcrCaptionReader(ds)
    copy = tmp_path / "upload.png"
    shutil.copyfile(FOOD_CHAIN, copy)
    for source in (FOOD_CHAIN, copy):
        text = reader.describe(load_image(source), source_path=source)
        assert text.caption == "A diagram with words and arrows."
        assert text.source == "ocr+scienceqa-caption" and text.scienceqa_pid == "7"
        assert text.ocr_lines == ["grass", "rabbit", "fox"]
    plain = OcrCaptionReader(ds, use_dataset_caption=False).describe(
        load_image(FOOD_CHAIN), source_path=FOOD_CHAIN)
    assert plain.caption == "" and plain.source == "ocr"


def test_as_prompt_text():
    text = ImageText(caption="A food chain.", ocr_text="grass fox", ocr_lines=["grass", "fox"],
                     source="ocr+scienceqa-caption")
    assert text.as_prompt_text() == "Image caption: A food chain.\nText in the image: grass fox"
    assert ImageText(source="ocr").as_prompt_text() == ""


@pytest.mark.real_parts
def test_real_scienceqa_image_gets_caption_and_ocr():
    root = scienceqa_dir()
    require_file(root / "problems.json", "real_parts", "set COE_SCIENCEQA_DIR to the ScienceQA folder")
    ds = ScienceQA(root)
    problem = ds.get(REAL_PID)
    assert problem.image_path is not None, f"the ScienceQA copy lacks the image of problem {REAL_PID}"
    text = OcrCaptionReader(ds).describe(load_image(problem.image_path),
                                         source_path=problem.image_path)
    assert text.scienceqa_pid == REAL_PID
    assert text.caption == problem.caption != ""
    # The bundled model often drops spaces ("grizzlybear"), so compare without them.
    ours = re.sub(r"\s", "", text.ocr_text.lower())
    theirs = [w for w in re.findall(r"[a-z]{4,}", problem.ocr_text.lower())]
    assert len(theirs) >= 5
    assert sum(w in ours for w in theirs) >= 0.7 * len(theirs)
    assert not re.search(r"[\u4e00-\u9fff]", text.ocr_text)
    for word in ("caribou", "lichen"):
        assert word in text.ocr_text.lower()


@pytest.mark.real_parts
def test_grayscale_input_is_converted(reader):
    gray = load_image(FOOD_CHAIN).convert("L")
    assert isinstance(gray, Image.Image)
    assert reader.describe(gray).ocr_lines == ["grass", "rabbit", "fox"]
