"""Batch-run test support: a scripted student whose replies depend only on the prompt (so threads, workers
and restarts cannot change an item), services around it, manifests, and a runner a test can kill -9.

``python -m tests.batch_support MANIFEST RUN_DIR CHROMA_DIR DELAY`` runs ``run_batch`` with these
services, as a separate process; ``python -m tests.batch_support soak ROWS KILLS [SEED]`` prints the
kill -9 reliability figures (lost, duplicated, differing items against an uninterrupted run)."""

from __future__ import annotations

import csv
import hashlib
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

from coe.graphs import Services

from tests.conftest import FIXTURE, HashEmbedder
from tests.test_graph import StubReader
from tests.verify_support import ScriptedStudent, task_of

ANIMALS = ["rabbit", "fox", "grass", "hawk", "owl", "deer", "mouse", "snake", "frog", "heron", "trout", "beetle"]
IMAGE = FIXTURE / "images/test/7/image.png"
# the student below only knows the questions it writes itself, so exemplar questions are not candidates
SETTINGS = {"question_exemplars": 0}


def answer_of(request) -> str:
    return request.messages[-1].content.split("The correct answer of the new item: ", 1)[1].split("\n", 1)[0]


def distractors_for(answer: str, n: int) -> list[str]:
    start = int(hashlib.sha256(answer.encode()).hexdigest(), 16) % len(ANIMALS)
    others = [a for a in ANIMALS[start:] + ANIMALS[:start] if a != answer]
    return others[:n]


def reply(request, delay: float = 0.0):
    if delay:
        time.sleep(delay)
    task, answer = task_of(request), answer_of(request)
    if task == "question":
        # names the key by its place in ANIMALS, so the question does not state it
        return {"question": f"Which organism is number {ANIMALS.index(answer)} in the meadow?"}
    if task == "rationale":
        return {"rationale": f"The {answer} is the answer because of the food chain."}
    if task == "notes":
        n = request.json_schema["properties"]["notes"]["minItems"]
        return {"notes": [f"a student may confuse option {i + 1} with the {answer}" for i in range(n)]}
    n = request.json_schema["properties"]["distractors"]["minItems"] if request.json_schema else 2
    return {"distractors": distractors_for(answer, n)}


def key_of(question: str) -> str | None:
    found = re.fullmatch(r"Which organism is number (\d+) in the meadow\?", question)
    return ANIMALS[int(found.group(1))] if found else None


def student(delay: float = 0.0) -> ScriptedStudent:
    return ScriptedStudent(partial(reply, delay=delay), prefer=lambda q, options: {key_of(q): 0.8},
                           yes=lambda q, option: 0.9 if option == key_of(q) else 0.1)


def build_bank(chroma_dir: Path) -> None:
    from coe.dataset_loaders import ScienceQA
    from coe.plugins.store.chroma import ChromaStore
    from coe.retrieval.index import build_index, default_bank

    build_index(default_bank(ScienceQA(FIXTURE)), embedder=HashEmbedder(), store=ChromaStore(chroma_dir))


def scripted_services(chroma_dir: str, delay: float = 0.0) -> Services:
    from coe.plugins.store.chroma import ChromaStore
    from coe.retrieval.retriever import ExemplarRetriever

    retriever = ExemplarRetriever(HashEmbedder(), ChromaStore(Path(chroma_dir)))
    return Services(llm=student(delay), retriever=retriever, image_reader=StubReader())


def write_manifest(path: Path, n: int, *, image: Path | None = IMAGE) -> Path:
    """``n`` good rows; every third one has the fixture image (relative to the manifest's folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if image is not None:
        (path.parent / "img.png").write_bytes(image.read_bytes())
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "image", "context", "answer", "n_distractors", "tags"])
        for i in range(n):
            w.writerow([f"q{i:03d}", "img.png" if image is not None and i % 3 == 0 else "",
                        f"Row {i}: a food chain in a meadow.", ANIMALS[i % len(ANIMALS)], 2, f"unit{i % 2};batch"])
    return path


ROOT = Path(__file__).resolve().parents[1]


def without_timings(value):
    """An item without its timings (``seconds``, ``stage_seconds``, ... at any depth), which differ per run."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if not k.endswith("seconds")}
    return [without_timings(v) for v in value] if isinstance(value, list) else value


def done_count(run_dir: Path) -> int:
    try:
        with sqlite3.connect(f"file:{run_dir / 'ledger.sqlite'}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM items WHERE state = 'done'").fetchone()[0]
    except sqlite3.Error:
        return 0


def kill9_soak(manifest: Path, run_dir: Path, bank: str, *, kills: int, seed: int = 0,
               delay: float = 0.02) -> dict:
    """Run the manifest in a child process, ``kill -9`` it ``kills`` times at random moments after it has
    written something new, then let a last run finish. Returns the kills made and the runs it took."""
    rng = random.Random(seed)
    cmd = [sys.executable, "-m", "tests.batch_support", str(manifest), str(run_dir), bank, str(delay)]
    made = 0
    for _ in range(kills):
        before = done_count(run_dir)
        child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while done_count(run_dir) <= before and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.4))
        if child.poll() is not None:  # it finished before the kill: nothing left to interrupt
            break
        child.send_signal(signal.SIGKILL)
        child.wait()
        made += 1
    final = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    return {"kills": made}


def soak(rows: int, kills: int, seed: int = 0) -> None:
    """The reliability figure: ``rows`` rows killed ``kills`` times, against an uninterrupted run."""
    import json
    import tempfile

    from coe.batch.ledger import Ledger
    from coe.batch.run import run_batch

    work = Path(tempfile.mkdtemp(prefix="coe-soak-"))
    build_bank(work / "chroma")
    manifest = write_manifest(work / "m" / "manifest.csv", rows)
    t0 = time.perf_counter()
    run_batch(manifest, work / "reference", services_factory=partial(scripted_services, str(work / "chroma")),
              settings=SETTINGS, max_concurrency=2)
    made = kill9_soak(manifest, work / "killed", str(work / "chroma"), kills=kills, seed=seed)["kills"]

    def written(run_dir):
        with Ledger(run_dir, create=False) as ledger:
            entries = ledger.entries()
        items = {e["id"]: json.dumps(without_timings(e["item"]), sort_keys=True) for e in entries if e["item"]}
        return items, sum(e["attempts"] for e in entries)
    ref, _ = written(work / "reference")
    got, attempts = written(work / "killed")
    print(json.dumps({"rows": rows, "kills": made, "lost": len(set(ref) - set(got)),
                      "duplicated": attempts - len(got), "differing": sum(ref[i] != got.get(i) for i in ref),
                      "seconds": round(time.perf_counter() - t0, 1)}))


def main(argv: list[str]) -> None:
    from coe.batch.run import run_batch

    if argv[0] == "soak":
        soak(int(argv[1]), int(argv[2]), int(argv[3]) if len(argv) > 3 else 0)
        return
    manifest, run_dir, chroma_dir, delay = argv
    summary = run_batch(manifest, run_dir, services_factory=partial(scripted_services, chroma_dir, float(delay)),
                        settings=SETTINGS, max_concurrency=2)
    print(summary.written_now, summary.done)


if __name__ == "__main__":
    main(sys.argv[1:])
