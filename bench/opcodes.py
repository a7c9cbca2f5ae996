"""Python bytecodes a request, by function: a cost that repeats within a fraction of a percent
where CPU time under load moves by a third between runs.

The server runs under a tracer that counts every bytecode its main thread executes (``sys.settrace``
with opcode events), armed after a warm-up: the same requests give the same count, run after run,
but for work that comes with time (a window's new bucket, the writer's batch, a sampled span;
a traced request is slow, so these weigh more than they do at full speed).
A bytecode is not a fixed amount of CPU, but the proxy's time is almost all the interpreter's, so
counts say where its work is and whether a change removed some; ``bench.ab`` then says what that
is worth under load.

``python -m bench.opcodes compare --config FILE --upstream URL [--requests N] [--top K]`` starts
aiohttp's floor (``bench.bare``) and the proxy (``serve --config FILE``, its upstream at ``URL``)
each under the counter, sends both the same requests, and prints the bytecodes a request of each
and the functions that make the difference. ``python -m bench.opcodes steps --config FILE
--upstream URL [--requests N]`` counts the floor and then the proxy with its layers added one at
a time (``bench.layers``' steps): the layer budget, counted. ``python -m bench.opcodes count
--out FILE MODULE [ARGS...]`` is the counter alone: it runs ``python -m MODULE ARGS``, counts
from ``SIGUSR1`` and writes ``count<TAB>file:line:function`` lines to FILE on ``SIGUSR2``.
"""

from __future__ import annotations

import argparse
import asyncio
import runpy
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import aiohttp

from bench.layers import STEPS, layers_upto
from bench.ports import free_port, wait_port
from proxy.config import Config, load_config

BODY = b'{"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}'
PATH = "/v1beta/models/default:generateContent"
WARM_UP = 200
CONCURRENT = 8


def count(out: str, module: str, args: list[str]) -> None:
    """Run ``module`` as ``__main__``, counting its bytecodes between SIGUSR1 and SIGUSR2."""
    counts: Counter[CodeType] = Counter()

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            counts[frame.f_code] += 1
        return local

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        return local

    def start(signum: int, frame: FrameType | None) -> None:
        counts.clear()
        sys.settrace(trace)
        # The frames running now (the event loop's own) are traced from here on too.
        while frame is not None:
            frame.f_trace, frame.f_trace_opcodes, frame.f_trace_lines = local, True, False
            frame = frame.f_back

    def stop(signum: int, frame: FrameType | None) -> None:
        sys.settrace(None)
        lines = [
            f"{n}\t{c.co_filename}:{c.co_firstlineno}:{c.co_qualname}" for c, n in counts.items()
        ]
        Path(out).write_text("\n".join(lines) + "\n")

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def load(path: Path, requests: int) -> dict[str, float]:
    """``function -> bytecodes a request`` from a file :func:`count` wrote."""
    root = str(Path(__file__).resolve().parent.parent) + "/"
    out: dict[str, float] = {}
    for line in path.read_text().splitlines():
        n, _, where = line.partition("\t")
        where = where.replace(root, "")
        if "site-packages/" in where:
            where = where.split("site-packages/", 1)[1]
        out[where] = out.get(where, 0.0) + int(n) / requests
    return out


