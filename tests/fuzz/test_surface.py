"""The Gemini surface under hypothesis, against the proxy as a process: bad paths, bodies, query
strings and headers each get a 4xx in Gemini's shape, the proxy keeps serving, and nothing of
them reaches the upstream."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Upstream, base_yaml
from tests.fuzz.spellings import spelt

SETTINGS = settings(  # derandomized: CI runs the same examples every time
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
ACTION = "/v1beta/models/default:generateContent"
# Characters no model name may hold (a valid one is letters, digits, '.', '_', '-').
ODD = "!\"#$&'()*+,;<=>@[\\]^`{|}~ %"


@pytest.fixture(scope="module")
def served(upstream_process: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One proxy process for every example (starting one per example would take minutes)."""

    from tests.conftest import (
        ROOT,
        free_port,
        wait_ready,
    )

    config = tmp_path_factory.mktemp("fuzz") / "proxy.yaml"
    config.write_text(base_yaml(upstream_process.url))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--config", str(config), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_ready(f"http://127.0.0.1:{port}/ready", proc)
    yield port
    proc.terminate()
    proc.wait(10)


def call(
    port: int, method: str, target: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, target, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def gemini_shaped(status: int, body: bytes) -> None:
    assert 400 <= status < 500, (status, body[:200])
    error = json.loads(body)["error"]
    assert error["code"] == status
    assert isinstance(error["message"], str)
    assert isinstance(error["status"], str)


def not_an_object(raw: bytes) -> bool:
    try:
        return not isinstance(json.loads(raw), dict)
    except ValueError:
        return True


@SETTINGS
@given(
    name=st.text(
        alphabet=st.characters(codec="ascii", min_codepoint=33), min_size=1, max_size=30
    ).filter(lambda n: any(c in ODD for c in n)),
    action=st.sampled_from(["generateContent", "streamGenerateContent", "countTokens", "x"]),
    method=st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH"]),
)
def test_odd_model_names_and_methods(
    served: int, upstream_process: Upstream, name: str, action: str, method: str
) -> None:

    before = len(upstream_process.requests())
    status, body = call(
        served, method, f"/v1beta/models/{quote(name, safe='')}:{action}", b"{}", {}
    )
    gemini_shaped(status, body)
    assert len(upstream_process.requests()) == before


@SETTINGS
@given(body=st.binary(max_size=200).filter(not_an_object))
def test_bodies_that_are_not_a_json_object(
    served: int, upstream_process: Upstream, body: bytes
) -> None:
    before = len(upstream_process.requests())
    status, answer = call(served, "POST", ACTION, body, {"content-type": "application/json"})
    gemini_shaped(status, answer)
    assert status == 400
    assert len(upstream_process.requests()) == before


@SETTINGS
@given(
    query=st.text(
        alphabet=st.characters(codec="ascii", min_codepoint=33, max_codepoint=126), max_size=60
    ).filter(lambda q: "#" not in q),
    header=st.text(
        alphabet=st.characters(codec="ascii", min_codepoint=32, max_codepoint=126), max_size=60
    ),
)
def test_any_query_and_header_with_a_bad_body(
    served: int, upstream_process: Upstream, query: str, header: str
) -> None:

    before = len(upstream_process.requests())
    target = f"{ACTION}?{quote(query, safe='=&')}"
    headers = {"x-goog-api-client": header, "x-fuzz": header, "content-type": "application/json"}
    status, answer = call(served, "POST", target, b"[not an object", headers)
    gemini_shaped(status, answer)
    assert len(upstream_process.requests()) == before


@settings(
    SETTINGS,
    # L104_FUZZ_EXAMPLES=2000 for the run by hand; CI runs the same 120 every time.
    max_examples=int(os.environ.get("L104_FUZZ_EXAMPLES", "120")),
)
@given(
    case=spelt(),
    surface=st.sampled_from(
        ["gemini", "count", "openai", "cache", "interaction", "batch", "agent", "token"]
    ),
)
def test_a_resource_named_in_any_spelling_is_checked_on_every_surface(
    served: int, upstream_process: Upstream, case: tuple[bytes, str], surface: str
) -> None:
    """No file or cache is held here, so whatever spelling names one, at whatever depth, is
    answered as a resource that does not exist, and nothing reaches the upstream."""
    raw, _ = case
    inner = raw[len(b'{"contents": ') : -1]  # the spelt contents, put where each surface reads
    body, target = {
        "gemini": (raw, ACTION),
        "count": (raw, "/v1beta/models/default:countTokens"),
        "openai": (
            b'{"model": "default", "messages": [], "extra": ' + inner + b"}",
            "/v1beta/openai/chat/completions",
        ),
        "cache": (b'{"model": "models/m1", "contents": ' + inner + b"}", "/v1beta/cachedContents"),
        "interaction": (b'{"model": "default", "input": ' + inner + b"}", "/v1/interactions"),
        "batch": (
            b'{"batch": {"inputConfig": {"requests": {"requests": [{"request": ' + raw + b"}]}}}}",
            "/v1beta/models/default:batchGenerateContent",
        ),
        "agent": (b'{"agent": "deep-research", "input": ' + inner + b"}", "/v1beta/interactions"),
        "token": (b'{"uses": 1, "x": ' + inner + b"}", "/v1alpha/auth_tokens"),
    }[surface]
    before = len(upstream_process.requests())
    status, answer = call(served, "POST", target, body, {"content-type": "application/json"})
    assert status in (400, 403), (status, answer[:200], body[:200])
    if status == 400:  # nested past what a body written again may hold
        assert b"nested too deeply" in answer
    else:
        assert b"or it may not exist" in answer
    assert len(upstream_process.requests()) == before
