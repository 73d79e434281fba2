"""``coe bench --compare REF``: the reference path and the current one timed on the same items in one run.

REF is a git commit (any commit-ish) or settings (``KEY=VALUE[,KEY=VALUE]``: graph settings such as
``write_notes=true``, or ``COE_*`` environment variables) that the reference arm runs with. Each arm is a
worker process (``compare_worker.py``, the same file for both) importing its own ``coe``: a commit's tree is
exported with ``git archive`` into a temporary folder, the current arm is this working tree. The arms take
the items in turns, never at the same time, and the first arm alternates from item to item, so a burst of
load elsewhere on the machine falls on both."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

from coe.errors import InputError

ROOT = Path(__file__).resolve().parent.parent  # this working tree (the package dirs sit at its top)
WORKER = Path(__file__).resolve().parent / "compare_worker.py"
_ENV_KEY = re.compile(r"^COE_[A-Z0-9_]+$")


@dataclass
class Arm:
    name: str
    root: Path
    label: str
    configurable: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


def _git(*args: str) -> str:
    proc = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if proc.returncode:
        raise InputError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"git {args[0]} failed")
    return proc.stdout.strip()


def parse_settings(ref: str) -> tuple[dict[str, Any], dict[str, str]]:
    """``KEY=VALUE,...`` → (graph settings, environment): ``COE_*`` keys are environment variables, the others
    graph settings, read and checked as ``coe generate --set`` reads them."""
    from coe.graphs.settings import parse_assignments

    parts = [p.strip() for p in ref.split(",") if p.strip()]
    env = {key.strip(): value for key, _, value in (p.partition("=") for p in parts) if _ENV_KEY.match(key.strip())}
    configurable = parse_assignments(
        [p for p in parts if not _ENV_KEY.match(p.partition("=")[0].strip())], where="--compare: "
    )
    return configurable, env


def current_label() -> str:
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (InputError, OSError):
        return f"current ({ROOT})"
    return f"current (HEAD {head}{' + uncommitted changes' if dirty else ''})"


def arms_for(ref: str, stack: ExitStack) -> tuple[Arm, Arm]:
    """(reference, current). A commit's tree is exported (tracked files only) into a folder that the
    ``stack`` removes at the end."""
    ref = ref.strip()
    if not ref:
        raise InputError("--compare needs a git commit or KEY=VALUE settings")
    current = Arm("current", ROOT, current_label())
    if "=" in ref:
        configurable, env = parse_settings(ref)
        return Arm("reference", ROOT, f"settings {ref}", configurable, env), current
    commit = resolve_commit(ref, settings_too=True)
    tree = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="coe-compare-"))) / "tree"
    export_tree(commit, tree)
    return Arm("reference", tree, f"{ref} ({commit[:10]})"), current


def resolve_commit(ref: str, *, settings_too: bool = False) -> str:
    try:
        return _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except InputError:
        what = "neither a git commit here nor KEY=VALUE settings" if settings_too else "not a git commit here"
        raise InputError(f"--compare: {ref!r} is {what}") from None


def export_tree(commit: str, dest: Path) -> None:
    """The commit's tracked files in ``dest`` (absent before), whole or not at all: the archive is unpacked
    beside it and renamed into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=dest.parent) as tmp:
        archive = Path(tmp) / "tree.tar"
        with archive.open("wb") as out:
            proc = subprocess.run(
                ["git", "-C", str(ROOT), "archive", "--format=tar", commit],
                stdout=out,
                stderr=subprocess.PIPE,
                text=True,
            )
        if proc.returncode:
            raise InputError(f"--compare: cannot export {commit[:10]}: {proc.stderr.strip()}")
        with tarfile.open(archive) as tar:
            tar.extractall(Path(tmp) / "tree", filter="data")
        os.replace(Path(tmp) / "tree", dest)


