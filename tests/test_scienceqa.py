import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from coe.dataset_loaders import ScienceQA, ScienceQAProblem
from tests.tiers import require_file
from coe.errors import ConfigError, InputError
from coe.paths import scienceqa_dir

FIXTURE = Path(__file__).parent / "fixtures" / "mini_scienceqa"


@pytest.fixture
def ds() -> ScienceQA:
    return ScienceQA(FIXTURE)


def _copy_fixture(tmp_path: Path, *, without: tuple[str, ...] = ()) -> Path:
    root = tmp_path / "sqa"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns(*without))
    return root


def test_loads_from_env_var(monkeypatch):
    monkeypatch.setenv("COE_SCIENCEQA_DIR", str(FIXTURE))
    ds = ScienceQA()
    assert ds.root == FIXTURE
    assert len(ds) == 8
    assert ds.get("7").answer == "grass"


def test_explicit_root_beats_env_var(monkeypatch, tmp_path):
    monkeypatch.setenv("COE_SCIENCEQA_DIR", str(tmp_path / "nowhere"))
    assert len(ScienceQA(str(FIXTURE))) == 8
    assert len(ScienceQA(FIXTURE)) == 8


def test_iter_and_contains(ds):
    assert [p.pid for p in ds] == [str(i) for i in range(1, 9)]
    assert "7" in ds and 7 in ds and "9" not in ds


def test_splits_follow_pid_splits_order_and_skip_unknown_pids(ds):
    assert ds.splits() == ["train", "val", "test", "trainval", "minitrain", "minival", "minitest"]
    assert [p.pid for p in ds.split("train")] == ["1", "2", "3", "4"]
    assert [p.pid for p in ds.split("val")] == ["5", "6"]  # pid 9 is not in problems.json
    assert [p.pid for p in ds.split("minitest")] == ["8", "7"]
    assert all(p.split == "test" for p in ds.split("test"))


def test_unknown_split_is_input_error(ds):
    with pytest.raises(InputError, match="unknown ScienceQA split: 'dev'.*train"):
        ds.split("dev")


def test_unknown_pid_is_input_error(ds):
    with pytest.raises(InputError, match="unknown ScienceQA problem id: '9'"):
        ds.get("9")
    assert ds.get(7) is ds.get("7")


def test_answer_and_distractors(ds):
    p = ds.get("7")
    assert p.choices == ["fox", "rabbit", "grass"]
    assert (p.answer_index, p.answer) == (2, "grass")
    assert p.distractors == ["fox", "rabbit"]
    assert ds.get("1").distractors == ["a ruler", "a thermometer"]


def test_image_paths(ds):
    p7 = ds.get("7")
    assert p7.has_image and p7.image_path is not None
    assert p7.image_path.is_absolute() and p7.image_path.is_file()
    assert p7.image_path == (FIXTURE / "images/test/7/image.png").resolve()
    # image flagged but no file here / file named but absent / no image at all
    assert ds.get("3").has_image and ds.get("3").image_path is None
    assert ds.get("6").has_image and ds.get("6").image_path is None
    assert not ds.get("1").has_image and ds.get("1").image_path is None


def test_caption_ocr_and_context(ds):
    p7 = ds.get("7")
    assert p7.caption == "A diagram with words and arrows."
    assert p7.ocr_text == "grass rabbit fox"  # repr-string form, as in the released file
    assert ds.get("3").ocr_text == "seeds mouse"  # plain JSON list form
    assert ds.get("6").ocr_text == "" and ds.get("1").caption == ""
    assert p7.context_text == ("The diagram shows a food chain from a meadow.\n"
                               "A diagram with words and arrows.\ngrass rabbit fox")
    assert ds.get("4").context_text == ""


def test_hint_missing_and_rationale(ds):
    p3 = ds.get("3")
    assert p3.hint_missing and p3.hint == ""
    assert not ds.get("7").hint_missing
    assert p3.rationale == "The arrow from the seeds points to the mouse."
    assert ds.get("1").rationale == ("Mass tells how much matter an object has.\n"
                                     "A balance compares masses, so it measures mass.")
    assert ds.get("4").rationale == ""


