"""Sampling, variants, resumable caching and the report, on the fixture with the scripted backend."""

import json

from coe.eval.items import EvalItem, load_items, sample
from coe.eval.report import write_report
from coe.eval.runner import run_variant
from coe.eval.scoring import Scorer, aggregate
from coe.graphs import Services
from tests.conftest import HashEmbedder
from tests.verify_support import ScriptedStudent


def _item(pid, ctype, subject):
    return EvalItem(pid=str(pid), split="test", question="q", answer="a", gold_distractors=["b"], context="",
                    image_path=None, dataset_image_text="", gold_rationale="", subject=subject,
                    grade_band="unknown", context_type=ctype)


def test_stratified_sample_is_proportional_and_deterministic():
    items = [_item(i, "IMG" if i < 60 else "TXT" if i < 90 else "NO", None) for i in range(100)]
    a = sample(items, 10, stratify=True, seed=1)
    assert [i.pid for i in a] == [i.pid for i in sample(items, 10, stratify=True, seed=1)]
    kinds = [i.context_type for i in a]
    assert (kinds.count("IMG"), kinds.count("TXT"), kinds.count("NO")) == (6, 3, 1)
    assert len(sample(items, 500)) == 100


def test_items_from_fixture(fixture_dataset):
    items = {i.pid: i for i in load_items(fixture_dataset, "test", "dg")}
    assert items["7"].context_type in ("IMG", "IMG+TXT") and items["7"].gold_distractors
    assert items["8"].context_type in ("TXT", "NO")


class Reader:
    name = "stub"

    def describe(self, image, source_path=None):
        from coe.plugins.vision.protocol import ImageText
        return ImageText(ocr_text="grass rabbit fox", source="stub")


def test_variants_cache_and_resume(tmp_path, fixture_dataset, fixture_index):
    items = load_items(fixture_dataset, "test", "dg")
    calls = []

    def reply(request):
        calls.append(request)
        task = request.messages[-1].content
        if "distractors" in task:
            n = request.json_schema["properties"]["distractors"]["minItems"]
            return {"distractors": [f"wrong {i}" for i in range(n)]}
        return {"rationale": "Because it is so."}
    services = Services(llm=ScriptedStudent(reply), retriever=fixture_index, image_reader=Reader())
    first = run_variant("dg", "coe", items, services, "scripted", cache=tmp_path)
    assert first["computed"] == len(items) and calls
    n_calls = len(calls)
    again = run_variant("dg", "coe", items, services, "scripted", cache=tmp_path)
    assert again["cached"] == len(items) and len(calls) == n_calls  # nothing recomputed
    assert again["predictions"] == first["predictions"]
    no_cot = run_variant("dg", "no-cot", items, services, "scripted", cache=tmp_path)
    assert no_cot["config_id"] != first["config_id"]
    assert all(p.get("rationale") is None for p in no_cot["predictions"].values())
    copy = run_variant("dg", "copy", items, services, "scripted", cache=tmp_path)
    assert all(isinstance(p["distractors"], list) for p in copy["predictions"].values())
    # the same variant over an index read with another encoder is not answered from the cache
    fixture_index.embedder.model_id = "another-encoder"
    other = run_variant("dg", "coe", items, services, "scripted", cache=tmp_path)
    assert other["computed"] == len(items) and len(calls) > n_calls


