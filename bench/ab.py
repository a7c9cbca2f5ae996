"""Two builds side by side: both loaded at the same moment, on one CPU, so the noise falls on both.

Measured one after the other, a build's CPU a request moves here by a fifth from one minute to the
next (the host's other tenants), which buries a change of 5 to 10 µs. Loaded at once and taking
turns on one CPU, the two see the same moment: each round's difference repeats within a few µs.
The levels are higher than a server alone spends (two processes share one CPU's caches), so read
the difference, not the level.

``python -m bench.ab PID=URL PID=URL [--rounds 6] [--seconds 3] [--conns 16]``

Each PID is a server, both pinned to one CPU beforehand (``taskset -a -p -c 1 PID``); each URL
is a ``generateContent`` it serves (the bench's body and client key are sent). wrk runs on the
other CPUs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench.layers import cpu_s
from bench.run import split_cpus, write_lua


def _requests(out: str) -> int:
    for line in out.splitlines():
        if " requests in " in line:
            return int(line.split()[0])
    raise ValueError(f"no request count in wrk's output: {out[-300:]}")


def one_round(targets: list[tuple[int, str]], seconds: int, conns: int, lua: Path) -> list[float]:
    """Load every target at once for ``seconds``; the µs of CPU each spent a request."""
    before = [cpu_s(pid) for pid, _ in targets]
    loads = [
        subprocess.Popen(
            ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "-s", str(lua), url],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _, url in targets
    ]
    outs = [load.communicate(timeout=seconds + 30)[0] for load in loads]
    spent = [cpu_s(pid) - start for (pid, _), start in zip(targets, before, strict=True)]
    return [round(cpu / _requests(out) * 1e6, 1) for cpu, out in zip(spent, outs, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("targets", nargs=2, metavar="PID=URL")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--conns", type=int, default=16)
    args = parser.parse_args()
    targets = [(int(pid), url) for pid, _, url in (t.partition("=") for t in args.targets)]
    os.sched_setaffinity(0, split_cpus()["load"])  # wrk inherits it
    rows: list[list[float]] = []
    with tempfile.TemporaryDirectory() as work:
        lua = write_lua(Path(work) / "post.lua")
        for number in range(1, args.rounds + 1):
            a, b = one_round(targets, args.seconds, args.conns, lua)
            rows.append([a, b])
            print(f"round {number}: A {a} µs  B {b} µs  B - A {b - a:+.1f} µs", flush=True)
    a_median = statistics.median(r[0] for r in rows)
    b_median = statistics.median(r[1] for r in rows)
    difference = statistics.median(r[1] - r[0] for r in rows)
    print(f"median: A {a_median} µs  B {b_median} µs  B - A {difference:+.1f} µs a request")


if __name__ == "__main__":
    main()
