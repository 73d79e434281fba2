"""Batch runs: manifests with bad rows, the ledger's exactly-once resume (kill -9, full disk), review
decisions and exports, through the compiled graph with a scripted student and a real Chroma store."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from functools import partial
from pathlib import Path

import pytest
from coe.batch.export import export_run
from coe.batch.ledger import Ledger
from coe.batch.manifest import read_manifest
from coe.batch.run import run_batch

from coe.errors import ConfigError, InputError
from tests.batch_support import (IMAGE, SETTINGS, build_bank, done_count, kill9_soak, scripted_services,
                                 without_timings, write_manifest)
from tests.tiers import require_root

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    path = tmp_path_factory.mktemp("bank") / "chroma"
    build_bank(path)
    return str(path)


def items_of(run_dir):
    """Each written item without timings, by id."""
    with Ledger(run_dir, create=False) as ledger:
        return {e["id"]: without_timings(e["item"]) for e in ledger.entries(states=("done",))}


def run(manifest, run_dir, bank, settings=SETTINGS, **kw):
    return run_batch(manifest, run_dir, services_factory=partial(scripted_services, bank), settings=settings, **kw)


# --- manifests ---------------------------------------------------------------------------------------------

def test_each_bad_row_gets_its_own_error(tmp_path):
    (tmp_path / "img.png").write_bytes(IMAGE.read_bytes())
    (tmp_path / "notes.png").write_text("this is text, not a picture")
    lines = [b"id,image,context,answer,question",
             b"good,img.png,A food chain.,rabbit,",
             b"missing,nowhere.png,A food chain.,fox,",
             b"notimage,notes.png,A food chain.,fox,",
             b"empty,img.png,A food chain.,   ,",
             b"latin1,,Caf\xe9 au lait,coffee,",
             b"good,,Again.,hawk,",
             b",,No id given,owl,Which bird hunts at night?"]
    (tmp_path / "m.csv").write_bytes(b"\n".join(lines) + b"\n")
    rows, errors = read_manifest(tmp_path / "m.csv")
    assert [(r.id, r.line, r.answer) for r in rows] == [("good", 2, "rabbit"), ("row-8", 8, "owl")]
    assert rows[0].image_path == str((tmp_path / "img.png").resolve())
    assert rows[1].question_given == "Which bird hunts at night?"
    got = {e.id: (e.line, e.error) for e in errors}
    assert got["missing"][0] == 3 and "not found" in got["missing"][1]
    assert "notes.png" in got["notimage"][1] and got["notimage"][0] == 4
    assert "answer is empty" in got["empty"][1]
    assert "not UTF-8" in got["latin1"][1]
    assert got["good"] == (7, "the id 'good' is used by an earlier row")


def test_a_distractor_count_out_of_range_names_the_column(tmp_path):
    (tmp_path / "m.csv").write_text("id,context,answer,n_distractors\nmany,A food chain.,fox,99\n")
    rows, errors = read_manifest(tmp_path / "m.csv")
    assert not rows and errors[0].error.startswith("n_distractors must be between 1 and")
    assert errors[0].error.endswith("not 99")


def test_jsonl_and_an_image_folder_with_a_sidecar(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "chain.png").write_bytes(IMAGE.read_bytes())
    (folder / "items.jsonl").write_text(
        json.dumps({"image": "chain.png", "answer": "fox", "tags": ["a", "b"], "n_distractors": 2}) + "\n"
        + "[1, 2]\n" + json.dumps({"answer": "owl", "colour": "red"}) + "\n", encoding="utf-8")
    rows, errors = read_manifest(folder)
    assert [(r.id, r.tags, r.n_distractors) for r in rows] == [("row-1", ["a", "b"], 2)]
    assert [(e.line, e.error) for e in errors] == [
        (2, "not a JSON object"),
        (3, "unknown column 'colour' (columns: id, image, context, answer, question, n_distractors, tags)")]


def test_unusable_manifests_stop_with_one_line(tmp_path):
    (tmp_path / "m.txt").write_text("answer\nfox\n")
    (tmp_path / "m.csv").write_text("question,context\nWhy?,x\n")
    (tmp_path / "x.csv").write_text("answer,flavour\nfox,sweet\n")
    for path, words in ((tmp_path / "none.csv", "not found"), (tmp_path / "m.txt", ".csv or .jsonl"),
                        (tmp_path / "m.csv", "no 'answer' column"), (tmp_path / "x.csv", "unknown column 'flavour'"),
                        (tmp_path, "exactly one")):
        with pytest.raises(InputError, match=words):
            read_manifest(path)


# --- runs and the ledger ---------------------------------------------------------------------------------

def test_a_run_writes_each_row_once_and_a_rerun_only_what_changed(tmp_path, bank):
    manifest = write_manifest(tmp_path / "m" / "manifest.csv", 6)
    summary = run(manifest, tmp_path / "run", bank)
    assert (summary.written_now, summary.done, summary.total, summary.failures) == (6, 6, 6, [])
    first = items_of(tmp_path / "run")
    assert sorted(first) == [f"q{i:03d}" for i in range(6)]
    assert first["q000"]["image"] == str((tmp_path / "m" / "img.png").resolve()) and first["q001"]["image"] is None
    assert first["q002"]["answer"] == "grass" and len(first["q002"]["distractors"]) == 2
    assert "grass" not in first["q002"]["distractors"] and first["q002"]["question"]
    assert {i["status"] for i in first.values()} == {"verified"}
    # a run started before the banks were recorded was made with the default bank: it resumes
    with sqlite3.connect(tmp_path / "run" / "ledger.sqlite") as db:
        (stored,) = db.execute("SELECT value FROM meta WHERE key = 'settings'").fetchone()
        older = {k: v for k, v in json.loads(stored).items() if k != "banks"}
        db.execute("UPDATE meta SET value = ? WHERE key = 'settings'", (json.dumps(older),))
    again = run(manifest, tmp_path / "run", bank)
    assert (again.written_now, again.added, again.redone, again.done) == (0, 0, 0, 6)
    text = manifest.read_text().replace("Row 4: a food chain", "Row 4: a pond food chain")
    manifest.write_text(text)
    changed = run(manifest, tmp_path / "run", bank)
    assert (changed.written_now, changed.redone, changed.done) == (1, 1, 6)
    with pytest.raises(InputError, match="other settings"):
        run(manifest, tmp_path / "run", bank, settings={**SETTINGS, "difficulty": "hard"})


@pytest.mark.real_parts
def test_kill_9_at_random_moments_loses_and_duplicates_nothing(tmp_path, bank):
    manifest = write_manifest(tmp_path / "m" / "manifest.csv", 16)
    reference = run(manifest, tmp_path / "reference", bank)
    assert reference.done == 16
    soak = kill9_soak(manifest, tmp_path / "killed", bank, kills=4, seed=3)
    assert soak["kills"] >= 2  # the run was really interrupted, more than once
    assert items_of(tmp_path / "killed") == items_of(tmp_path / "reference")
    with Ledger(tmp_path / "killed", create=False) as ledger:
        entries = ledger.entries()
    assert len(entries) == 16 and {e["state"] for e in entries} == {"done"}
    assert sum(e["attempts"] for e in entries) == 16  # no item written twice
    assert sorted(p.name for p in (tmp_path / "killed").iterdir() if not p.name.startswith("ledger.sqlite")) == []


def _sigint_as_a_terminal_gives_it() -> None:
    """In the child before exec: SIGINT delivered and handled by default, whatever this test process
    inherited (a run started in the background ignores it) or a library here did to the signal mask."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@pytest.mark.real_parts