async def _send(url: str, key: str, requests: int) -> int:
    """``requests`` POSTs, a few at a time; returns how many were not 200."""
    left, bad = requests, 0
    headers = {"x-goog-api-key": key, "Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def worker() -> None:
            nonlocal left, bad
            while left > 0:
                left -= 1
                async with session.post(url, data=BODY) as resp:
                    await resp.read()
                    bad += resp.status != 200

        await asyncio.gather(*(worker() for _ in range(CONCURRENT)))
    return bad


def measure(server: list[str], port: int, key: str, requests: int, out: Path) -> dict[str, float]:
    """Start ``python -m bench.opcodes count`` over ``server``, warm it up, count ``requests``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.opcodes", "count", "--out", str(out), *server],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc, 30)
        url = f"http://127.0.0.1:{port}{PATH}"
        asyncio.run(_send(url, key, WARM_UP))
        proc.send_signal(signal.SIGUSR1)
        time.sleep(0.2)
        bad = asyncio.run(_send(url, key, requests))
        proc.send_signal(signal.SIGUSR2)
        for _ in range(100):
            if out.exists() and out.stat().st_size:
                break
            time.sleep(0.05)
        if bad:
            raise RuntimeError(f"{bad} of {requests} requests were not answered 200")
        return load(out, requests)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _client_key(config: Config) -> str:
    """The key the counted requests present: the config's first client's, if it has clients."""
    return config.clients[0].key if config.clients else ""


def _floor(upstream: str, key: str, requests: int, out: Path) -> dict[str, float]:
    port = free_port()
    server = ["bench.bare", "--port", str(port), "--upstream", upstream]
    return measure(server, port, key, requests, out)


def counted(config: str, upstream: str, requests: int) -> tuple[dict[str, float], dict[str, float]]:
    """Bytecodes a request by function of the floor (``bench.bare`` to ``upstream``) and of the
    proxy (``serve --config``, whose responder must be at ``upstream``), same requests each."""
    loaded = load_config(config)
    key = _client_key(loaded)
    with tempfile.TemporaryDirectory() as tmp:
        bare = _floor(upstream, key, requests, Path(tmp, "bare"))
        proxy = measure(
            ["proxy", "serve", "--config", config],
            loaded.listen.port,
            key,
            requests,
            Path(tmp, "proxy"),
        )
    return bare, proxy


def counted_steps(
    config: str, upstream: str, requests: int
) -> tuple[list[tuple[str, float]], dict[str, float], dict[str, float]]:
    """The floor, then the proxy with its layers added as ``bench.layers`` adds them (each step
    on the config's port): ``(step, bytecodes a request)`` rows, then the floor's counts by
    function and the last step's (every layer on)."""
    loaded = load_config(config)
    key = _client_key(loaded)
    port = loaded.listen.port
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        bare = _floor(upstream, key, requests, Path(tmp, "bare"))
        rows.append(("bare aiohttp (the floor)", sum(bare.values())))
        last: dict[str, float] = {}
        for step, _ in STEPS:
            only = ",".join(layers_upto(step))
            last = measure(
                ["bench.layers", "serve", "--config", config, "--port", str(port), "--only", only],
                port,
                key,
                requests,
                Path(tmp, f"step-{len(rows)}"),
            )
            rows.append((step, sum(last.values())))
    return rows, bare, last


def steps_table(rows: list[tuple[str, float]]) -> str:
    """The counted layer budget: bytecodes a request at each step, what it added, and the step
    over the floor."""
    floor = rows[0][1]
    lines = ["| layers | bytecodes / request | added | over the floor |", "|---|---|---|---|"]
    before: float | None = None
    for name, n in rows:
        added = "" if before is None else f"{n - before:+.0f}"
        lines.append(f"| {name} | {n:.0f} | {added} | {n / floor:.2f} x |")
        before = n
    return "\n".join(lines)


def largest(
    bare: dict[str, float], proxy: dict[str, float], top: int
) -> list[tuple[str, float, float]]:
    """The ``top`` functions whose counts differ most: (function, the floor's, the proxy's)."""
    rows = sorted(set(bare) | set(proxy), key=lambda f: -abs(proxy.get(f, 0.0) - bare.get(f, 0.0)))
    return [(where, bare.get(where, 0.0), proxy.get(where, 0.0)) for where in rows[:top]]


def table(total_b: float, total_p: float, rows: list[tuple[str, float, float]]) -> str:
    """Each server's bytecodes a request, then ``rows`` (from :func:`largest`)."""
    lines = [
        f"bytecodes a request (bench.opcodes): bare aiohttp {total_b:.0f}, proxy {total_p:.0f} "
        f"({total_p / total_b:.2f} x)",
        "",
        "| function | bare | proxy | proxy - bare |",
        "|---|---|---|---|",
    ]
    lines += [f"| {where} | {b:.1f} | {p:.1f} | {p - b:+.1f} |" for where, b, p in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("count")
    run.add_argument("--out", required=True)
    run.add_argument("module")
    run.add_argument("args", nargs=argparse.REMAINDER)
    for name, requests in (("compare", 1000), ("steps", 500)):
        counting = sub.add_parser(name)
        counting.add_argument("--config", required=True)
        counting.add_argument("--upstream", required=True, help="the config's responder's URL")
        counting.add_argument("--requests", type=int, default=requests)
        if name == "compare":
            counting.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    if args.command == "count":
        count(args.out, args.module, args.args)
    elif args.command == "steps":
        print(steps_table(counted_steps(args.config, args.upstream, args.requests)[0]))
    else:
        bare, proxy = counted(args.config, args.upstream, args.requests)
        rows = largest(bare, proxy, args.top)
        print(table(sum(bare.values()), sum(proxy.values()), rows))


if __name__ == "__main__":
    main()
