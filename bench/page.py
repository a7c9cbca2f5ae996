"""The docs' page of the latest benchmark run, made from ``bench/results.json``.

``make bench`` writes it (``docs/performance-latest.md``, committed): the results file is not
in the tree, so the docs build reads the page, never the JSON. ``python -m bench.run --page``
makes it again from the last run's results.
"""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "performance-latest.md"
RESULTS = ROOT / "bench" / "results.json"


def _commit() -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return out.stdout.strip() or "unknown"


def stamp(results: dict[str, Any]) -> None:
    """Note in ``results`` when and on which commit the run ended."""
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="minutes")
    results["commit"] = _commit()


def render(results: dict[str, Any], table: str) -> str:
    """The page: where and when the run was made, then the table ``make bench`` printed."""
    when = results.get("finished_at", "(time not recorded)").replace("T", " ")
    commit = results.get("commit", "unknown")
    seconds = results.get("seconds", "?")
    return (
        "# Latest benchmark run\n\n"
        "Made by `make bench` (do not edit: the next run writes it again). How the benchmark "
        "works, and the runs before this one, are in the [lab notebook](performance.md).\n\n"
        f"- run: {when}, commit `{commit}`, {seconds} s a scenario, "
        f"{results.get('workers', 1)} worker(s)\n"
        f"- machine: {os.cpu_count()} CPUs, {platform.machine()}, Python "
        f"{platform.python_version()}\n\n"
        f"{table}\n"
    )


def write(results: dict[str, Any], table: str, page: Path = PAGE) -> None:
    """Write the page of ``results`` (a smoke run writes nothing: its numbers mean nothing)."""
    if results.get("smoke"):
        return
    page.write_text(render(results, table))