def test_ctrl_c_stops_soon_and_leaves_finished_items_and_pending_rows(tmp_path, bank):
    manifest = write_manifest(tmp_path / "m" / "manifest.csv", 12)
    # 0.2 s per model call: several seconds per row, so rows are still to come when Ctrl-C arrives
    cmd = [sys.executable, "-m", "tests.batch_support", str(manifest), str(tmp_path / "run"), bank, "0.2"]
    child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             preexec_fn=_sigint_as_a_terminal_gives_it)
    deadline = time.monotonic() + 180
    while done_count(tmp_path / "run") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child.poll() is None, "the run ended before it could be interrupted"
    done_before = done_count(tmp_path / "run")
    child.send_signal(signal.SIGINT)
    child.wait()  # ignoring Ctrl-C, it would finish all 12 rows and exit 0
    assert child.returncode == -signal.SIGINT  # Python's exit on Ctrl-C
    assert "KeyboardInterrupt" in child.stderr.read()
    with Ledger(tmp_path / "run", create=False) as ledger:
        states = [e["state"] for e in ledger.entries()]
    assert states.count("done") >= 2 and set(states) == {"done", "pending"}  # nothing marked failed
    # soon: at most the two rows in flight (two workers) were finished after Ctrl-C, no new row was started
    assert states.count("done") <= done_before + 2, (done_before, states)
    resumed = run(manifest, tmp_path / "run", bank)
    assert resumed.done == 12 and resumed.written_now == states.count("pending")


