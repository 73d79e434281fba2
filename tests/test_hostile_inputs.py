"""Hostile files against the real ``coe`` command line in a child process: each is built here (small on
disk, however large it unpacks), and each run must end in one ``coe: error:`` line with its exit code,
peak memory under 1 GB, and nothing changed outside the store it targets."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.store_support import coe, coe_env, snapshot

pytestmark = pytest.mark.real_parts

PEAK_MB = 1024
QTI_NS = "http://www.imsglobal.org/xsd/imsqti_v2p1"


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _item(body: bytes) -> bytes:
    return f'<assessmentItem xmlns="{QTI_NS}" identifier="x"><itemBody>'.encode() + body + \
        b"</itemBody></assessmentItem>"


def _damaged(path: Path, how: str) -> Path:
    """A QTI package whose one item has a bad CRC or bad deflate data."""
    good = _item(b"<p>Which is a bird?</p>" * 50)
    _zip(path, {"item.xml": good})
    data = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).infolist()[0]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    if how == "crc":
        data[info.header_offset + 14] ^= 0xFF          # the local header's CRC-32
        central = data.rfind(b"PK\x01\x02")
        data[central + 16] ^= 0xFF                       # and the central directory's
    else:
        data[start + 5: start + 25] = b"\xff" * 20       # the deflate stream itself
    path.write_bytes(bytes(data))
    return path


def _bank_file(folder: Path, case: str) -> tuple[Path, str]:
    """The hostile bank file of ``case`` and what its error line says."""
    if case == "qti-element-bomb":  # three 63 MiB items of <b/>: a few hundred KB zipped
        return _zip(folder / "bomb.zip", {f"i{n}.xml": _item(b"<b/>" * (63 * 2**18 - 40)) for n in range(3)}), \
            "more than 1000000 XML elements"
    if case == "gift-of-braces":
        (folder / "braces.gift").write_bytes(b"{" * (63 * 2**20))
        return folder / "braces.gift", "longer than 64000 characters"
    if case == "gift-too-many":
        (folder / "many.gift").write_bytes(b"Which one? {=yes ~no}\n\n" * 20_000)
        return folder / "many.gift", "more than 10000 questions; import it in parts, or raise the limit"
    if case == "moodle-empty-questions":
        (folder / "empty.xml").write_bytes(b"<quiz>" + b"<question/>" * 1_100_000 + b"</quiz>")
        return folder / "empty.xml", "more than 1000000 XML elements"
    if case == "qti-deep-item":
        (folder / "deep.xml").write_bytes(_item(b"<div>" * 50_000 + b"</div>" * 50_000))
        return folder / "deep.xml", "nests XML elements more than 256 deep"
    if case in ("qti-bad-crc", "qti-bad-deflate"):
        return _damaged(folder / f"{case}.zip", case.rsplit("-", 1)[1]), "damaged in its zip file"
    assert case == "jsonl-deep-line"
    (folder / "deep.jsonl").write_bytes(b'{"question": "q", "answer": "a", "distractors": '
                                        + b"[" * 100_000 + b"]" * 100_000 + b"}\n")
    return folder / "deep.jsonl", "JSON nested too deeply"


@pytest.mark.parametrize("case", ["qti-element-bomb", "gift-of-braces", "gift-too-many", "moodle-empty-questions",
                                  "qti-deep-item", "qti-bad-crc", "qti-bad-deflate", "jsonl-deep-line"])
def test_a_hostile_bank_file_is_one_line_within_bounds(tmp_path, case):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    file, said = _bank_file(inputs, case)
    assert file.stat().st_size < 64 * 2**20
    home = tmp_path / "home"
    before = snapshot(tmp_path)
    ran = coe(["bank", "import", str(file), "--bank", "target"], coe_env(home))
    assert ran.returncode == 2, ran.stderr
    assert len(ran.errors()) == 1 and ran.errors()[0].startswith("coe: error: ") and said in ran.errors()[0], \
        ran.stderr
    assert 0 < ran.peak_mb < PEAK_MB
    after = snapshot(tmp_path, skip=(home / "banks" / "target", home / "banks" / ".target.lock", home / "chroma"))
    assert after == {k: v for k, v in before.items() if not Path(k).is_relative_to(home)}
    assert not (home / "banks" / "target" / "bank.json").exists()


def _docx(path: Path, parts: list[bytes]) -> Path:
    """A Word file whose document.xml is ``parts`` joined, written as it is compressed (never whole in memory)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", b'<?xml version="1.0"?><Types/>')
        with z.open("word/document.xml", "w", force_zip64=True) as member:
            for part in parts:
                member.write(part)
    return path


