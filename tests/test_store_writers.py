"""Two writers at once, and a kill at every write boundary, through the real ``coe`` command line (real
MiniLM, real Chroma): the result is exactly that of running the same commands one after the other,
uninterrupted — nothing lost, nothing twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from coe.kill_points import EXIT_CODE
from tests.ingest_support import picture
from tests.store_support import bank_state, coe, coe_env, finish, material_state, start

pytestmark = pytest.mark.real_parts


def _gift(path: Path, topic: str, n: int) -> Path:
    path.write_text("\n\n".join(f"::{topic}{k}:: Which {topic} fact number {k} holds? "
                                f"{{={topic} answer {k} ~{topic} wrong {k} ~{topic} other {k}}}"
                                for k in range(n)) + "\n", "utf-8")
    return path


def _pages(folder: Path, topic: str, n: int) -> Path:
    folder.mkdir(parents=True)
    for k in range(n):
        (folder / f"{topic}-{k}.md").write_text(
            f"# {topic.title()} {k}\n\nThe {topic} page {k} explains how water moves through the {topic}. "
            f"Evaporation, condensation and precipitation happen in turn.\n\n## More\n\nPage {k} ends here.\n",
            "utf-8")
    return folder


def test_two_concurrent_bank_imports_equal_two_sequential_ones(tmp_path):
    a, b = _gift(tmp_path / "a.gift", "river", 40), _gift(tmp_path / "b.gift", "forest", 40)
    together, apart = coe_env(tmp_path / "together"), coe_env(tmp_path / "apart")
    runs = [start(["bank", "import", str(f), "--bank", "shared"], together) for f in (a, b)]
    done = [finish(p) for p in runs]
    assert [d.returncode for d in done] == [0, 0], [d.stderr for d in done]
    for f in (a, b):
        assert coe(["bank", "import", str(f), "--bank", "shared"], apart).returncode == 0
    got, want = bank_state(tmp_path / "together", "shared"), bank_state(tmp_path / "apart", "shared")
    assert got == want and len(got["records"]) == got["exemplars"] == 80
    assert all(len(ids) == 80 for field, ids in got["vectors"].items() if not field.endswith("context"))


def test_two_concurrent_ingests_equal_two_sequential_ones(tmp_path):
    first, second = _pages(tmp_path / "one", "lake", 5), _pages(tmp_path / "two", "cloud", 5)
    together, apart = coe_env(tmp_path / "together"), coe_env(tmp_path / "apart")
    runs = [start(["ingest", str(f), "--material", "shared"], together) for f in (first, second)]
    done = [finish(p) for p in runs]
    assert [d.returncode for d in done] == [0, 0], [d.stderr for d in done]
    for f in (first, second):
        assert coe(["ingest", str(f), "--material", "shared"], apart).returncode == 0
    got, want = material_state(tmp_path / "together", "shared"), material_state(tmp_path / "apart", "shared")
    assert got == want and len(got["files"]) == 10
    rerun = coe(["ingest", str(first), str(second), "--material", "shared"], together)
    assert rerun.returncode == 0 and material_state(tmp_path / "together", "shared") == want


def test_a_second_writer_waits_then_fails_in_one_line(tmp_path):
    from filelock import FileLock

    home = tmp_path / "home"
    (home / "banks").mkdir(parents=True)
    with FileLock(str(home / "banks" / ".held.lock")):
        ran = coe(["bank", "import", str(_gift(tmp_path / "a.gift", "river", 2)), "--bank", "held"],
                  coe_env(home, COE_LOCK_TIMEOUT="1"))
    assert ran.returncode == 2
    assert ran.errors() == ["coe: waiting for another process writing bank 'held' (up to 1 s)",
                            "coe: error: bank 'held' is being written by another process; try again when it is "
                            "done (waited 1 s, COE_LOCK_TIMEOUT)"], ran.stderr


def _killed_at_every_write(tmp_path: Path, args: list[str], state, name: str) -> int:
    """Run ``args`` killed right after its 1st, 2nd, ... store write, each in a fresh home, then run it again
    uninterrupted; each result must equal one uninterrupted run's. Returns how many boundaries there were."""
    reference = tmp_path / "reference"
    assert coe(args, coe_env(reference)).returncode == 0
    want = state(reference, name)
    n = 0
    while True:
        n += 1
        home = tmp_path / f"killed-{n}"
        killed = coe(args, coe_env(home, COE_EXIT_AFTER_WRITE=str(n)))
        if killed.returncode == 0:  # fewer writes than n: every boundary was tried
            return n - 1
        assert killed.returncode == EXIT_CODE, killed.stderr
        rerun = coe(args, coe_env(home))
        assert rerun.returncode == 0, rerun.stderr
        assert state(home, name) == want, f"killed after write {n}: {killed.stderr.splitlines()[-1]}"


def test_an_ingest_killed_at_every_write_boundary_then_rerun_equals_an_uninterrupted_one(tmp_path):
    docs = _pages(tmp_path / "docs", "pond", 1)
    # a picture under a name that is not ingested as a file of its own: one file, all its boundaries
    (docs / "heron.picture").write_bytes(picture("heron"))
    (docs / "pond-0.md").write_text((docs / "pond-0.md").read_text("utf-8") + "\n![a heron](heron.picture)\n",
                                    "utf-8")
    boundaries = _killed_at_every_write(tmp_path, ["ingest", str(docs), "--material", "pond"], material_state, "pond")
    assert boundaries >= 6  # the figure, the vectors, the docstore and registry after the file, and at the end


def test_a_bank_import_killed_at_every_write_boundary_then_rerun_equals_an_uninterrupted_one(tmp_path):
    bank = _gift(tmp_path / "a.gift", "meadow", 6)
    boundaries = _killed_at_every_write(tmp_path, ["bank", "import", str(bank), "--bank", "meadow"], bank_state,
                                        "meadow")
    assert boundaries >= 5  # records, bank.json, each field's vectors, the index marker
