"""Progress written to a pipe (``coe eval ... 2>&1 | tee log``, CI logs) keeps coming as plain lines with the
count, elapsed time and ETA, not a first ``0/30`` and then silence until the next quarter."""

import re
import subprocess
import sys
import time

SCRIPT = """
import sys, time
from rich.console import Console
from coe.progress import make_progress

console = Console(stderr=True)
assert not console.is_terminal
with make_progress(console=console, every_s=0.3) as bar:
    slow = bar.add_task("dg/coe", total=100)
    for i in range(1, 41):
        time.sleep(0.05)
        bar.update(slow, completed=i)
    quick = bar.add_task("dg/copy", total=3)
    for i in range(1, 4):
        bar.advance(quick)
print("end", file=sys.stderr, flush=True)
"""

LINE = re.compile(r"^(dg/\w+): (\d+)/(\d+) \((\d+) %\), (\d+)m(\d\d)s elapsed(, ETA (\d+)m(\d\d)s)?$")


def test_piped_progress_keeps_reporting_with_eta():
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    arrivals = []
    start = time.monotonic()
    for line in proc.stderr:
        arrivals.append((time.monotonic() - start, line.rstrip("\n")))
    assert proc.wait() == 0, arrivals  # stderr is closed: it has ended
    assert arrivals[-1][1] == "end"
    parsed = [LINE.match(text) for _, text in arrivals[:-1]]
    assert all(parsed), arrivals
    slow = [(at, m) for (at, _), m in zip(arrivals, parsed) if m[1] == "dg/coe"]
    counts = [int(m[2]) for _, m in slow]
    assert counts[0] == 0 and counts == sorted(set(counts)), counts
    # 40 of 100 done over 2 s: the 25 % step alone would give two lines; every 0.3 s gives several more
    assert len(counts) >= 5, counts
    assert slow[-1][0] - slow[1][0] > 0.5, slow  # they arrived over time, not in one burst at the end
    for _, m in slow[1:]:
        done, total = int(m[2]), int(m[3])
        assert m[7] is not None, m[0]  # an ETA while work remains
        assert int(m[4]) == round(100 * done / total)
    copy = [m for m in parsed if m[1] == "dg/copy"]
    assert [int(m[2]) for m in copy][-1] == 3 and copy[-1][4] == "100" and copy[-1][7] is None
