"""The cost of an answer, each rule with numbers worked by hand, and the ledger's costs through
the proxy. Prices here are the test's own (``pricing:``), never the shipped table's."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from proxy.billing.prices import Price, PriceBook, Rates, Usage, cost, shipped
from tests.conftest import StartProxy, Upstream, base_yaml, ledger_rows

# USD per million tokens: round numbers, so the sums below can be checked by eye.
FLASH = Price(Rates(input=1.0, output=10.0, cached_input=0.25, audio_input=3.0), batch=0.5)
PRO = Price(
    Rates(input=2.0, output=20.0, cached_input=0.5),
    above=Rates(input=4.0, output=30.0, cached_input=1.0),
    tier_tokens=200_000,
)


def test_input_and_output() -> None:
    # 1,000 in at $1/M + 500 out at $10/M = 0.001 + 0.005
    assert cost(Usage(prompt=1_000, output=500), FLASH) == pytest.approx(0.006)


def test_cached_input_is_part_of_the_prompt_at_its_own_price() -> None:
    # 1,000 prompt of which 800 cached: 200 x $1/M + 800 x $0.25/M = 0.0002 + 0.0002
    assert cost(Usage(prompt=1_000, cached=800), FLASH) == pytest.approx(0.0004)


def test_thoughts_are_output() -> None:
    # 100 out + 400 thoughts, all at $10/M = 0.005 (new-api #1014 left thoughts out)
    assert cost(Usage(output=100, thoughts=400), FLASH) == pytest.approx(0.005)


def test_tool_use_prompt_tokens_are_input() -> None:
    # 1,000 tool-use tokens at the input price: 0.001, not 0.01 (new-api #2935 charged output)
    assert cost(Usage(tool_use=1_000), FLASH) == pytest.approx(0.001)


def test_audio_input_at_the_audio_price() -> None:
    # 1,000 prompt of which 600 audio: 400 x $1/M + 600 x $3/M = 0.0004 + 0.0018
    assert cost(Usage(prompt=1_000, audio=600), FLASH) == pytest.approx(0.0022)


def test_the_tier_is_chosen_by_the_prompt_for_the_whole_request() -> None:
    # At 200,000 the base tier: 200,000 x $2/M + 1,000 x $20/M = 0.4 + 0.02
    assert cost(Usage(prompt=200_000, output=1_000), PRO) == pytest.approx(0.42)
    # One token more, and everything at the higher tier (new-api #3063 had no such tier):
    # 200,001 x $4/M + 1,000 x $30/M = 0.800004 + 0.03
    assert cost(Usage(prompt=200_001, output=1_000), PRO) == pytest.approx(0.830004)
    # Cached tokens take the tier's cached price: 100,000 x $4/M + 150,000 x $1/M
    assert cost(Usage(prompt=250_000, cached=150_000), PRO) == pytest.approx(0.55)


def test_a_batch_pays_its_share() -> None:
    # 0.006 at the batch share of a half
    assert cost(Usage(prompt=1_000, output=500), FLASH, batch=True) == pytest.approx(0.003)


def test_a_model_with_no_price_is_unknown_and_said_once(caplog: pytest.LogCaptureFixture) -> None:
    book = PriceBook({"flash": FLASH})
    with caplog.at_level(logging.WARNING, logger="l104.billing"):
        assert book.of("mystery") is None
        assert book.of("mystery") is None
    assert caplog.text.count("no price for model mystery") == 1
    assert book.of("models/flash") is FLASH


def test_the_shipped_table_is_dated_and_complete() -> None:
    taken, table = shipped()
    assert taken[:4].isdigit()
    assert {"gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite"} <= set(table)
    assert table["gemini-2.5-pro"].above is not None
    assert all(p.batch == 0.5 for p in table.values())


PRICING = """
pricing:
  m1: {input: 1.0, output: 10.0, cached_input: 0.25}
  m2: {input: 2.0, output: 20.0}
"""


async def test_each_ledger_row_carries_its_tokens_key_project_and_cost(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    db = tmp_path / "l104.db"
    proxy = await start_proxy(base_yaml(upstream.url, store=str(db), extra=PRICING))
    usage = {
        "promptTokenCount": 1_000,
        "cachedContentTokenCount": 800,
        "candidatesTokenCount": 100,
        "thoughtsTokenCount": 400,
        "toolUsePromptTokenCount": 1_000,
        "totalTokenCount": 2_500,
    }
    upstream.script("m1", {"usage": usage})
    await proxy.client().aio.models.generate_content(model="m1", contents="hi")
    upstream.script("m3", {"usage": usage})  # m3 has no price
    await proxy.client().aio.models.generate_content(model="m3", contents="hi")
    rows = await ledger_rows(
        db,
        "served, input_tokens, output_tokens, cached_tokens, thoughts_tokens, tool_use_tokens, "
        "key_index, project, cost_usd, list_cost_usd",
        2,
    )
    # 200 x $1 + 800 x $0.25 + (100 + 400) x $10 + 1,000 x $1, per million = 0.0064
    assert rows[0][:8] == ("m1", 1_000, 100, 800, 400, 1_000, rows[0][6], "key " + str(rows[0][6]))
    assert rows[0][8] == pytest.approx(0.0064)
    assert rows[0][9] == pytest.approx(0.0064)
    assert rows[1][0] == "m3"
    assert rows[1][8:] == (None, None)  # no price: unknown, never a guess


async def test_a_free_tier_costs_nothing_but_keeps_the_list_price(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    db = tmp_path / "l104.db"
    yaml = base_yaml(upstream.url, store=str(db), extra=PRICING).replace(
        "connect_timeout_s: 1}", "connect_timeout_s: 1, free_tier: true}"
    )
    proxy = await start_proxy(yaml)
    await proxy.client().aio.models.generate_content(model="m1", contents="hi")
    rows = await ledger_rows(db, "cost_usd, list_cost_usd", 1)
    # The fake's usual usage: 8 in at $1/M + 3 out at $10/M = 0.000038
    assert rows[0][0] == 0.0
    assert rows[0][1] == pytest.approx(0.000038)