@pytest.mark.root
def test_a_full_disk_stops_with_a_clear_error_and_the_run_resumes(tmp_path, bank):
    require_root("this test mounts a small tmpfs as the run folder")
    manifest = write_manifest(tmp_path / "m" / "manifest.csv", 30)
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    assert made.returncode == 0, f"mounting a small tmpfs failed: {made.stderr.strip()}"
    try:
        with pytest.raises(ConfigError, match="disk is full") as caught:
            run(manifest, mount / "run", bank)
        assert str(mount / "run") in str(caught.value)
        kept = done_count(mount / "run")
        assert 0 < kept < 30
        subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)
        resumed = run(manifest, mount / "run", bank)
        assert resumed.written_now == 30 - kept and resumed.done == 30
        reference = run(manifest, tmp_path / "reference", bank)
        assert reference.done == 30
        assert items_of(mount / "run") == items_of(tmp_path / "reference")
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


# --- review and export ------------------------------------------------------------------------------------

def test_review_decisions_and_edits_reach_the_exports(tmp_path, bank):
    manifest = write_manifest(tmp_path / "m" / "manifest.csv", 5)
    (tmp_path / "m" / "manifest.csv").write_text(manifest.read_text() + ",,,,2,\n")  # a row with no answer
    run(manifest, tmp_path / "run", bank)
    with Ledger(tmp_path / "run", create=False) as ledger:
        ledger.decide("q001", "accepted")
        ledger.decide("q002", "rejected")
        ledger.edit("q001", {"rationale": 'Edited: "foxes" <eat> rabbits & {more} ~ = # :',
                             "distractor_notes": ["note one", "note two"]})
        with pytest.raises(InputError, match="row-7"):
            ledger.decide("row-7", "accepted")
        assert ledger.accept_verified() == 3
        counts = ledger.counts()
    assert (counts["accepted"], counts["rejected"], counts["invalid"], counts["done"]) == (4, 1, 1, 5)
    path, n = export_run(tmp_path / "run", "jsonl", tmp_path / "out.jsonl", only="accepted")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert n == len(records) == 4 and "q002" not in {r["id"] for r in records}
    q001 = next(r for r in records if r["id"] == "q001")
    assert q001["rationale"].startswith('Edited: "foxes" <eat>') and q001["provenance"]["tags"] == ["unit1", "batch"]
    for fmt, name in (("moodle-xml", "x.xml"), ("gift", "x.gift.txt"), ("qti21", "x.zip"), ("aiken", "x.txt"),
                      ("csv", "x.csv")):
        path, n = export_run(tmp_path / "run", fmt, tmp_path / name)
        assert n == 5 and path.stat().st_size > 0
    with zipfile.ZipFile(tmp_path / "x.zip") as z:
        names = z.namelist()
    assert "imsmanifest.xml" in names and sum(n.endswith(".png") for n in names) == 2  # q000 and q003 have images
    with Ledger(tmp_path / "run", create=False) as ledger:
        for row_id in ("q000", "q001", "q003", "q004"):
            ledger.decide(row_id, "rejected")
    with pytest.raises(InputError, match="no accepted items"):
        export_run(tmp_path / "run", "gift", tmp_path / "y.gift", only="accepted")
    assert not (tmp_path / "y.gift").exists()


