"""The local run history (``coe_home()/traces``) and ``coe generate`` recording into it."""

import json
import threading

import pytest

from coe import history
from coe.errors import InputError
from tests.conftest import FIXTURE


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("COE_HOME", str(tmp_path))
    return tmp_path


def test_save_list_load(home):
    first = history.record_item({"question": "Q1?", "answer": "a", "distractors": ["b"], "trace": [{"node": "x"}]},
                                source="cli", inputs={"answer": "a"})
    second = history.save_run({"source": "ui", "status": "review", "item": {"question": "Q2?", "answer": "c"},
                               "trace": []})
    assert history.traces_dir() == home / "traces"
    runs = history.list_runs()
    assert [r["run_id"] for r in runs] == sorted([first, second], reverse=True)
    record = history.load_run(first)
    assert record["trace"] == [{"node": "x"}] and "trace" not in record["item"]
    assert record["answer"] == "a" and record["source"] == "cli" and record["status"] == "done"
    assert {r["question"] for r in runs} == {"Q1?", "Q2?"}


def test_replace_is_atomic_and_keeps_one_file(home):
    run_id = history.save_run({"status": "review", "item": {}, "trace": []})
    history.save_run({"run_id": run_id, "status": "accepted", "item": {}, "trace": [1, 2]})
    files = list((home / "traces").iterdir())
    assert [f.name for f in files] == [f"{run_id}.json"]
    assert history.load_run(run_id)["status"] == "accepted"


def test_concurrent_writers_do_not_mix(home):
    ids = [history.new_run_id() for _ in range(8)]

    def write(i):
        for k in range(20):
            history.save_run({"run_id": ids[i], "status": "review", "item": {"answer": f"a{i}"},
                              "trace": [{"node": "n", "who": i, "k": k}] * 5})

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, run_id in enumerate(ids):
        record = history.load_run(run_id)
        assert {e["who"] for e in record["trace"]} == {i} and record["item"]["answer"] == f"a{i}"
    assert not [p for p in (home / "traces").iterdir() if p.suffix != ".json"]


def test_bad_ids_and_unreadable_files(home):
    with pytest.raises(InputError):
        history.load_run("../../etc/passwd")
    with pytest.raises(InputError):
        history.load_run("20250101T000000Z-0123456789ab")
    (home / "traces").mkdir()
    (home / "traces" / "20250101T000000Z-0123456789ab.json").write_text("{not json")
    assert history.list_runs() == []
    with pytest.raises(InputError):
        history.load_run("20250101T000000Z-0123456789ab")


def test_coe_generate_records_its_run(home, monkeypatch, capsys):
    from coe.graphs import services as services_module

    from coe import cli
    from tests import ui_support

    monkeypatch.setattr(services_module, "default_services", lambda model=None, banks=None: ui_support.services(model))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["generate", "--image", str(FIXTURE / "images/test/7/image.png"), "--answer", "rabbit",
                  "--context", "A meadow food chain.", "--n-distractors", "2", "--json", "--no-rationale",
                  "--no-verify"])
    assert exit_info.value.code == 0
    printed = json.loads(capsys.readouterr().out)
    runs = history.list_runs()
    assert len(runs) == 1 and runs[0]["source"] == "cli" and runs[0]["answer"] == "rabbit"
    record = history.load_run(runs[0]["run_id"])
    assert record["item"]["distractors"] == printed["distractors"] == ["grass", "hawk"]
    assert [t["node"] for t in record["trace"]] == [t["node"] for t in printed["trace"]]
    assert record["settings"]["use_rationale"] is False and record["inputs"]["n_distractors"] == 2
