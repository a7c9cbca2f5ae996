"""Smoke runs of the benchmark harnesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT


def smoke(module: str, out: Path) -> tuple[str, Any]:
    """Run ``python -m MODULE --smoke --out OUT``; its stdout and the JSON it wrote."""
    result = subprocess.run(
        [sys.executable, "-m", module, "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, json.loads(out.read_text())
