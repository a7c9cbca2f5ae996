"""Config validation: every error named by file, line, key and value; the default config."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.config import ConfigError, load_config
from tests.conftest import ROOT, base_yaml, config_from, run_cli

GOOD = base_yaml("http://127.0.0.1:9")


def errors_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_from(tmp_path, text, env)
    prefix = f"{tmp_path / 'proxy.yaml'}:"
    assert all(line.startswith(prefix) for line in info.value.lines)
    return [line[len(prefix) :] for line in info.value.lines]


R = "responders:\n  local: {type: fake}\n"
C = "chains:\n  default: [local]\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "listen: {port: 99999}\n" + R + C,
            "1: key 'listen.port' has value 99999: must be a whole number from 0 to 65535",
        ),
        ("listen: {host: [1]}\n" + R + C, "1: key 'listen.host' has value [1]: must be a string"),
        (
            "responders:\n  a: {type: nope}\n" + C,
            "2: key 'responders.a.type' has value 'nope': "
            "must be one of echo, fake, gemini, template",
        ),
        (
            "responders:\n  local: {type: fake, chunks: 0}\n" + C,
            "2: key 'responders.local.chunks' has value 0: must be a whole number from 1 to 10000",
        ),
        (
            "responders:\n  local: {type: fake, colour: red}\n" + C,
            "2: key 'responders.local.colour' is not known here",
        ),
        (
            "responders:\n  local: {type: template}\n" + C,
            "2: key 'responders.local.text' is required",
        ),
        (
            "responders:\n  local: {type: fake, script: {m: [42]}}\n" + C,
            "2: key 'responders.local.script' has value [42]: 'm' needs a list of HTTP statuses",
        ),
        (
            "responders:\n  g: {type: gemini, api_keys: [{key: k, projekt: p}]}\n" + C,
            "2: key 'responders.g.api_keys[0].projekt' is not known here; did you mean 'project'?",
        ),
        (
            "responders:\n  g: {type: gemini, api_key: k}\n" + C,
            "2: key 'responders.g.api_key' is not known here; did you mean 'api_keys'?",
        ),
        (
            "rotation: {cooldown: 5}\n" + R + C,
            "1: key 'rotation.cooldown' is not known here; did you mean 'cooldown_s'?",
        ),
        (
            "chain: {}\n" + R + C,
            "1: key 'chain' is not known here; did you mean 'chains'?",
        ),
        (
            "responders:\n  g: {type: gemini, api_keys: [[k]]}\n" + C,
            "2: key 'responders.g.api_keys[0]' must be a key or {key, project}",
        ),
        (
            "rotation: {on: [400, 429]}\n" + R + C,
            "1: key 'rotation.on' has value 400: a 400 is the request's fault: another model "
            "would refuse it too",
        ),
        (
            "responders:\n  g: {type: gemini, api_keys: []}\n" + C,
            "2: key 'responders.g.api_keys' holds no key",
        ),
        (
            "responders:\n  g: {type: gemini, api_keys: [k], base_url: ftp://x}\n" + C,
            "2: key 'responders.g.base_url' has value 'ftp://x': must start with http:// or https://",
        ),
        (
            R + "chains:\n  default:\n    - local:m1\n    - ghost:m2\n",
            "6: key 'chains.default[1]' has value 'ghost:m2': no responder 'ghost'",
        ),
        (
            R + "chains:\n  default: []\n",
            "4: key 'chains.default' has value []: must be a non-empty list of members",
        ),
        (
            R + "chains:\n  'a/b': [local]\n",
            "4: key 'chains.a/b' has value 'a/b': a chain name must be a valid model name",
        ),
        (
            R + "chains:\n  default: ['local:a..b']\n",
            "4: key 'chains.default[0]' has value 'local:a..b': 'a..b' is not a valid model name",
        ),
        (
            R + "chains:\n  default: [local, local]\n",
            "4: key 'chains.default' names a member twice",
        ),
        (
            "rotation: {on: [429, 200]}\n" + R + C,
            "1: key 'rotation.on' has value 200: each entry must be an HTTP status 400-599",
        ),
        (
            "rotation: {cooldown_s: -5}\n" + R + C,
            "1: key 'rotation.cooldown_s' has value -5: must be a number from 0 to 604800",
        ),
        (
            "clients:\n  - {name: a, key: k}\n  - {name: a, key: j}\n" + R + C,
            "3: key 'clients[1].name' has value 'a': another client has this name",
        ),
        (
            "tracing: {exporter: zipkin}\n" + R + C,
            "1: key 'tracing.exporter' has value 'zipkin': must be one of otlp, console, none",
        ),
        (
            "limits: {adaptive: maybe}\n" + R + C,
            "1: key 'limits.adaptive' has value 'maybe': must be true or false",
        ),
        ("unknown_top: 1\n" + R + C, "1: key 'unknown_top' is not known here"),
    ],
)
def test_each_error_names_line_key_and_value(tmp_path: Path, text: str, expected: str) -> None:
    found = errors_of(tmp_path, text)
    assert any(line.startswith(expected) for line in found), found


def test_every_error_is_reported_in_one_run(tmp_path: Path) -> None:
    text = (
        "listen: {port: x}\nresponders:\n  a: {type: fake, chunks: -1}\n"
        "chains:\n  default: [b]\nrotation: {max_attempts: 0}\n"
    )
    found = errors_of(tmp_path, text)
    assert [line.split(":", 1)[0] for line in found] == ["1", "3", "5", "6"]


def test_config_is_frozen(tmp_path: Path) -> None:
    config = config_from(tmp_path, GOOD)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.rotation.cooldown_s = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.chains["x"] = config.default_chain  # type: ignore[index]
    assert config.rotation.statuses == frozenset({429, 503})
    assert config.rotation.on_timeout
    assert config.rotation.on_connect


def test_default_config_without_a_key_serves_the_fake(tmp_path: Path) -> None:
    config = load_config(ROOT / "config" / "proxy.yaml", {})
    assert [m.label for m in config.default_chain.members] == [
        "offline:gemini-3-flash-preview",
        "offline:gemini-2.5-flash-lite",
        "offline:gemini-2.5-flash",
    ]
    assert len(config.notices) == 1
    assert "GEMINI_API_KEY" in config.notices[0]
    assert "'offline'" in config.notices[0]


def test_default_config_with_a_key_and_model_variables(tmp_path: Path) -> None:
    env = {"GEMINI_API_KEY": "k", "GEMINI_MODEL_1": "gemini-a", "GEMINI_MODEL_3": "gemini-c"}
    config = load_config(ROOT / "config" / "proxy.yaml", env)
    assert [m.label for m in config.default_chain.members] == [
        "google:gemini-a",
        "google:gemini-2.5-flash-lite",
        "google:gemini-c",
    ]
    assert config.notices == ()
    assert config.listen.port == 8081


@pytest.mark.parametrize("path", [None, ROOT / "config" / "proxy.yaml"])
def test_defaults_never_refuse_what_gemini_accepts(tmp_path: Path, path: Path | None) -> None:
    """No global request rate unless asked for; the body limit above Gemini's 20 MB."""
    if path is None:
        path = tmp_path / "minimal.yaml"
        path.write_text('responders: {f: {type: fake}}\nchains: {default: ["f"]}\n')
    limits = load_config(path, {}).limits
    assert limits.requests_per_second == 0
    assert limits.max_body_bytes > 20 * 1000 * 1000


def run_check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli("check", *args, env=env)


def test_check_command_exit_codes_and_output(tmp_path: Path) -> None:
    ok = run_check("--config", "config/proxy.yaml")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("config/proxy.yaml: ok (2 chains, 4 responders)")
    bad = tmp_path / "bad.yaml"
    bad.write_text("listen: {port: x}\nresponders:\n  a: {type: fake}\nchains:\n  default: [b]\n")
    result = run_check("--config", str(bad))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{bad}:1: key 'listen.port' has value 'x': must be a whole number from 0 to 65535",
        f"{bad}:5: key 'chains.default[0]' has value 'b': no responder 'b' (known: a)",
    ]
    assert "Traceback" not in result.stderr
    missing = run_check("--config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1
    assert "cannot read the file" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_l104_config_names_the_file(tmp_path: Path) -> None:
    import os

    result = run_check(env={**os.environ, "L104_CONFIG": "config/proxy.yaml"})
    assert result.returncode == 0, result.stderr


def test_console_script_is_the_same_command() -> None:
    script = str(Path(sys.executable).parent / "l104-proxy")
    result = run_cli("check", "--config", "config/proxy.yaml", script=script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config/proxy.yaml: ok")