def test_batch_commands_end_to_end(tmp_path, bank):
    manifest = write_manifest(tmp_path / "m" / "manifest.csv", 3)
    run(manifest, tmp_path / "run", bank)
    env = {**os.environ, "COE_HOME": str(tmp_path / "home")}
    coe = [sys.executable, "-m", "coe.cli"]
    status = subprocess.run([*coe, "batch", "status", str(tmp_path / "run"), "--json"], capture_output=True,
                            text=True, env=env, cwd=ROOT)
    assert status.returncode == 0, status.stderr
    counts = json.loads(status.stdout)["counts"]
    assert counts["done"] == counts["verified"] == 3
    review = subprocess.run([*coe, "batch", "review", str(tmp_path / "run"), "--reject", "q000",
                             "--accept-verified"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert review.returncode == 0 and "accepted 2, rejected 1" in review.stderr
    out = subprocess.run([*coe, "batch", "export", str(tmp_path / "run"), "--format", "gift", "--only", "accepted",
                          "--out", str(tmp_path / "e.gift")], capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0 and "wrote 2 items as gift" in out.stderr
    assert (tmp_path / "e.gift").read_text(encoding="utf-8").count("{") == 2
    missing = subprocess.run([*coe, "batch", "status", str(tmp_path / "nothing")], capture_output=True, text=True,
                             env=env, cwd=ROOT)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no batch run" in missing.stderr


# --- Ray -----------------------------------------------------------------------------------------------

@pytest.fixture
def ray_cluster(tmp_path):
    """A one-node Ray cluster on 127.0.0.1 with two CPUs, started and stopped by the test."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray_bin = Path(sys.executable).with_name("ray")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    started = subprocess.run([str(ray_bin), "start", "--head", "--node-ip-address", "127.0.0.1", "--port",
                              str(port), "--num-cpus", "2", "--include-dashboard", "false",
                              "--temp-dir", "/tmp/ray-coe-test", "--disable-usage-stats"],
                             capture_output=True, text=True, env=env, timeout=180)
    if started.returncode != 0:
        pytest.fail(f"ray start failed: {started.stderr[-1500:]}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, env=env, timeout=120)


@pytest.mark.real_parts
def test_ray_engine_writes_the_same_items_as_the_local_one(tmp_path, bank, ray_cluster):
    manifest = write_manifest(tmp_path / "m" / "manifest.csv", 6)
    local = run(manifest, tmp_path / "local", bank)
    on_ray = run(manifest, tmp_path / "ray", bank, engine="ray", address=ray_cluster, workers=2,
                 runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    assert (local.done, on_ray.done, on_ray.written_now) == (6, 6, 6)
    assert items_of(tmp_path / "ray") == items_of(tmp_path / "local")
    again = run(manifest, tmp_path / "ray", bank, engine="ray", address=ray_cluster)
    assert again.written_now == 0


def test_a_run_folder_that_cannot_be_written_is_named(tmp_path, bank):
    manifest = write_manifest(tmp_path / "m" / "manifest.csv", 2)
    (tmp_path / "taken").write_text("a file where the run folder should go")
    with pytest.raises(ConfigError, match=f"cannot create the run folder {tmp_path / 'taken' / 'run'}"):
        run(manifest, tmp_path / "taken" / "run", bank)
    locked = Path("/sys/kernel/coe-run")  # refused to everyone, root included
    with pytest.raises(ConfigError, match="cannot create the run folder /sys/kernel/coe-run"):
        run(manifest, locked, bank)
