"""One validated settings model: every setting reaches the graph from the CLI, a batch run and the console; an
unknown or ill-typed one is one line everywhere; the README's table is the model's."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest

from coe.errors import InputError, QuestionMismatch
from coe.graphs.settings import GraphSettings, check_settings, markdown_table, parse_assignments
from tests.batch_support import build_bank, scripted_services, write_manifest

ROOT = Path(__file__).resolve().parent.parent
FIELDS = list(GraphSettings.model_fields)


def other_value(name: str) -> Any:
    """A valid value of the setting that is not its default."""
    field = GraphSettings.model_fields[name]
    default = field.get_default(call_default_factory=True)
    if get_origin(field.annotation) is Literal:
        return next(v for v in get_args(field.annotation) if v != default)
    if field.annotation is bool:
        return not default
    if get_origin(field.annotation) is list:
        return ["val"]
    if field.annotation == bool | None:  # unset: the backend decides; the tests' text-only backends pick False
        return True
    if default is None:  # an optional number the backend decides when unset: one neither backend picks
        return 2
    step = 1 if field.annotation is int else 0.05
    high = next((m.le for m in field.metadata if getattr(m, "le", None) is not None), None)
    value = default + step if high is None or default + step <= high else default - step
    return round(value, 2) if field.annotation is float else value


def ran_with(trace: list[dict[str, Any]]) -> dict[str, Any]:
    """The settings the graph ran with, as its first step recorded them."""
    assert trace and "settings" in trace[0], trace[:1]
    return trace[0]["settings"]


def test_every_field_has_a_distinct_value_and_a_description():
    for name in FIELDS:
        value = other_value(name)
        assert value != GraphSettings.model_fields[name].get_default(call_default_factory=True)
        assert getattr(GraphSettings(**{name: value}), name) == value
        assert GraphSettings.model_fields[name].description


def test_the_readme_table_is_the_models():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- settings table: python -m coe.graphs.settings -->\n(.*?)<!-- end of settings table -->",
                      text, re.S)
    assert found, "README.md has no generated settings table"
    assert found.group(1) == markdown_table(), "README's table is out of date: python -m coe.graphs.settings"


@pytest.mark.parametrize("values,needle", [
    ({"nope": 1}, "unknown setting 'nope'"),
    ({"k": "many"}, "setting k='many': Input should be a valid integer"),
    ({"difficulty": "extreme"}, "setting difficulty='extreme': Input should be 'easy', 'medium' or 'hard'"),
    ({"key_margin": 2}, "setting key_margin=2: Input should be less than or equal to 1"),
    ({"n_distractors": 0}, "setting n_distractors=0"),
])
def test_a_bad_setting_is_one_input_error(values, needle):
    with pytest.raises(InputError, match=re.escape(needle)) as err:
        check_settings(values)
    assert "\n" not in str(err.value)


def test_assignments_read_json_text_and_lists():
    assert parse_assignments(["k=6", "verify=false", "key_margin=0.3", "difficulty=hard", "exclude_splits=val,test",
                              "mode=coe"]) == {"k": 6, "verify": False, "key_margin": 0.3, "difficulty": "hard",
                                               "exclude_splits": ["val", "test"], "mode": "coe"}
    with pytest.raises(InputError, match="--set: expected KEY=VALUE, got 'k'"):
        parse_assignments(["k"])


def test_a_configured_given_min_yes_reaches_the_given_question_check():
    from coe.generate import generate_item
    from coe.graphs import Services
    from tests.test_graph import StubReader
    from tests.verify_support import ScriptedStudent

    def services():  # the student judges the given question answered with P(yes) 0.3; no bank to decide
        return Services(llm=ScriptedStudent(lambda r: {"rationale": "Foxes eat rabbits.", "distractors": ["owl"]},
                                            prefer=lambda q, o: {"rabbit": 0.9}, yes=lambda q, o: 0.3),
                        retriever=None, image_reader=StubReader())
    given = {"image": None, "answer": "rabbit", "question": "What does the fox eat?", "n_distractors": 1,
             "use_exemplars": False, "verify": True}
    item = generate_item(services=services(), **given)  # 0.3 passes the default 0.2
    assert item.question == "What does the fox eat?"
    assert ran_with(item.trace)["given_min_yes"] == 0.2
    with pytest.raises(QuestionMismatch, match="P\\(yes\\) 0.30"):
        generate_item(services=services(), given_min_yes=0.5, **given)


# -- every setting, through each way in -------------------------------------------------------------

@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("bank")
    build_bank(path)
    return str(path)


@pytest.fixture
def scripted(bank, monkeypatch, tmp_path):
    """``coe generate`` and ``coe batch run`` get the scripted student and the fixture bank as their models."""
    from coe.graphs import services as services_module

    monkeypatch.setenv("COE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(services_module, "default_services", lambda *a, **k: scripted_services(bank))


def cli(args: list[str], capsys) -> tuple[int, str, str]:
    from coe.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(args)
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def assignment(name: str, value: Any) -> str:
    return f"{name}={json.dumps(value)}"


@pytest.mark.parametrize("name", FIELDS)
def test_each_setting_reaches_the_graph_from_coe_generate(name, scripted, capsys):
    value = other_value(name)
    code, out, err = cli(["generate", "--answer", "fox", "--context", "A meadow food chain: grass, rabbit, fox.",
                          "--set", "question_exemplars=0", "--set", assignment(name, value), "--json"], capsys)
    assert code == 0, err
    assert ran_with(json.loads(out)["trace"])[name] == value


@pytest.mark.parametrize("name", FIELDS)
def test_each_setting_reaches_the_graph_from_a_batch_run(name, scripted, capsys, tmp_path):
    from coe.batch.ledger import Ledger

    manifest = write_manifest(tmp_path / "m" / "manifest.csv", 1, image=None)
    value = other_value(name)
    code, out, err = cli(["batch", "run", str(manifest), "--out", str(tmp_path / "run"),
                          "--set", "question_exemplars=0", "--set", assignment(name, value)], capsys)
    assert code == 0, err
    with Ledger(tmp_path / "run", create=False) as ledger:
        [entry] = ledger.entries()
        recorded = ledger.meta()["settings"]
    assert recorded[name] == value  # kept with the run: a rerun must use the same settings
    assert ran_with(entry["item"]["trace"])[name] == value


@pytest.mark.parametrize("args,needle", [
    (["--set", "key_margn=0.2"], "--set: unknown setting 'key_margn'"),
    (["--set", "orders=two"], "--set: setting orders='two': Input should be a valid integer"),
    (["--difficulty", "extreme"], "setting difficulty='extreme'"),
])
@pytest.mark.parametrize("command", ["generate", "batch"])
def test_a_bad_setting_exits_2_with_one_line(command, args, needle, capsys, tmp_path):
    manifest = write_manifest(tmp_path / "m" / "manifest.csv", 1, image=None)
    base = (["generate", "--answer", "fox"] if command == "generate"
            else ["batch", "run", str(manifest), "--out", str(tmp_path / "run")])
    code, out, err = cli(base + args, capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "run").exists()  # refused before the run began


def test_every_setting_reaches_the_graph_from_the_console(monkeypatch, tmp_path):
    # one run with every setting at another value: each widget's value must reach the graph (the CLI tests
    # above take them one at a time through the same check)
    from tests.tiers import require

    require("streamlit", "real_parts")
    from tests.test_ui_app import generate, new_app, run_of
    from coe.ui.settings_form import OWN_WIDGET, PREFIX

    monkeypatch.setenv("COE_SERVICES", "tests.ui_support:services")
    monkeypatch.setenv("COE_HOME", str(tmp_path / "home"))
    app = new_app()
    expected = {}
    for name in FIELDS:
        value = other_value(name)
        key = OWN_WIDGET.get(name, PREFIX + name)
        if name == "write_notes":  # the console writes notes by default: the setting's other value is its default
            app.checkbox(key=key).uncheck()
            value = False
        elif GraphSettings.model_fields[name].annotation == bool | None:  # on, off or "by backend"
            app.selectbox(key=key).set_value(value)
        elif isinstance(value, bool):
            app.checkbox(key=key).check() if value else app.checkbox(key=key).uncheck()
        elif isinstance(value, list):
            app.text_input(key=key).input(", ".join(value))
        elif isinstance(value, str):
            app.selectbox(key=key).set_value(value)
        else:
            app.number_input(key=key).set_value(value)
        expected[name] = value
    app.run()
    generate(app, variant="Full CoE", context="A meadow food chain: grass, rabbit, fox.")
    assert not app.error, [e.value for e in app.error]
    ran = ran_with(run_of(app).values()["trace"])
    assert {name: ran[name] for name in FIELDS} == expected


def test_the_console_shows_a_bad_setting_in_one_line(monkeypatch, tmp_path):
    from tests.tiers import require

    require("streamlit", "real_parts")
    from coe.ui import resources
    from tests.test_ui_app import new_app, run_of
    from tests.conftest import FIXTURE

    monkeypatch.setenv("COE_SERVICES", "tests.ui_support:services")
    monkeypatch.setenv("COE_HOME", str(tmp_path / "home"))
    # the widgets only offer valid values: a variant is where a bad one could still come from
    monkeypatch.setitem(resources.VARIANTS, "Full CoE", {**resources.VARIANTS["Full CoE"], "orders": 0})
    app = new_app()
    app.file_uploader(key="upload").upload("chain.png", (FIXTURE / "images/test/7/image.png").read_bytes(),
                                           "image/png")
    app.text_input(key="answer").input("rabbit").run()
    app.button(key="generate").click().run()
    assert run_of(app) is None
    [error] = [e.value for e in app.error]
    assert "orders=0" in error and "greater than or equal to 1" in error and "\n" not in error


def test_the_served_graph_loads_its_models_on_the_first_run_and_takes_its_settings_as_context(monkeypatch):
    import importlib

    from pydantic import ValidationError

    monkeypatch.setenv("COE_SERVICES", "tests.ui_support:services")
    import coe.graphs.server as server

    server = importlib.reload(server)
    assert server.served_services.cache_info().currsize == 0  # nothing loaded on import
    item = {"answer": "rabbit", "context": "A meadow food chain: grass, rabbit, fox.", "n_distractors": 2}
    out = server.graph.invoke(item, context={"difficulty": "hard", "write_notes": True, "key_margin": 0.3})
    assert server.served_services.cache_info().currsize == 1
    settings = ran_with(out["trace"])
    assert (settings["difficulty"], settings["write_notes"], settings["key_margin"]) == ("hard", True, 0.3)
    assert len(out["distractor_notes"]) == 2  # the setting took effect, not only its record
    with pytest.raises(ValidationError, match="difficulty"):
        server.graph.invoke(item, context={"difficulty": "extreme"})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        server.graph.invoke(item, context={"nope": 1})
