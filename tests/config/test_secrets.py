"""No config mistake publishes a secret: key-shaped values in every field of ``SECRET_FIELDS``
(and passwords in every URL field), in every wrong shape, appear in no error of ``check``, no
line of the log, and nothing ``/health`` answers."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.config import ConfigError, load_config
from proxy.config.secrets import SECRET_FIELDS, URL_FIELDS
from proxy.server.reload import Reloader
from proxy.state import LIVE
from tests.conftest import Proxy, base_yaml, run_cli

SETTINGS = settings(
    max_examples=150,
    derandomize=True,  # CI runs the same examples every time
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Not shaped like a Google key on purpose: the catch-all for that shape must not be what hides it.
secrets = st.text(
    alphabet="abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789_-", min_size=16, max_size=48
).filter(lambda s: not s.startswith("-"))

# Every wrong shape a secret was seen in, and the right one (which must not leak either).
SHAPES: dict[str, Callable[[str], Any]] = {
    "string": lambda v: v,
    "list": lambda v: [v],
    "nested list": lambda v: [[v, 1]],
    "mapping": lambda v: {"x": v},
    "mapping key": lambda v: {v: "x"},
    "item mapping": lambda v: [{"key": v, "extra": v}],
    "item key": lambda v: [{v: "x"}],
    "comma list": lambda v: f"{v},{v[::-1]}",
    "number tail": lambda v: [v, 3.5, True],
}


def _base() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(base_yaml("http://127.0.0.1:9", keys=("up-key-1",)))
    data["rotation"]["on"] = data["rotation"].pop(True)  # YAML 1.1 reads the key `on` as true
    return data


def _put(data: Any, pattern: tuple[str, ...], value: Any) -> None:
    """Set ``value`` at ``pattern`` ("*": the first responder or client, made when missing)."""
    for i, step in enumerate(pattern[:-1]):
        if step == "*":
            continue
        nxt = pattern[i + 1]
        if nxt == "*":
            holder = data.setdefault(step, {} if step == "responders" else [])
            if isinstance(holder, list):
                if not holder:
                    holder.append({"name": "c0", "key": "client-key-0"})
                data = holder[0]
            else:
                data = holder[next(iter(holder))] if holder else holder.setdefault("g", {})
        else:
            data = data.setdefault(step, {})
    data[pattern[-1]] = value


def _leaks(text: str, secret: str) -> list[str]:
    """Every 10-character piece of ``secret`` found in ``text`` (a key cut in two is a leak)."""
    return [secret[i : i + 10] for i in range(len(secret) - 9) if secret[i : i + 10] in text]


def _config_errors(tmp_path: Path, data: Any, env: dict[str, str]) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        load_config(path, env)
    except ConfigError as exc:
        return str(exc)
    return ""


@SETTINGS
@given(secret=secrets, shape=st.sampled_from(sorted(SHAPES)), via_env=st.booleans())
@pytest.mark.parametrize("field", SECRET_FIELDS, ids=".".join)
def test_a_secret_field_in_any_shape_is_never_quoted(
    tmp_path: Path, field: tuple[str, ...], secret: str, shape: str, via_env: bool
) -> None:
    data = _base()
    value = SHAPES[shape](secret if not via_env else "${SECRET_VALUE}")
    _put(data, field, value)
    errors = _config_errors(tmp_path, data, {"SECRET_VALUE": secret})
    assert not _leaks(errors, secret), errors
    assert not _leaks(errors, secret[::-1]), errors


@SETTINGS
@given(
    secret=secrets,
    scheme=st.sampled_from(["redis", "http", "ftp", "unix", ""]),
    listed=st.booleans(),
    in_query=st.booleans(),
)
@pytest.mark.parametrize("field", URL_FIELDS, ids=".".join)
def test_a_password_in_any_url_field_is_never_quoted(
    tmp_path: Path, field: tuple[str, ...], secret: str, scheme: str, listed: bool, in_query: bool
) -> None:
    data = _base()
    url = f"{scheme}://user:{secret}@127.0.0.1:1/0" if scheme else f"user:{secret}@h"
    if in_query:  # redis-py takes a password in the query too: unix:///run/r.sock?password=…
        url = f"{scheme or 'unix'}:///run/r.sock?db=0&password={secret}&x=1"
    _put(data, field, [url] if listed else url)
    errors = _config_errors(tmp_path, data, {})
    assert not _leaks(errors, secret), errors


def test_errors_still_name_the_field_and_the_type_expected(tmp_path: Path) -> None:
    data = _base()
    data["listen"]["admin_key"] = ["some-admin-key-1234"]
    data["clients"] = ["client-key-as-a-bare-string"]
    errors = _config_errors(tmp_path, data, {})
    assert "key 'listen.admin_key' has a list (not shown: the field holds a secret)" in errors
    assert "must be a string" in errors
    assert "key 'clients[0]' must be a mapping, not a string (not shown" in errors
    # A field that holds no secret still quotes its value (STYLE.md).
    data = _base()
    data["rotation"] = {"cooldown_s": "soon"}
    assert "key 'rotation.cooldown_s' has value 'soon'" in _config_errors(tmp_path, data, {})


def test_check_and_serve_print_no_secret(tmp_path: Path) -> None:
    secret = "check-secret-value-0123456789"  # noqa: S105
    data = _base()
    data["listen"]["admin_key"] = ["${SECRET_VALUE}"]
    data["responders"]["up"]["api_keys"] = "${SECRET_VALUE}"
    data["clients"] = ["${SECRET_VALUE}"]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    for command in ("check", "serve"):
        out = run_cli(command, "--config", str(path), env={"SECRET_VALUE": secret, "PATH": ""})
        assert out.returncode == 1
        assert "listen.admin_key" in out.stderr
        assert not _leaks(out.stdout + out.stderr, secret)


async def test_a_refused_reload_keeps_secrets_out_of_the_log_and_health(
    start_proxy: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    secret = "reload-secret-value-0123456789"  # noqa: S105
    monkeypatch.setenv("SECRET_VALUE", secret)
    data = _base()
    data["listen"]["admin_key"] = "the-admin-key-123"
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(data))
    proxy: Proxy = await start_proxy(good.read_text())
    data["responders"]["up"]["api_keys"] = "${SECRET_VALUE}"
    data["clients"] = ["${SECRET_VALUE}"]
    data["listen"]["admin_key"] = {"k": "${SECRET_VALUE}"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    app = proxy.app
    with caplog.at_level(logging.DEBUG):
        assert not await Reloader(app[LIVE], str(bad), "127.0.0.1").reload("test")
    assert "reload refused" in caplog.text
    assert not _leaks(caplog.text, secret)

    async with aiohttp.ClientSession() as http:
        body = await (await http.get(f"{proxy.url}/health")).text()
        admin = {"x-l104-admin-key": "the-admin-key-123"}
        admin_body = await (await http.get(f"{proxy.url}/health", headers=admin)).text()
    assert not _leaks(body, secret)
    error = json.loads(body)["config"]["reload_error"]
    # Open to anyone: how many errors and on which lines, never their text.
    assert error["count"] >= 3
    assert error["lines"]
    assert all(isinstance(n, int) for n in error["lines"])
    assert "messages" not in error
    # The admin sees the text (still without the secret).
    messages = json.loads(admin_body)["config"]["reload_error"]["messages"]
    assert any("listen.admin_key" in m for m in messages)
    assert not _leaks(admin_body, secret)