class Worker:
    """One arm's process; ``ask`` sends one request and waits for its answer."""

    def __init__(self, arm: Arm, mode: str, model: str, log: Path, env: dict[str, str]) -> None:
        self.arm, self.log = arm, log
        env = {**os.environ, **env, **arm.env, "PYTHONUNBUFFERED": "1"}
        env.pop("PYTHONPATH", None)  # the tree is chosen by --root alone
        self._log = log.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, "-P", str(WORKER), "--root", str(arm.root), "--mode", mode, "--model", model],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
        )
        # both PIPE above, so both are there
        self._to, self._from = cast(IO[str], self.proc.stdin), cast(IO[str], self.proc.stdout)
        self.coe = self._read()["coe"]

    def _read(self) -> dict[str, Any]:
        line = self._from.readline()
        if not line:
            self.proc.wait()
            tail = self.log.read_text("utf-8", errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise InputError(f"--compare: the {self.arm.name} arm ({self.arm.label}) stopped: {tail[0]}")
        msg = json.loads(line)
        if "error" in msg:
            raise InputError(f"--compare: the {self.arm.name} arm ({self.arm.label}) failed: {msg['error']}")
        return msg

    def ready(self) -> dict[str, Any]:
        return self._read()

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        self._to.write(json.dumps(request) + "\n")
        self._to.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self._to.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def compare(
    ref: str,
    *,
    mode: str,
    model: str = "",
    requests: list[dict[str, Any]],
    warmup: list[dict[str, Any]] | None = None,
    env: dict[str, str] | None = None,
    progress=None,
) -> dict[str, Any]:
    """Run ``requests`` (graph inputs for ``items``, retrieval queries for ``retrieval``) through both arms;
    ``warmup`` (``items`` only) goes through each arm first and counts only as ``warmup_seconds``; ``env``:
    environment for both (the reference's own settings go on top)."""
    with ExitStack() as stack:
        ref_arm, cur_arm = arms_for(ref, stack)
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="coe-compare-logs-")))
        workers: list[Worker] = []
        for arm in (ref_arm, cur_arm):
            workers.append(Worker(arm, mode, model, logs / f"{arm.name}.log", env or {}))
            stack.callback(workers[-1].close)
        ready = [w.ready() for w in workers]

        def arm_requests(arm: Arm, given: list[dict[str, Any]]) -> list[dict[str, Any]]:
            if mode != "items":
                return [{"query": r} for r in given]
            return [{"input": r["input"], "configurable": {**r["configurable"], **arm.configurable}} for r in given]

        arm_pairs = list(zip((ref_arm, cur_arm), workers))
        reqs = [arm_requests(arm, requests) for arm, _ in arm_pairs]
        warm = [[w.ask(r)["seconds"] for r in arm_requests(arm, warmup or [])] for arm, w in arm_pairs]
        answers: tuple[list, list] = ([], [])
        for n in range(len(requests)):
            # each request to both arms, one after the other, the first arm alternating (ABBA...)
            for side in (0, 1) if n % 2 == 0 else (1, 0):
                answers[side].append(workers[side].ask(reqs[side][n]))
            if progress:
                progress(n + 1, len(requests))
        arms = [
            {
                "arm": arm.name,
                "label": arm.label,
                "coe": w.coe,
                "model": r.get("model", ""),
                "load_seconds": r.get("load_seconds", 0.0),
                "warmup_seconds": ws,
                **summarise(mode, a),
            }
            for arm, w, r, a, ws in zip((ref_arm, cur_arm), workers, ready, answers, warm)
        ]
    return {"ref": ref, "mode": mode, "n": len(requests), "arms": arms, "ratio": ratios(mode, *arms)}


def summarise(mode: str, answers: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = [a["seconds"] for a in answers]
    if mode == "retrieval":
        ms = np.array(seconds) * 1000
        return {
            "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(ms.mean()),
        }
    steps = sorted({s for a in answers for s in a["steps"]})
    tokens: dict[str, dict[str, float]] = {}
    for a in answers:
        for step, counts in a["tokens"].items():
            for name, n in counts.items():
                tokens.setdefault(step, {})[name] = tokens.setdefault(step, {}).get(name, 0) + n / len(answers)
    return {
        "seconds_per_item": float(np.mean(seconds)),
        "failed": sum(bool(a["failed"]) for a in answers),
        "step_seconds": {s: float(np.mean([a["steps"].get(s, 0.0) for a in answers])) for s in steps},
        "step_tokens": tokens,
        "llama": llama_rates(answers),
    }


def llama_rates(answers: list[dict[str, Any]]) -> dict[str, float] | None:
    """Decode and prompt-evaluation tokens per second from llama.cpp's own counters (their time excludes
    sampling and grammar work); None for a backend without them."""
    perf = [a["llama_perf"] for a in answers if a.get("llama_perf")]
    if not perf:
        return None
    tot = {k: sum(p[k] for p in perf) for k in perf[0]}
    return {
        "decode_tokens_per_s": tot["decode_n"] / (tot["decode_ms"] / 1000) if tot["decode_ms"] else None,
        "prompt_tokens_per_s": tot["prompt_n"] / (tot["prompt_ms"] / 1000) if tot["prompt_ms"] else None,
        "decode_tokens_per_item": tot["decode_n"] / len(answers),
        "prompt_tokens_evaluated_per_item": tot["prompt_n"] / len(answers),
    }


def ratios(mode: str, ref: dict[str, Any], cur: dict[str, Any]) -> dict[str, float | None]:
    """Reference time over current time: above 1, the current path is faster."""

    def div(a, b):
        return a / b if b else None

    if mode == "retrieval":
        return {k: div(ref[k], cur[k]) for k in ("p50_ms", "p95_ms", "mean_ms")}
    out = {"seconds_per_item": div(ref["seconds_per_item"], cur["seconds_per_item"])}
    for step in sorted(set(ref["step_seconds"]) | set(cur["step_seconds"])):
        out[step] = div(ref["step_seconds"].get(step, 0.0), cur["step_seconds"].get(step, 0.0))
    return out
