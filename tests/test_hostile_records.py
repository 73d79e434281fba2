"""Hostile records without a model: manifests that name pictures outside their folder or hold values
that only look like numbers, CSV cells that a spreadsheet would run, and export ids that collide as
member names."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest

from coe.batch.manifest import read_manifest
from coe.exports import ExportItem, export
from coe.exports.tabular import render_csv, spreadsheet_safe
from coe.plugins.store.chroma import ChromaStore
from tests.conftest import HashEmbedder
from tests.test_exports import IMAGE

FORMULAS = ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("http://x","y")']


def test_manifest_pictures_must_stay_in_the_manifest_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.png").write_bytes(IMAGE.read_bytes())
    run = tmp_path / "run"
    run.mkdir()
    (run / "in.png").write_bytes(IMAGE.read_bytes())
    (run / "link.png").symlink_to(outside / "x.png")
    rows = [("in.png", None), ("../outside/x.png", "outside"), (str(outside / "x.png"), "outside"),
            ("link.png", "outside"), ("../outside/none.png", "outside"), ("/etc/shadow", "outside")]
    (run / "m.csv").write_text("image,answer\n" + "".join(f"{image},fox\n" for image, _ in rows), "utf-8")
    good, bad = read_manifest(run / "m.csv")
    assert [r.line for r in good] == [2]
    assert [e.line for e in bad] == [3, 4, 5, 6, 7]
    # one wording whether the outside file exists (x.png) or not (none.png)
    assert {e.error.replace(repr(image), "IMAGE") for e, (image, _) in zip(bad, rows[1:])} == {
        f"the image IMAGE is outside the manifest's folder {run} (--allow-outside-files reads it)"}
    good, bad = read_manifest(run / "m.csv", allow_outside=True)
    assert [r.line for r in good] == [2, 3, 4, 5] and [e.line for e in bad] == [6, 7]


def test_manifest_numbers_and_nesting_are_checked(tmp_path):
    lines = [{"answer": "fox", "n_distractors": True}, {"answer": "fox", "n_distractors": 1.9},
             {"answer": "fox", "n_distractors": 2.0}, {"answer": "fox", "n_distractors": "3"}]
    text = "".join(json.dumps(line) + "\n" for line in lines) + '{"answer": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    (tmp_path / "m.jsonl").write_text(text, "utf-8")
    good, bad = read_manifest(tmp_path / "m.jsonl")
    assert [(r.line, r.n_distractors) for r in good] == [(3, 2), (4, 3)]
    assert [(e.line, e.error) for e in bad] == [(1, "n_distractors must be a whole number, got True"),
                                               (2, "n_distractors must be a whole number, got 1.9"),
                                               (5, "not a JSON object: nested too deeply")]


def _item(id_: str, question: str, answer: str = "fox", distractors=("hawk", "owl")) -> ExportItem:
    return ExportItem(id=id_, question=question, answer=answer, distractors=list(distractors))


def test_csv_export_neutralises_formula_cells():
    items = [_item(f"i{n}", f"{f} question", answer=f, distractors=[f"{f}a", "plain"]) for n, f in enumerate(FORMULAS)]
    rows = list(csv.DictReader(io.StringIO(render_csv(items))))
    for row, f in zip(rows, FORMULAS):
        assert row["question"] == "'" + f + " question" and row["answer"] == "'" + f
        assert "'" + f + "a" in {v for k, v in row.items() if k.startswith("option_")}
    cells = [v for row in rows for v in row.values() if v]
    assert not [v for v in cells if v[0] in "=+-@\t\r"]
    assert spreadsheet_safe("a=b") == "a=b" and spreadsheet_safe("") == ""


def test_an_item_id_like_the_manifest_does_not_clobber_it(tmp_path):
    from coe.question_banks.qti21 import parse

    items = [_item("imsmanifest", "Which animal hunts mice?"), _item("Case", "Which bird swims?"),
             _item("case", "Which bird sings?")]
    out = export(items, "qti21", tmp_path / "items.zip")
    names = zipfile.ZipFile(out).namelist()
    assert names.count("imsmanifest.xml") == 1 and len({n.casefold() for n in names}) == len(names)
    assert sorted(q.question for q in parse(out.read_bytes())) == sorted(i.question for i in items)


def test_a_bank_import_stores_formula_cells_as_text(tmp_path, monkeypatch):
    from coe.question_banks import import_bank
    from coe.question_banks.registry import read_exemplars

    monkeypatch.setenv("COE_HOME", str(tmp_path / "home"))
    with (tmp_path / "bank.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["question", "answer", "distractors", "rationale"])
        for n, f in enumerate(FORMULAS):
            writer.writerow([f"{f} is question {n}", f"{f}{n}", f"plain{n};{f}x{n}", f"{f} because"])
    report = import_bank(tmp_path / "bank.csv", "sheet", embedder=HashEmbedder(), store=ChromaStore(tmp_path / "c"))
    assert report.added == len(FORMULAS)
    stored = read_exemplars("sheet")
    texts = [t for e in stored for t in (e.question, e.answer, e.rationale, *e.distractors)]
    assert len(texts) == 5 * len(FORMULAS)
    assert not [t for t in texts if t[:1] in ("=", "+", "-", "@", "\t", "\r")]
    # a leading tab or carriage return is stripped with the other spacing; the rest get a leading '
    assert sum(t.startswith("'") for t in texts) == 4 * sum(not f[0].isspace() for f in FORMULAS)


@pytest.mark.parametrize("text, shown", [("![x](http://evil.example/a.png)", r"\!\[x\]\(http\://evil\.example/a\.png\)"),
                                         ("<img src=x>", r"\<img src\=x\>"), ("$x$ *b*", r"\$x\$ \*b\*")])
def test_console_item_text_is_literal_markdown(text, shown):
    from coe.ui.markdown_text import literal

    assert literal(text) == shown


def test_a_scienceqa_manifest_reads_the_configured_dataset_pictures(tmp_path, monkeypatch):
    """``coe batch scienceqa`` names the dataset's pictures by absolute path: the configured ScienceQA folder
    is in scope, as material figures are; a picture beside it is not."""
    from coe.batch.manifest import read_manifest
    from coe.batch.scienceqa_manifest import scienceqa_manifest
    from tests.conftest import FIXTURE

    monkeypatch.setenv("COE_SCIENCEQA_DIR", str(FIXTURE))
    manifest = tmp_path / "m.csv"
    scienceqa_manifest(None, manifest, n=1)
    rows, errors = read_manifest(manifest)
    assert errors == [] and len(rows) == 1
    (tmp_path / "outside.csv").write_text(f"image,answer\n{FIXTURE / 'problems.json'},fox\n")
    rows, errors = read_manifest(tmp_path / "outside.csv")
    assert rows == [] and "outside the manifest's folder" in errors[0].error


def test_console_verdict_shows_reasons_warnings_and_claim_as_text(monkeypatch):
    """The verifier's reasons and warnings quote option text, and the claim to check quotes the key: none of
    them may turn into a remote image or a link in the review panel."""
    import streamlit as st

    from coe.ui import review_panel

    shown: list[str] = []
    for name in ("error", "warning", "caption", "success", "info"):
        monkeypatch.setattr(st, name, lambda text, *a, **k: shown.append(text))
    bad = "![x](http://evil.example/a.png)"
    review_panel.verification_summary({"status": "flagged", "reasons": [f"{bad} is a second key"],
                                       "verification": {"warnings": [f"{bad} restates the question"]}})
    review_panel.verification_summary({"status": "unconfirmed", "check": f"Check in the picture: {bad}"})
    assert len(shown) == 3
    assert not [t for t in shown if "](http" in t or "![" in t]
    assert all(r"\!\[x\]" in t for t in shown)


def test_bank_remove_clears_what_an_interrupted_import_left(tmp_path, monkeypatch):
    from coe.question_banks import import_bank, list_banks, remove_bank

    class Failing(ChromaStore):
        def upsert(self, *args, **kwargs):
            super().upsert(*args, **kwargs)
            raise KeyboardInterrupt  # stopped after its first vectors are in

    monkeypatch.setenv("COE_HOME", str(tmp_path / "home"))
    (tmp_path / "b.gift").write_text("Which is a bird? {=heron ~trout ~frog}\n\nWhich swims? {=trout ~oak ~moss}\n",
                                     "utf-8")
    store = Failing(tmp_path / "c")
    with pytest.raises(KeyboardInterrupt):
        import_bank(tmp_path / "b.gift", "half", embedder=HashEmbedder(), store=store)
    from coe.retrieval.index import FIELDS

    assert sum(len(store.existing_ids(f"half-{f}")) for f in FIELDS) == 2
    remove_bank("half", ChromaStore(tmp_path / "c"))
    fresh = ChromaStore(tmp_path / "c")
    assert not any(fresh.existing_ids(f"half-{f}") for f in FIELDS)
    assert not (tmp_path / "home" / "banks" / "half").exists()
    assert "half" not in [b.name for b in list_banks(fresh)]
