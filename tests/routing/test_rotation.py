"""Rotation along chains, through the real SDK, against the fake upstream process."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import aiohttp
import pytest
from google.genai import errors

from proxy.routing.quota import until_daily_reset
from proxy.state import LIVE
from tests.conftest import UPSTREAM_KEYS, Proxy, StartProxy, Upstream, base_yaml

Q429 = {"status": 429, "quota": "minute", "delay": "23s"}


def headers_of(response: object) -> dict[str, str]:
    http = response.sdk_http_response  # type: ignore[attr-defined]
    return {k.lower(): v for k, v in (http.headers or {}).items()}


async def ask(
    proxy: Proxy, model: str = "default", text: str = "hello"
) -> tuple[str, dict[str, str]]:
    response = await proxy.client().aio.models.generate_content(model=model, contents=text)
    return response.text or "", headers_of(response)


async def metrics(proxy: Proxy) -> dict[str, object]:
    async with aiohttp.ClientSession() as s, s.get(f"{proxy.url}/metrics") as r:
        data: dict[str, object] = await r.json()
        return data


async def health(proxy: Proxy) -> dict[str, dict[str, object]]:
    async with aiohttp.ClientSession() as s, s.get(f"{proxy.url}/health") as r:
        data: dict[str, dict[str, object]] = (await r.json())["models"]
        return data


async def test_next_key_is_tried_before_next_member(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    upstream.script("m1", Q429)
    text, headers = await ask(proxy)
    assert text == "Hello from m1."
    assert headers["x-l104-model"] == "m1"
    assert headers["x-l104-attempts"] == "2"
    keys = [r["headers"]["x-goog-api-key"] for r in upstream.requests("m1")]
    assert keys == list(UPSTREAM_KEYS)


async def test_429_on_every_key_moves_to_the_next_member(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    upstream.script("m1", Q429, Q429)
    text, headers = await ask(proxy)
    assert (text, headers["x-l104-model"], headers["x-l104-attempts"]) == (
        "Hello from m2.",
        "m2",
        "3",
    )
    m = await metrics(proxy)
    assert m["model_rotations"] == 1
    assert m["model_429_count"] == {"m1": 2}
    assert m["model_usage"] == {"m1": 2, "m2": 1}
    assert m["requests_total"] == 1


async def test_cooling_member_is_skipped_without_a_round_trip(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    upstream.script("m1", Q429, Q429)
    await ask(proxy)
    for _ in range(3):
        _, headers = await ask(proxy)
        assert (headers["x-l104-model"], headers["x-l104-attempts"]) == ("m2", "1")
    assert len(upstream.requests("m1")) == 2
    state = (await health(proxy))["m1"]
    assert state["state"] == "cooling"
    assert state["cooldown_s"] == pytest.approx(23, abs=0.2)
    proxy.clock.advance(23.5)  # the quota is back: the next request is the probe
    _, headers = await ask(proxy)
    assert headers["x-l104-model"] == "m1"
    assert len(upstream.requests("m1")) == 3
    assert (await health(proxy))["m1"]["state"] == "ready"


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ({"status": 429, "delay": "7.5s"}, 7.5),
        ({"status": 429, "delay": None, "retry_after": "11"}, 11),
        ({"status": 429, "delay": None}, 60),  # rotation.cooldown_s
    ],
)
async def test_cooldown_length_comes_from_retry_info_then_header_then_config(
    start_proxy: StartProxy, upstream: Upstream, step: dict[str, object], expected: float
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    upstream.script("m1", step)
    await ask(proxy)
    assert (await health(proxy))["m1"]["cooldown_s"] == pytest.approx(expected, abs=0.2)


async def test_per_day_quota_cools_until_the_pacific_midnight(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    upstream.script("m1", {"status": 429, "quota": "day", "delay": "23s"})
    await ask(proxy)
    expected = until_daily_reset(datetime.now(UTC))
    state = (await health(proxy))["m1"]
    assert state["state"] == "cooling"
    assert state["cooldown_s"] == pytest.approx(expected, abs=3)


async def test_a_new_429_while_cooling_extends_the_cooldown(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    # Two requests in flight at once: the second 429 lands while m1 already cools.
    upstream.script(
        "m1",
        {"hang": 0.2, "status": 429, "delay": "10s"},
        {"hang": 0.4, "status": 429, "delay": "30s"},
    )
    await asyncio.gather(ask(proxy), ask(proxy))
    assert (await health(proxy))["m1"]["cooldown_s"] == pytest.approx(30, abs=0.5)
    upstream.script(
        "m2",
        {"hang": 0.2, "status": 429, "delay": "40s"},
        {"hang": 0.4, "status": 429, "delay": "5s"},
    )
    await asyncio.gather(ask(proxy, "m2"), ask(proxy, "m2"))
    assert (await health(proxy))["m2"]["cooldown_s"] == pytest.approx(40, abs=0.5)


async def test_a_404_member_is_retired_logged_once_and_skipped(
    start_proxy: StartProxy, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    upstream.script("m1", {"status": 404})
    with caplog.at_level(logging.WARNING, logger="l104.rotation"):
        for _ in range(3):
            _, headers = await ask(proxy)
            assert headers["x-l104-model"] == "m2"
    assert len(upstream.requests("m1")) == 1
    assert [r.message for r in caplog.records].count(
        "model m1 on responder up answered 404 NOT_FOUND: skipped until restart"
    ) == 1
    assert (await health(proxy))["m1"]["state"] == "retired"


@pytest.mark.parametrize(
    ("status", "exc"),
    [(400, errors.ClientError), (403, errors.ClientError), (500, errors.ServerError)],
)
async def test_outcomes_not_in_rotation_on_go_back_as_they_are(
    start_proxy: StartProxy, upstream: Upstream, status: int, exc: type[Exception]
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    upstream.script("m1", {"status": status})
    with pytest.raises(exc) as info:
        await ask(proxy)
    assert info.value.code == status  # type: ignore[attr-defined]
    assert len(upstream.requests()) == 1  # never rotated: another model would refuse it too
    if status == 400:
        assert "invalid argument" in str(info.value)


@pytest.mark.parametrize("refusal", [400, 403])
async def test_a_key_the_upstream_refuses_is_left_out_then_tried_again(
    start_proxy: StartProxy, upstream: Upstream, caplog: pytest.LogCaptureFixture, refusal: int
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, rotation=", disabled_s: 120"))
    upstream.bad_keys({"key-a-upstream": refusal})
    for _ in range(3):
        _, headers = await ask(proxy)
        assert headers["x-l104-model"] == "m1"  # the same model, on the other key
    keys = [r["headers"]["x-goog-api-key"] for r in upstream.requests("m1")]
    assert keys == ["key-a-upstream", "key-b-upstream", "key-b-upstream", "key-b-upstream"]
    warnings = [r for r in caplog.records if "refused by the upstream as invalid" in r.message]
    assert len(warnings) == 1  # logged once
    assert "key-a-upstream" not in caplog.text
    model = (await health(proxy))["m1"]
    assert model["keys"][0]["state"] == "disabled"  # type: ignore[index]
    proxy.clock.advance(121)
    upstream.bad_keys({})
    await ask(proxy)
    await ask(proxy)
    assert "key-a-upstream" in [r["headers"]["x-goog-api-key"] for r in upstream.requests("m1")[4:]]


async def test_a_403_for_another_projects_file_is_not_the_keys_fault(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    upstream.script("m1", {"status": 403})
    with pytest.raises(errors.ClientError):
        await ask(proxy)
    assert proxy.app[LIVE].runtime.cooldowns.disabled == {}
    assert len(upstream.requests()) == 1


async def test_503_rotates_like_429_but_does_not_cool(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    upstream.script("m1", {"status": 503, "retry_after": "30"})
    _, headers = await ask(proxy)
    assert headers["x-l104-model"] == "m2"
    assert (await health(proxy))["m1"]["state"] == "ready"
    _, headers = await ask(proxy)  # an overloaded model never penalises the key
    assert headers["x-l104-model"] == "m1"


async def test_whole_chain_exhausted_answers_429_with_retry_after_and_names_models(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    upstream.script("m1", {"status": 429, "delay": "40s"})
    upstream.script("m2", {"status": 429, "delay": "17s"})
    upstream.script("m3", {"status": 429, "delay": "90s"})
    with pytest.raises(errors.ClientError) as info:
        await ask(proxy)
    assert info.value.code == 429
    assert info.value.status == "RESOURCE_EXHAUSTED"
    for model in ("m1", "m2", "m3"):
        assert model in (info.value.message or "")
    # Again, now with no round trip at all, and read the header the SDK hides.
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{proxy.url}/v1beta/models/default:generateContent", json={"contents": []}) as r,
    ):
        assert r.status == 429
        assert r.headers["Retry-After"] == "17"
        assert r.headers["Content-Type"].startswith("application/json")
        body = await r.json()
        assert body["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert len(upstream.requests()) == 3


async def test_max_attempts_bounds_the_walk(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(
        base_yaml(upstream.url, rotation="", keys=UPSTREAM_KEYS).replace(
            "max_attempts: 6", "max_attempts: 3"
        )
    )
    for m in ("m1", "m2", "m3"):
        upstream.script(m, Q429, Q429)
    with pytest.raises(errors.ClientError) as info:
        await ask(proxy)
    assert info.value.code == 429
    assert len(upstream.requests()) == 3


async def test_unreachable_upstream_on_every_member_answers_503(start_proxy: StartProxy) -> None:
    from tests.conftest import free_port

    proxy = await start_proxy(base_yaml(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(errors.ServerError) as info:
        await ask(proxy)
    assert (info.value.code, info.value.status) == (503, "UNAVAILABLE")
    assert "m1" in (info.value.message or "")
    assert "m3" in (info.value.message or "")


async def test_a_hang_on_every_member_answers_504(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",), timeout_s=0.3))
    for m in ("m1", "m2", "m3"):
        upstream.script(m, {"hang": 5})
    with pytest.raises(errors.ServerError) as info:
        await ask(proxy)
    assert (info.value.code, info.value.status) == (504, "DEADLINE_EXCEEDED")


async def test_a_dropped_connection_or_a_hang_rotates(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",), timeout_s=0.3))
    upstream.script("m1", {"drop": True})
    upstream.script("m2", {"hang": 5})
    text, headers = await ask(proxy)
    assert (text, headers["x-l104-attempts"]) == ("Hello from m3.", "3")


async def test_a_member_name_starts_there_and_falls_forward(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    upstream.script("m2", Q429)
    _, headers = await ask(proxy, "m2")
    assert headers["x-l104-model"] == "m3"
    assert [r["model"] for r in upstream.requests()] == ["m2", "m3"]


async def test_any_other_model_passes_through_and_its_404_comes_back(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    text, headers = await ask(proxy, "gemini-other")
    assert (text, headers["x-l104-model"]) == ("Hello from gemini-other.", "gemini-other")
    upstream.script("gemini-gone", {"status": 404}, {"status": 404})
    for _ in range(2):
        with pytest.raises(errors.ClientError) as info:
            await ask(proxy, "gemini-gone")
        assert info.value.code == 404
    assert len(upstream.requests("gemini-gone")) == 2  # not retired: the upstream decides


async def test_template_member_tells_when_to_retry(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(
        base_yaml(upstream.url, keys=("only-key",), chains='default: ["up:m1", "busy"]')
    )
    upstream.script("m1", {"status": 429, "delay": "23s"})
    text, headers = await ask(proxy, text="my question")
    assert text == "All busy for busy, retry in 23s: my question"
    assert headers["x-l104-model"] == "busy"


async def test_upstream_keys_never_reach_the_client(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    from tests.conftest import key_shaped

    secret = key_shaped("q")
    proxy = await start_proxy(base_yaml(upstream.url, keys=(secret,)))
    upstream.script("m1", {"status": 400})
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{proxy.url}/v1beta/models/default:generateContent", json={"contents": []}) as r,
    ):
        raw = await r.read()
        assert secret.encode() not in raw
        assert all(secret not in v for v in r.headers.values())
    assert upstream.requests("m1")[0]["headers"]["x-goog-api-key"] == secret
    runtime = proxy.app[LIVE].runtime
    assert secret not in repr(runtime.config)


async def test_after_a_cooldown_a_known_quota_takes_requests_at_once(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    """The 429 said the quota (quotaValue 20 a minute): no probe gates the model after its
    cooldown; a burst takes the room the pace allows."""
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    upstream.script("m1", {"status": 429, "delay": "10s", "value": "20"})
    await ask(proxy)
    proxy.clock.advance(10)
    upstream.script("m1", {"hang": 0.3})
    served = await asyncio.gather(*(ask(proxy) for _ in range(4)))
    assert [headers["x-l104-model"] for _, headers in served] == ["m1"] * 4
    assert len(upstream.requests("m1")) == 5


async def test_after_a_cooldown_an_unknown_quota_is_probed_and_the_others_wait(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    """No quotaValue: one request probes; the others wait for its answer instead of being
    refused or sent elsewhere, and then go to the model that has room again."""
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    upstream.script("m1", {"status": 429, "delay": "10s", "value": None})
    await ask(proxy)
    proxy.clock.advance(10)
    upstream.script("m1", {"hang": 0.3})  # the probe is slow: the others wait on its answer
    served = await asyncio.gather(*(ask(proxy) for _ in range(4)))
    assert [headers["x-l104-model"] for _, headers in served] == ["m1"] * 4
    assert len(upstream.requests("m1")) == 5  # the first 429, the probe, then the three that waited
    assert len(upstream.requests("m2")) == 1  # only the first request, when m1 said 429


async def test_a_key_at_its_pace_leaves_no_probe_behind(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    """A cooldown ended while the pace still said wait: the key was skipped. That skip must not
    hold a probe, or every later request would see a phantom "cooling" for 30 s."""
    proxy = await start_proxy(base_yaml(upstream.url, chains='default: ["up:m1"]', keys=("k",)))
    await ask(proxy)  # t = 0: one call the upstream counts
    proxy.clock.advance(1)
    upstream.script("m1", {"status": 429, "delay": "50s", "value": "1"})  # 1 a minute
    with pytest.raises(errors.ClientError):
        await ask(proxy)
    proxy.clock.advance(51)  # cooled down, but the 1-a-minute pace waits for t = 60
    with pytest.raises(errors.ClientError) as paced:
        await ask(proxy)
    assert "pace" in (paced.value.message or "")
    proxy.clock.advance(9)  # the pace has room again: the model must take the request
    _, headers = await ask(proxy)
    assert headers["x-l104-model"] == "m1"


async def test_keys_of_one_project_share_its_quota(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    """A 429 for (project, model) cools every key of that project for that model."""
    grouped = 'api_keys: [{key: "k-1", project: p1}, {key: "k-2", project: p1}, "k-3"]'
    yaml = base_yaml(upstream.url).replace(
        'api_keys: ["key-a-upstream", "key-b-upstream"]', grouped
    )
    proxy = await start_proxy(yaml)
    upstream.script("m1", {"status": 429, "delay": "30s"})
    _, headers = await ask(proxy)
    assert headers["x-l104-model"] == "m1"
    keys = [r["headers"]["x-goog-api-key"] for r in upstream.requests("m1")]
    assert keys == ["k-1", "k-3"]  # k-2 shares p1's exhausted quota: never called
    for _ in range(3):
        await ask(proxy)
    assert {r["headers"]["x-goog-api-key"] for r in upstream.requests("m1")[2:]} == {"k-3"}
    states = (await health(proxy))["m1"]
    assert states["state"] == "partial"
    assert states["keys"] == [
        {"key": 0, "project": "p1", "state": "cooling", "cooldown_s": 30.0},
        {"key": 1, "project": "p1", "state": "cooling", "cooldown_s": 30.0},
        {"key": 2, "project": "key 2", "state": "ready"},
    ]


async def test_a_members_keys_take_turns(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    for _ in range(4):
        await ask(proxy)
    keys = [r["headers"]["x-goog-api-key"] for r in upstream.requests("m1")]
    assert keys == [*UPSTREAM_KEYS, *UPSTREAM_KEYS]  # not the first key until its 429


async def test_a_200_that_is_not_json_is_a_failed_attempt(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    upstream.script("m1", {"garbage": True})
    text, headers = await ask(proxy)
    assert (text, headers["x-l104-model"]) == ("Hello from m2.", "m2")
    for model in ("m1", "m2", "m3"):
        upstream.script(model, {"garbage": True})
    with pytest.raises(errors.ServerError) as info:
        await ask(proxy)
    assert info.value.code == 502
    assert "valid answer" in (info.value.message or "")


async def test_the_deadline_covers_every_attempt_together(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    yaml = base_yaml(upstream.url, keys=("only-key",), timeout_s=5, rotation=", deadline_s: 1")
    proxy = await start_proxy(yaml)
    for model in ("m1", "m2", "m3"):
        upstream.script(model, {"hang": 5})
    started = time.monotonic()
    with pytest.raises(errors.ServerError) as info:
        await ask(proxy)
    assert info.value.code == 504
    assert "deadline_s" in (info.value.message or "")
    assert time.monotonic() - started < 3  # not 5 s a member


async def test_a_slow_first_byte_is_a_timeout_that_rotates(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    yaml = base_yaml(upstream.url, keys=("only-key",), timeout_s=5).replace(
        "connect_timeout_s: 1}", "connect_timeout_s: 1, first_byte_timeout_s: 0.3}"
    )
    proxy = await start_proxy(yaml)
    upstream.script("m1", {"hang": 3})
    started = time.monotonic()
    _, headers = await ask(proxy)
    assert headers["x-l104-model"] == "m2"
    assert time.monotonic() - started < 2


async def test_a_member_that_keeps_timing_out_is_set_aside(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",), timeout_s=0.3))
    upstream.script("m1", *({"hang": 1} for _ in range(3)))
    for _ in range(3):
        _, headers = await ask(proxy)
        assert headers["x-l104-model"] == "m2"  # each one paid m1's timeout
    _, headers = await ask(proxy)
    assert headers["x-l104-model"] == "m2"
    assert len(upstream.requests("m1")) == 3  # the fourth did not pay it again
    m1 = (await health(proxy))["m1"]
    assert m1["state"] == "cooling"
    assert m1["cooldown_s"] == 5.0


async def test_an_answer_over_max_response_bytes_is_a_clean_502(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    yaml = base_yaml(upstream.url, extra="limits: {max_response_bytes: 100000}")
    proxy = await start_proxy(yaml)
    upstream.script("m1", {"big": 200_000})
    with pytest.raises(errors.ServerError) as info:
        await ask(proxy)
    assert info.value.code == 502
    assert len(upstream.requests()) == 1  # another model's answer would be as large