def test_office_bombs_are_refused_early_and_leave_no_material(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    head, tail = b'<w:document xmlns:w="urn:w"><w:body>', b"</w:body></w:document>"
    _docx(docs / "empty-paragraphs.docx", [head, *[b"<w:p/>" * (2**20 // 6)] * 50, tail])
    _docx(docs / "unpacks-400mb.docx", [head + b"<w:p><w:t>", *[b"a" * 2**20] * 400, b"</w:t></w:p>" + tail])
    assert sum(p.stat().st_size for p in docs.iterdir()) < 2 * 2**20
    home = tmp_path / "home"
    before = snapshot(tmp_path, skip=(home,))
    ran = coe(["ingest", str(docs), "--material", "target"], coe_env(home))
    assert ran.returncode == 1, ran.stderr
    errors = ran.errors()
    assert len(errors) == 2 and all(e.startswith("coe: error: ") for e in errors), ran.stderr
    assert any("more than 500000 XML elements" in e for e in errors) and any("more than 32 MiB" in e for e in errors)
    assert 0 < ran.peak_mb < PEAK_MB
    assert snapshot(tmp_path, skip=(home,)) == before
    listed = coe(["material", "list"], coe_env(home))
    assert listed.stdout.strip().startswith("no materials yet"), listed.stdout


def test_a_pdf_over_the_page_limit_is_one_line(tmp_path):
    from reportlab.pdfgen import canvas

    pdf = tmp_path / "long.pdf"
    c = canvas.Canvas(str(pdf))
    for n in range(4):
        c.drawString(72, 780, f"Page {n + 1} is about the water cycle.")
        c.showPage()
    c.save()
    env = coe_env(tmp_path / "home")
    ran = coe(["ingest", str(pdf), "--material", "target", "--max-pages", "3"], env)
    assert ran.returncode == 1 and ran.errors() == [
        "coe: error: the PDF has 4 pages; split it, or raise the limit with --max-pages (limit 3)"], ran.stderr
    assert coe(["ingest", str(pdf), "--material", "target", "--max-pages", "4"], env).returncode == 0


def test_pictures_and_links_outside_the_folder_are_not_read(tmp_path):
    """A page naming /etc/shadow, an existing and a missing picture out of its folder, and a link to
    /etc/passwd: nothing outside is read or copied, and the warning is the same for a file that exists."""
    from tests.ingest_support import picture

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(picture("secret"))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "inside.png").write_bytes(picture("inside"))
    (docs / "page.md").write_text(
        "# Birds\n\nHerons eat fish.\n\n![a heron](inside.png)\n\n![shadow](/etc/shadow)\n\n"
        f"![exists]({outside / 'secret.png'})\n\n![up](../outside/secret.png)\n\n![missing](../outside/none.png)\n",
        "utf-8")
    (docs / "notes.txt").symlink_to("/etc/passwd")
    home = tmp_path / "home"
    ran = coe(["ingest", str(docs), "--material", "target"], coe_env(home))
    assert ran.returncode == 1, ran.stderr
    assert [e for e in ran.errors() if e.startswith("coe: error: ")] == [
        f"coe: error: a link to a file outside {docs}: notes.txt (--allow-outside-files reads it)"]
    warnings = [e for e in ran.errors() if e.startswith("coe: warning: ")]
    refs = ["/etc/shadow", str(outside / "secret.png"), "../outside/secret.png", "../outside/none.png"]
    assert warnings == [f"coe: warning: picture outside {docs} left out: {r} in page.md "
                        "(--allow-outside-files reads it)" for r in refs]
    figures = list((home / "materials" / "target" / "figures").iterdir())
    assert len(figures) == 1 and figures[0].read_bytes() == (docs / "inside.png").read_bytes()
    shown = coe(["material", "show", "target", "--json"], coe_env(home)).stdout
    assert "root:" not in shown and "secret" not in shown


def test_material_show_prints_emoji_codes_as_text(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "codes.md").write_text("# Codes\n\nType :x: and :smile: to mark answers.\n", "utf-8")
    env = coe_env(tmp_path / "home")
    assert coe(["ingest", str(docs), "--material", "target"], env).returncode == 0
    shown = coe(["material", "show", "target"], env)
    assert ":x: and :smile:" in shown.stdout, shown.stdout
