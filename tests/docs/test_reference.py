"""The configuration reference documents every key the config reader accepts, every variable
the proxy and its default config read, and every option of the command line.

The keys come from the reader itself (``Source.accepted``: what each mapping's reader asked
for), on a config that holds every section and every responder type, not from the dataclasses,
which hold derived fields too.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import trustme

from proxy.cli import _parser
from proxy.config.load import parse_config
from proxy.yamlsource import load
from tests.conftest import ROOT

REFERENCE = ROOT / "docs" / "configuration.md"

EVERYTHING = """
listen:
  host: 127.0.0.1
  port: 8081
  cors_origins: ["http://localhost:3000"]
  admin_key: admin-key-for-the-walk
  tls: {{cert_file: "{cert}", key_file: "{key}"}}
responders:
  g: {{type: gemini, api_keys: [{{key: k1, project: p1}}, "k2"], rpm: 1, free_tier: true}}
  v: {{type: vertex, project: p, location: us-central1, credentials: adc}}
  f: {{type: fake, prompt_tokens: 1, output_tokens: 2, script: {{"*": [200]}}}}
  t: {{type: template, text: "x"}}
  e: {{type: echo}}
chains:
  default:
    members: [{{member: "g:m1", rpm: 1}}, "v:m2", "f:m3", "t", "e"]
    aliases: ["gemini-*"]
    sticky_turn: true
clients:
  - {{name: a, key: client-key-for-the-walk, budget: {{usd_per_day: 1}}}}
budgets: {{timezone: UTC}}
pricing:
  m1: {{input: 1, output: 2, tier_tokens: 200000, batch: 0.5, above: {{input: 2, output: 4}}}}
rotation: {{cooldown_s: 60}}
limits: {{max_concurrent: 2}}
tracing: {{exporter: none}}
store: {{path: ""}}
surface: {{passthrough: [agents]}}
"""


def sections(text: str, level: str) -> dict[str, str]:
    """The text under each heading of ``level`` (``##``) whose title is one code span."""
    out: dict[str, str] = {}
    parts = re.split(rf"^{level} (.+)$", text, flags=re.M)
    for title, body in zip(parts[1::2], parts[2::2], strict=True):
        name = title.strip().strip("`")
        out[name] = body
    return out


def accepted(tmp_path: Path) -> dict[tuple[Any, ...], frozenset[str]]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    file = tmp_path / "everything.yaml"
    file.write_text(EVERYTHING.format(cert=tmp_path / "cert.pem", key=tmp_path / "key.pem"))
    source = load(file, {})
    parse_config(source)  # raises if the walk's config itself is wrong
    return source.accepted


def test_every_key_the_reader_accepts_is_in_the_reference(tmp_path: Path) -> None:
    found = accepted(tmp_path)
    top = sections(REFERENCE.read_text(), "##")
    kinds = sections(top["responders"], "###")
    preamble = top["responders"].split("\n### ", 1)[0]
    types = {"g": "gemini", "v": "vertex", "f": "fake", "t": "template", "e": "echo"}
    missing: list[str] = []
    assert found[()] >= {"listen", "responders", "chains", "clients", "pricing", "budgets"}
    for path, keys in found.items():
        if path == ():
            missing += [f"section {k}" for k in keys if k not in top]
            continue
        if path == ("pricing",):  # its keys are model names
            continue
        where = top.get(path[0], "")
        if path[0] == "responders":
            where = kinds.get(types[path[1]], "") + preamble
        for key in keys:
            if f"`{key}`" not in where:
                missing.append(".".join(map(str, (*path, key))))
    assert not missing, f"keys the reference does not document: {sorted(missing)}"


def test_the_walk_sees_the_keys_issue_27_named(tmp_path: Path) -> None:
    found = accepted(tmp_path)
    assert "ca_file" in found[("responders", "g")]
    assert {"member", "rpm", "tpm", "rpd"} <= found[("chains", "default", "members", 0)]
    assert "shared" in found[("store",)]
    store = sections(REFERENCE.read_text(), "##")["store"]
    assert "unix://" in store


def test_every_variable_is_in_the_reference() -> None:
    environment = sections(REFERENCE.read_text(), "##")["Environment"]
    lines = (ROOT / "config" / "proxy.yaml").read_text().splitlines()
    default = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    named = set(re.findall(r"\$\{([A-Z0-9_]+)", default))
    for source in (ROOT / "proxy").rglob("*.py"):
        named |= set(re.findall(r"environ(?:\.get)?\(\"(L104_[A-Z0-9_]+)\"", source.read_text()))
    assert {"L104_HOST", "L104_PORT", "L104_LOG_LEVEL", "GEMINI_BASE_URL"} <= named
    missing = sorted(v for v in named if f"`{v}`" not in environment)
    assert not missing, f"variables the reference does not document: {missing}"


def test_every_command_line_option_is_in_the_reference() -> None:
    commands = sections(REFERENCE.read_text(), "##")["Command line"]
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    options = {
        option
        for command in sub.choices.values()
        for action in command._actions
        if action.help != argparse.SUPPRESS
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    assert {"--watch", "--workers", "--config"} <= options
    missing = sorted(o for o in options if f"`{o}" not in commands)
    assert not missing, f"options the reference does not document: {missing}"
