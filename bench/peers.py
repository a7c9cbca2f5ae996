"""Optional peers for ``make bench`` (``BENCH_PEERS=litellm``), each in a venv of its own.

LiteLLM is pinned, installed once into ``.bench-peers/litellm`` and started as its proxy with a
master key and a Gemini model whose ``api_base`` is the bench's fake upstream; the load goes to
its Gemini-format route ``/v1beta/models/{model}:generateContent``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LITELLM = "litellm[proxy]==1.108.7"
MASTER_KEY = "sk-bench-master"
CONFIG = """
model_list:
  - model_name: bench
    litellm_params:
      model: gemini/m1
      api_base: http://127.0.0.1:{upstream}/v1beta
      api_key: bench-upstream-key
general_settings:
  master_key: {master}
"""


def litellm_venv() -> Path:
    venv = ROOT / ".bench-peers" / "litellm"
    exe = venv / "bin" / "litellm"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", LITELLM], check=True)
    return exe


def litellm_command(work: Path, upstream: int, port: int) -> tuple[list[str], dict[str, str]]:
    conf = work / "litellm.yaml"
    conf.write_text(CONFIG.format(upstream=upstream, master=MASTER_KEY))
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    cmd = [
        str(litellm_venv()),
        "--config",
        str(conf),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    return cmd, env


def litellm_lua(work: Path, body: str) -> Path:
    lua = work / "litellm.lua"
    lua.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{body}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {MASTER_KEY}"\n'
    )
    return lua


QUOTA_CONFIG = """
model_list:
{models}
router_settings:
  fallbacks: [{{"{first}": [{rest}]}}]
  num_retries: 0
general_settings:
  master_key: {master}
"""
QUOTA_MODEL = """  - model_name: {model}
    litellm_params:
      model: gemini/{model}
      api_base: http://127.0.0.1:{upstream}/v1beta
      api_key: {key}
"""


def litellm_router_command(
    work: Path, upstream: int, port: int, models: list[str], key: str
) -> tuple[list[str], dict[str, str]]:
    """LiteLLM's proxy with its router: one deployment per model, falling back along them in
    order, as L104's chain does (for ``make bench-quota``)."""
    conf = work / "litellm-router.yaml"
    conf.write_text(
        QUOTA_CONFIG.format(
            models="".join(QUOTA_MODEL.format(model=m, upstream=upstream, key=key) for m in models),
            first=models[0],
            rest=", ".join(f'"{m}"' for m in models[1:]),
            master=MASTER_KEY,
        )
    )
    cmd, env = litellm_command(work, upstream, port)
    cmd[cmd.index("--config") + 1] = str(conf)
    return cmd, env
