"""One arm of ``coe bench --compare``: a process that runs the ``coe`` of one source tree and times what it
is sent. Both arms run this same file (from the current tree), so the harness, the timing and the reading of
the trace are the same for both; only the ``coe`` package they import differs.

Run as a script, never imported: ``python -P compare_worker.py --root TREE``. It maps the ``coe`` packages to
TREE's folders (by TREE's own pyproject.toml) ahead of the installed one, says which file it imported, then
answers one JSON request per line on stdin with one JSON line on stdout until stdin closes. Everything
else that writes to stdout (libraries, llama.cpp) is sent to stderr.

``--mode cli -- ARGS`` runs TREE's own command line instead (``coe ARGS``), as ``coe eval --compare`` does
for the reference's evaluation."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tomllib
from importlib.abc import MetaPathFinder
from importlib.util import spec_from_file_location
from pathlib import Path


class TreeFinder(MetaPathFinder):
    """The packages a tree's ``[tool.setuptools.package-dir]`` maps (``coe.agents`` → ``agents/``), as an
    editable install maps them, but to this tree; subpackages follow from their parent's ``__path__``."""

    def __init__(self, root: Path) -> None:
        conf = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))
        dirs = conf.get("tool", {}).get("setuptools", {}).get("package-dir", {})
        self.dirs = {name: root / d for name, d in dirs.items()}

    def find_spec(self, name, path=None, target=None):
        folder = self.dirs.get(name)
        if folder is None or not (folder / "__init__.py").is_file():
            return None
        return spec_from_file_location(name, folder / "__init__.py", submodule_search_locations=[str(folder)])


def _usage(entry, out: dict[str, float]) -> None:
    """Sum every number found in a ``usage`` mapping anywhere in one trace entry (each model call's usage
    appears once: under the call, or under the step for a one-call step)."""
    if isinstance(entry, dict):
        for key, value in entry.items():
            if key == "usage" and isinstance(value, dict):
                for name, n in value.items():
                    if isinstance(n, (int, float)) and not isinstance(n, bool):
                        out[name] = out.get(name, 0) + n
            else:
                _usage(value, out)
    elif isinstance(entry, list):
        for value in entry:
            _usage(value, out)


def step_tokens(entry: dict) -> dict[str, float]:
    found: dict[str, float] = {}
    _usage(entry, found)
    # A step's own tally (every context of the backend, scoring included) beats the sum of its calls; a
    # verification entry reports its scoring prompt tokens beside its calls instead of under "usage".
    for name in ("prompt_tokens_evaluated", "prompt_tokens_reused", "prompt_tokens", "completion_tokens"):
        if isinstance(entry.get(name), (int, float)) and (name.startswith("prompt_tokens_") or name not in found):
            found[name] = entry[name]
    return found


def perf_counters(llm) -> dict[str, float] | None:
    """llama.cpp's own counters over the plugin's contexts (generation and scoring): milliseconds and tokens
    of prompt evaluation and of decoding. None for another backend."""
    try:
        import llama_cpp
    except ImportError:
        return None
    total = {"prompt_ms": 0.0, "prompt_n": 0, "decode_ms": 0.0, "decode_n": 0}
    found = False
    for name in ("_llm", "_scorer"):
        ctx = getattr(getattr(llm, name, None), "ctx", None)
        if ctx is None:
            continue
        data = llama_cpp.llama_perf_context(ctx)
        total["prompt_ms"] += data.t_p_eval_ms
        total["prompt_n"] += data.n_p_eval
        total["decode_ms"] += data.t_eval_ms
        total["decode_n"] += data.n_eval
        found = True
    return total if found else None


def _items(args, send) -> None:
    from coe.errors import ModelOutputError
    from coe.graphs import graph
    from coe.graphs.services import Services, default_llm, retrieval_services

    t0 = time.perf_counter()
    llm = default_llm(args.model)
    base = retrieval_services()
    services = Services(llm=llm, retriever=base.retriever, image_reader=base.image_reader)
    send({"ready": True, "model": getattr(llm, "model_id", args.model), "load_seconds": time.perf_counter() - t0})
    for line in sys.stdin:
        req = json.loads(line)
        before = perf_counters(llm)
        t1 = time.perf_counter()
        try:
            out = graph.invoke(req["input"], config={"configurable": req["configurable"]}, context=services)
            trace, failed = out["trace"], ""
        except ModelOutputError as exc:  # the item failed loudly, as it may; its time still counts
            trace, failed = [], str(exc)
        seconds = time.perf_counter() - t1
        steps: dict[str, float] = {}
        tokens: dict[str, dict[str, float]] = {}
        for entry in trace:
            node = entry.get("node", "?")
            steps[node] = steps.get(node, 0.0) + float(entry.get("seconds", 0.0) or 0.0)
            have = tokens.setdefault(node, {})
            for name, n in step_tokens(entry).items():
                have[name] = have.get(name, 0) + n
        after = perf_counters(llm)
        perf = {k: after[k] - before[k] for k in after} if before and after else None
        if perf and min(perf.values()) < 0:  # a context was rebuilt or reset meanwhile: no honest figure
            perf = None
        send({"seconds": seconds, "steps": steps, "tokens": tokens, "failed": failed, "llama_perf": perf})


def _retrieval(args, send) -> None:
    from coe.graphs.services import retrieval_services
    from coe.retrieval.retriever import RetrievalQuery

    t0 = time.perf_counter()
    retriever = retrieval_services().retriever
    if retriever is None:
        from coe.errors import ConfigError

        raise ConfigError("the retrieval services have no retriever")
    retriever.retrieve(RetrievalQuery(answer="warm-up", question="Which loads the bank?"))  # not timed
    send({"ready": True, "model": "", "load_seconds": time.perf_counter() - t0})
    for line in sys.stdin:
        q = RetrievalQuery(**json.loads(line)["query"])
        t1 = time.perf_counter()
        retriever.retrieve(q)
        send({"seconds": time.perf_counter() - t1})


def tree_coe(root: Path) -> Path:
    """Import ``coe`` from TREE (ahead of the installed one) and say which file it came from."""
    sys.meta_path.insert(0, TreeFinder(root))
    import coe

    where = Path(coe.__file__).resolve()
    if not where.is_relative_to(root):
        raise ImportError(f"coe was imported from {where}, not from {root}")
    return where


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--mode", choices=("items", "retrieval", "cli"), required=True)
    parser.add_argument("--model", default="")
    parser.add_argument("cli_args", nargs="*", help="--mode cli: the arguments of TREE's coe command")
    args = parser.parse_args()
    root = Path(args.root).resolve()
    if args.mode == "cli":
        import runpy

        tree_coe(root)

        sys.argv = ["coe", *args.cli_args]
        runpy.run_module("coe.cli", run_name="__main__", alter_sys=True)  # TREE's `python -m coe.cli ARGS`
        return
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # stray prints, from Python or C, go to the log instead of the protocol
    sys.stdout = sys.stderr

    def send(message: dict) -> None:
        protocol.write(json.dumps(message, default=float) + "\n")

    try:
        send({"coe": str(tree_coe(root))})
        (_items if args.mode == "items" else _retrieval)(args, send)
    except Exception as exc:  # reported to the parent in one line; the traceback is in the log
        import traceback

        traceback.print_exc()
        send({"error": f"{type(exc).__name__}: {exc}"})
        sys.exit(1)


if __name__ == "__main__":
    main()
