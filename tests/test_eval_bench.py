"""The retrieval benchmark on the fixture: real MiniLM and Chroma, tiny banks."""

import pytest

from coe.eval import bench


@pytest.mark.slow
def test_bench_retrieval_reports_latency_per_bank_size(fixture_dataset):
    from coe.modelstore import is_pulled
    if not is_pulled("minilm-l6-v2-int8"):
        pytest.fail("run `coe models pull minilm-l6-v2-int8` first (make test does)")
    out = bench.bench_retrieval(fixture_dataset, [3, 100], queries=2)
    assert out["bank_available"] == 8  # every fixture problem with a split: train, val and test
    small, large = out["sizes"]
    assert (small["bank"], large["bank"]) == (3, 8)
    for s in out["sizes"]:
        assert s["queries"] == 2 and 0 < s["p50_ms"] <= s["p95_ms"]
        assert s["build_items_per_s"] > 0
    assert bench.peak_rss_mb() > 10


def test_bench_with_no_bank_sizes_prints_what_it_timed(capsys):
    """``--bank-sizes ""`` skips retrieval; what was timed still reaches the user (it used to crash after)."""
    import json

    from coe.cli import main
    from tests.conftest import FIXTURE

    with pytest.raises(SystemExit) as ended:
        main(["bench", "--models", "", "--bank-sizes", "", "--data", str(FIXTURE), "--json"])
    printed = capsys.readouterr()
    assert ended.value.code == 0, printed.err
    out = json.loads(printed.out)
    assert "retrieval" not in out and out["peak_rss_mb"] > 0


def test_warm_up_items_run_first_and_stay_out_of_the_timings(fixture_dataset, monkeypatch):
    """The warm-up item is another test item; it runs before the timed ones and only its seconds are
    reported, so a first item's loads (bank, WordNet, OCR) do not count as an item's time."""
    import time

    from coe.graphs import graph, services

    warm, timed = bench.timed_items(fixture_dataset, 1, 1)
    assert len(warm) == len(timed) == 1 and warm[0].pid != timed[0].pid
    assert [i.pid for i in bench.timed_items(fixture_dataset, 1, 0)[1]] == [timed[0].pid]  # same timed item

    seen = []

    def invoke(inputs, config=None, context=None):
        seen.append(inputs["exclude_ids"][0])
        slow = len(seen) == 1  # the first item pays the loads
        time.sleep(0.3 if slow else 0.01)
        return {"trace": [{"node": "rationale", "seconds": 0.3 if slow else 0.01}]}

    class Model:
        model_id = "stand-in"

    monkeypatch.setattr(graph, "invoke", invoke)
    monkeypatch.setattr(services, "default_llm", lambda spec: Model())
    retrieval = services.Services(llm=None, retriever=None, image_reader=None)
    [row] = bench.bench_stages(["stand-in"], timed, retrieval, warm)
    assert seen == [warm[0].pid, timed[0].pid]
    assert len(row["warmup_seconds"]) == 1 and row["warmup_seconds"][0] >= 0.3
    assert row["seconds_per_item"] < 0.2 and row["stage_seconds"]["rationale"] == 0.01