def test_provenance_flags(ds):
    assert (ds.get("1").lecture_original, ds.get("1").solution_original) == (True, True)
    assert (ds.get("7").lecture_original, ds.get("7").solution_original) == (False, True)
    assert ds.get("8").solution_original is False
    assert ds.get("3").lecture_original is None
    assert (ds.get("4").lecture_original, ds.get("4").solution_original) == (None, None)


def test_metadata(ds):
    p = ds.get("2")
    assert (p.subject, p.grade, p.topic, p.skill) == (
        "natural science", "grade3", "earth-science", "Compare sizes of objects in space")
    assert ds.get("4").subject is None


def test_problem_is_frozen_and_checked(ds):
    with pytest.raises(ValidationError):
        ds.get("7").answer = "fox"
    with pytest.raises(ValidationError):
        ScienceQAProblem(pid="x", split="train", question="q", choices=["a", "b"],
                         answer_index=0, answer="b", distractors=["a"])


def test_missing_folder_is_config_error(tmp_path):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(ConfigError) as err:
        ScienceQA(missing)
    message = str(err.value)
    assert str(missing) in message and "COE_SCIENCEQA_DIR" in message and "--data" in message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["problems.json", "pid_splits.json"])
def test_missing_required_file_is_config_error(tmp_path, name):
    root = _copy_fixture(tmp_path, without=(name,))
    with pytest.raises(ConfigError, match=f"ScienceQA file missing: .*{name}.*COE_SCIENCEQA_DIR"):
        ScienceQA(root)


def test_optional_files_may_be_absent(tmp_path):
    ds = ScienceQA(_copy_fixture(tmp_path, without=("captions.json", "ocrs.json")))
    assert ds.get("7").caption == "" and ds.get("7").ocr_text == ""


def test_malformed_files_are_config_errors(tmp_path):
    root = _copy_fixture(tmp_path)
    (root / "problems.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="unreadable"):
        len(ScienceQA(root))
    problems = json.loads((FIXTURE / "problems.json").read_text(encoding="utf-8"))
    problems["4"]["answer"] = 5
    (root / "problems.json").write_text(json.dumps(problems), encoding="utf-8")
    with pytest.raises(ConfigError, match="problem 4 is malformed"):
        ScienceQA(root).get("4")


def test_find_by_image_by_path(ds, monkeypatch):
    image = FIXTURE / "images/test/7/image.png"
    assert ds.find_by_image(image).pid == "7"
    assert ds.find_by_image(str(image)).pid == "7"
    monkeypatch.chdir(FIXTURE)
    assert ds.find_by_image("images/train/2/../2/image.png").pid == "2"


def test_find_by_image_by_content(ds, tmp_path):
    copy = tmp_path / "upload.png"
    shutil.copyfile(FIXTURE / "images/train/2/image.png", copy)
    assert ds.find_by_image(copy).pid == "2"
    link = tmp_path / "link.png"
    link.symlink_to(FIXTURE / "images/test/7/image.png")
    assert ds.find_by_image(link).pid == "7"


def test_find_by_image_no_match(ds, tmp_path):
    # Same byte size as a known image, different bytes: must be hashed, then rejected.
    known = (FIXTURE / "images/test/7/image.png").read_bytes()
    twin = tmp_path / "twin.png"
    twin.write_bytes(known[:-1] + bytes([known[-1] ^ 0xFF]))
    assert ds.find_by_image(twin) is None
    assert ds.find_by_image(tmp_path / "absent.png") is None
    assert ds.find_by_image(tmp_path) is None


# -- the real local copy -----------------------------------------------------------------

@pytest.fixture(scope="module")
def real() -> ScienceQA:
    root = scienceqa_dir()
    require_file(root / "problems.json", "real_parts", "set COE_SCIENCEQA_DIR to the ScienceQA folder")
    return ScienceQA(root)


@pytest.mark.real_parts
def test_real_split_sizes(real):
    assert len(real.split("train")) == 12726
    assert len(real.split("test")) == 4241
    assert len(real) >= 19000


@pytest.mark.real_parts
def test_real_test_image_problem(real):
    with_image = [p for p in real.split("test") if p.has_image]
    assert len(with_image) > 2000
    p = with_image[0]
    assert p.image_path is not None and p.image_path.is_file()
    assert p.caption and p.answer == p.choices[p.answer_index]
    assert real.find_by_image(p.image_path).pid == p.pid
