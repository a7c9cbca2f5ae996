"""The fake responder: deterministic, shaped, and scriptable."""

from __future__ import annotations

import orjson

from proxy.responders import Call
from proxy.responders.fake import FakeResponder, FakeSpec
from proxy.responders.local import Pace
from proxy.routing.quota import read_quota
from tests.conftest import StartProxy, Upstream, base_yaml


async def test_scripted_statuses_then_the_last_repeats() -> None:
    fake = FakeResponder(
        "f", FakeSpec(Pace(), script={"m": (429, 503, 200)}, retry_delay_s=9, per_day=True)
    )
    statuses = [(await fake.send(Call("generateContent", "m"), 0)).status for _ in range(5)]
    assert statuses == [429, 503, 200, 200, 200]
    fake.turns.clear()
    signal = read_quota((await fake.send(Call("generateContent", "m"), 0)).body)
    assert (signal.retry_delay_s, signal.per_day) == (9, True)
    other = await fake.send(Call("generateContent", "other"), 0)
    assert other.status == 200


async def test_answers_are_deterministic_with_configured_tokens() -> None:
    fake = FakeResponder("f", FakeSpec(Pace(prompt_tokens=5, output_tokens=7), text="T {model}"))
    body = b'{"contents": [{"role": "user", "parts": [{"text": "q"}]}]}'
    one = await fake.send(Call("generateContent", "m", body=body), 0)
    two = await fake.send(Call("generateContent", "m", body=body), 0)
    assert one.body == two.body
    data = orjson.loads(one.body)
    assert data["candidates"][0]["content"]["parts"][0]["text"] == "T m"
    assert data["usageMetadata"] == {
        "promptTokenCount": 5,
        "candidatesTokenCount": 7,
        "totalTokenCount": 12,
    }
    count = await fake.send(Call("countTokens", "m", body=body), 0)
    assert orjson.loads(count.body) == {"totalTokens": 5}


async def test_script_drives_rotation_through_the_sdk(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    text = base_yaml(upstream.url, chains='default: ["script:m1", "script:m2"]').replace(
        "  local: {type: fake, chunks: 3}",
        "  local: {type: fake, chunks: 3}\n"
        "  script: {type: fake, script: {m1: [429]}, retry_delay_s: 12}",
    )
    proxy = await start_proxy(text)
    response = await proxy.client().aio.models.generate_content(model="default", contents="x")
    assert response.text == "This is L104 Proxy's fake responder answering as m2."
    assert response.model_version == "m2"
