"""The layer budget: CPU per request for aiohttp's floor, then the proxy with its layers added
one at a time. CPU is read from the process (``/proc/PID/stat``: user + system time) over a
fixed load, and divided by the requests it served: not inferred from throughput.

``python -m bench.layers serve --config FILE --port N --only a,b`` runs the proxy with only the
named middleware layers (the handler, with rotation, the responder and usage reading, is always
there): ``make bench`` starts one such process a step.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Added in this order, each on top of the ones before (outermost last, as a request meets them
# first): what a row's delta shows is what that layer costs.
STEPS: tuple[tuple[str, str], ...] = (
    ("handler (rotation, responder, usage)", ""),
    ("+ errors", "errors"),
    ("+ CORS", "browser"),
    ("+ auth", "auth"),
    ("+ client limits", "client_limits"),
    ("+ admission", "admission"),
    ("+ ledger", "ledger"),
    ("+ telemetry (Prometheus, counters, tracing at 1 %)", "telemetry"),
)
TICK = os.sysconf("SC_CLK_TCK")


def layers_upto(name: str) -> list[str]:
    """The layers of every step up to the one called ``name``."""
    out: list[str] = []
    for step, layer in STEPS:
        out += [layer] if layer else []
        if step == name:
            return out
    raise KeyError(name)


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def measure(pid: int, load: Callable[[], dict[str, Any]]) -> dict[str, float]:
    """Run ``load`` (a wrk run) and read what it cost ``pid``: µs of CPU a request."""
    before = cpu_s(pid)
    result = load()
    spent = cpu_s(pid) - before
    requests = result["requests"]
    return {
        "cpu_us_per_request": round(spent / requests * 1e6, 1) if requests else 0.0,
        "rps": result["rps"],
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| layers | µs CPU / request | added | RPS |", "|---|---|---|---|"]
    last = None
    for row in rows:
        us = row["cpu_us_per_request"]
        added = "" if last is None else f"{us - last:+.1f}"
        lines.append(f"| {row['name']} | {us:.1f} | {added} | {row['rps']} |")
        last = us
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("--config", required=True)
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--only", default="")
    args = parser.parse_args()
    from proxy.config import load_config
    from proxy.server import serve as run

    only = frozenset(name for name in args.only.split(",") if name)
    run(load_config(args.config), "127.0.0.1", args.port, only=only)


if __name__ == "__main__":
    main()
