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
