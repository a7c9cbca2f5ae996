"""The template responder fills {prompt}, {model} and {retry_after}; ${VAR} is the config's."""

from __future__ import annotations

from tests.conftest import StartProxy, Upstream, base_yaml


async def test_placeholders_and_env_do_not_collide(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    text = base_yaml(upstream.url, chains='default: ["tpl"]').replace(
        "  mirror: {type: echo}",
        "  mirror: {type: echo}\n  tpl: {type: template, text: "
        '"${GREETING:-Hi} {prompt} from {model}, {retry_after}s {other}"}',
    )
    proxy = await start_proxy(text, {"GREETING": "Hello"})
    response = await proxy.client().aio.models.generate_content(model="default", contents="you")
    assert response.text == "Hello you from tpl, 0s {other}"