def test_interrupted_run_keeps_finished_items(tmp_path, fixture_dataset, fixture_index):
    items = load_items(fixture_dataset, "test", "dg")
    assert len(items) >= 2

    def boom_on_second(request, state={"n": 0}):
        if "rationale" in request.messages[-1].content.rsplit("</image_text>", 1)[-1]:
            state["n"] += 1
            if state["n"] == 2:
                raise KeyboardInterrupt
            return {"rationale": "Because."}
        n = request.json_schema["properties"]["distractors"]["minItems"]
        return {"distractors": [f"x{i}" for i in range(n)]}
    services = Services(llm=ScriptedStudent(boom_on_second), retriever=fixture_index, image_reader=Reader())
    try:
        run_variant("dg", "coe", items, services, "scripted", cache=tmp_path)
    except KeyboardInterrupt:
        pass
    cached = list((tmp_path / "dg").glob("coe-*/*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["distractors"]
    assert not list((tmp_path / "dg").glob("coe-*/*.tmp"))


def test_scores_and_report(tmp_path, fixture_dataset):
    items = load_items(fixture_dataset, "test", "dg")
    scorer = Scorer(HashEmbedder())
    perfect = {i.pid: {"distractors": i.gold_distractors} for i in items}
    rows = [(i, scorer.score("dg", i, perfect[i.pid])) for i in items]
    agg = aggregate(rows)
    assert agg["overall"]["bleu4"] > 0.99 and agg["overall"]["recall_exact"] == 1.0 and agg["overall"]["valid"] == 1.0
    broken = aggregate([(i, scorer.score("dg", i, {"distractors": None})) for i in items])
    assert broken["overall"]["parse_failure"] == 1.0 and broken["overall"]["valid"] == 0.0
    runs = [{"task": "dg", "variant": "coe", "scores": agg, "item_seconds": 1.0, "config_id": "coe-x"},
            {"task": "dg", "variant": "copy", "scores": broken, "item_seconds": 0.1, "config_id": "copy-x"}]
    meta = {"split": "test", "tasks": ["dg"], "n_items": len(items), "stratify": True, "seed": 0, "model": "m",
            "machine": {"cpus": 2}, "wall_seconds": 1.0, "command": "coe eval", "embed_threshold": 0.85}
    path = write_report(tmp_path / "rep", runs, meta)
    text = path.read_text()
    assert "| coe |" in text and "not BLEURT" in text and "0.393" in text and "Targets" in text
    assert "| 1.000 [1.00, 1.00] |" in text  # overall means carry their bootstrap interval
    assert (tmp_path / "rep" / "dg_overall.png").stat().st_size > 1000
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["meta"]["n_items"] == len(items)


def test_report_breaks_scores_down_by_question_template(tmp_path):
    def item(pid, question, answer):
        return EvalItem(pid=str(pid), split="test", question=question, answer=answer, gold_distractors=["x", "y"],
                        context="", image_path=None, dataset_image_text="", gold_rationale="", subject=None,
                        grade_band="unknown", context_type="NO")

    items = [item(1, "What is the capital of Utah?", "Salt Lake City"), item(2, "What is the capital of Ohio?",
             "Columbus"), item(3, "What is the capital of Iowa?", "Des Moines"), item(4, "Which is harder?", "rock")]
    recalls = [1.0, 0.5, 0.0, 1.0]
    agg = aggregate([(it, {"recall_exact": r, "bleu4": r, "rougeL": r}) for it, r in zip(items, recalls)])
    by = agg["breakdowns"]["template"]
    assert by["what is capital of qqname"]["n"] == 3 and by["what is capital of qqname"]["recall_exact"] == 0.5
    assert by["which is harder"]["recall_exact"] == 1.0
    runs = [{"task": "dg", "variant": "learned", "scores": agg, "item_seconds": 1.0, "config_id": "l"}]
    meta = {"split": "test", "tasks": ["dg"], "n_items": 4, "stratify": False, "seed": 0, "model": "m",
            "machine": {"cpus": 2}, "wall_seconds": 1.0, "command": "coe eval", "embed_threshold": 0.85}
    text = write_report(tmp_path / "rep", runs, meta).read_text()
    section = text.split("### DG by question template")[1]
    assert section.index("`what is capital of qqname` | 3 | 0.500") < section.index("`which is harder` | 1 | 1.000")


def test_pool_coverage_counts_gold_options_offered(fixture_dataset, fixture_index):
    from coe.eval.diagnostics import pool_coverage
    items = load_items(fixture_dataset, "test", "dg")
    services = Services(llm=None, retriever=fixture_index, image_reader=Reader())
    cov = pool_coverage(items, services, {})
    assert cov["gold"] == sum(len(i.gold_distractors) for i in items)
    assert 0.0 <= cov["gold_in_top_n"] <= cov["gold_in_pool"] <= 1.0


def test_learned_pool_coverage_per_template_adds_up_to_the_whole(fixture_dataset, fixture_index):
    from coe.eval.diagnostics import learned_pool_coverage
    items = load_items(fixture_dataset, "test", "dg")
    services = Services(llm=None, retriever=fixture_index, image_reader=Reader())
    cov = learned_pool_coverage(items, services, {})
    by = cov["by_template"]
    assert set(by) == {i.template for i in items}
    assert sum(t["gold"] for t in by.values()) == cov["gold"] == sum(len(i.gold_distractors) for i in items)
    assert abs(sum(t["union"] * t["gold"] for t in by.values()) / cov["gold"] - cov["union"]) < 1e-9


def test_variant_with_settings_runs_beside_its_base(tmp_path, fixture_dataset, fixture_index):
    """``coe:k=1`` is the default graph with one exemplar in its prompts, cached apart from ``coe``."""
    items = load_items(fixture_dataset, "test", "rg")
    shown = {}

    def reply(request):
        shown.setdefault(reply.variant, []).append(request.messages[-1].content.count("<example "))
        return {"rationale": "Because it is so."}
    services = Services(llm=ScriptedStudent(reply), retriever=fixture_index, image_reader=Reader())
    reply.variant = "coe"
    base = run_variant("rg", "coe", items, services, "scripted", cache=tmp_path)
    reply.variant = "coe:k=1"
    fewer = run_variant("rg", "coe:k=1", items, services, "scripted", cache=tmp_path)
    assert max(shown["coe"]) > 1 and set(shown["coe:k=1"]) == {1}
    assert fewer["config_id"] != base["config_id"] and fewer["computed"] == len(items)
    assert fewer["config_id"].startswith("coe-")  # a portable folder name


def test_variant_spec_errors_are_one_line():
    import pytest

    from coe.errors import InputError
    from coe.eval.command import parse_variants

    assert parse_variants("copy, coe:k=2:orders=1") == ["copy", "coe:k=2:orders=1"]
    for bad, says in [("copy:k=2", "takes no settings"), ("coe:nope=1", "nope"), ("coe:k", "KEY=VALUE"),
                      ("coe:k=-1", "k"), ("fancy", "unknown variant")]:
        with pytest.raises(InputError, match=says):
            parse_variants(bad)


def test_eval_reports_a_variant_with_settings_against_its_base(tmp_path, fixture_index, monkeypatch):
    from rich.console import Console

    from coe.eval import command
    from coe.graphs import services as services_module
    from coe.graphs.services import Retrieval
    from tests.conftest import FIXTURE

    monkeypatch.setenv("COE_EVAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(services_module, "retrieval_services", lambda banks=None: Retrieval(fixture_index, Reader()))
    result = command.run(task="dg", split="test", limit=None, stratify=False, model=None,
                         variants="pool-rank,pool-rank:pool_k=1", report=None, data=str(FIXTURE), seed=3,
                         console=Console(file=open(tmp_path / "log", "w")), resamples=50)
    assert [r["variant"] for r in result["runs"]] == ["pool-rank", "pool-rank:pool_k=1"]
    paired = [n for n in result["meta"]["notes"] if "`pool-rank:pool_k=1` − `pool-rank`" in n]
    assert len(paired) == 1 and "recall_exact" in paired[0]


def test_a_changed_default_setting_is_another_cached_configuration(monkeypatch):
    from coe.eval.runner import config_id
    from coe.graphs import settings

    class ChangedDefault(settings.GraphSettings):
        k: int = 7

    before = config_id("rg", "val", "coe", "m")
    monkeypatch.setattr(settings, "GraphSettings", ChangedDefault)
    assert config_id("rg", "val", "coe", "m") != before
