"""Usage read from answers without parsing them: Gemini's, Live's and OpenAI's shapes."""

from __future__ import annotations

import orjson

from proxy.exchange import Exchange


def _gemini(prompt: int, output: int, model: str, model_first: bool = False) -> bytes:
    usage = {"promptTokenCount": prompt, "candidatesTokenCount": output,
             "totalTokenCount": prompt + output}  # fmt: skip
    body: dict[str, object] = {"candidates": [{"content": {"parts": [{"text": "hi"}]}}]}
    if model_first:
        body = {"modelVersion": model, **body, "usageMetadata": usage}
    else:
        body = {**body, "usageMetadata": usage, "modelVersion": model}
    return orjson.dumps(body)


def test_counts_and_the_model_after_the_usage() -> None:
    exchange = Exchange()
    exchange.sniff_usage(_gemini(8, 6, "gemini-2.5-flash-001"))
    assert (exchange.input_tokens, exchange.output_tokens, exchange.total_tokens) == (8, 6, 14)
    assert exchange.response_model == "gemini-2.5-flash-001"


def test_the_model_before_the_usage_is_found_too() -> None:
    exchange = Exchange()
    exchange.sniff_usage(_gemini(3, 4, "gemini-2.0-flash", model_first=True))
    assert (exchange.input_tokens, exchange.output_tokens) == (3, 4)
    assert exchange.response_model == "gemini-2.0-flash"


def test_a_later_chunk_replaces_the_counts_and_text_that_looks_like_usage_does_not_count() -> None:
    exchange = Exchange()
    exchange.sniff_usage(_gemini(5, 1, "m"))
    # The answer's own text mentions a count before the real usage object: only what follows
    # "usageMetadata" is read.
    text = b'{"candidates": [{"content": {"parts": [{"text": "\\"totalTokenCount\\": 999"}]}}], '
    exchange.sniff_usage(text + b'"usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 12}}')
    assert (exchange.input_tokens, exchange.output_tokens, exchange.total_tokens) == (5, 1, 12)
    assert exchange.response_model == "m"  # a chunk without a model keeps the one seen


def test_live_and_openai_shapes() -> None:
    live = Exchange()
    live.sniff_usage(b'{"usageMetadata": {"promptTokenCount": 2, "responseTokenCount": 7}}')
    assert (live.input_tokens, live.output_tokens) == (2, 7)
    openai = Exchange()
    openai.sniff_usage(
        b'{"model": "gemini-2.5-pro", "choices": [], '
        b'"usage": {"prompt_tokens": 4, "completion_tokens": 9, "total_tokens": 13}}'
    )
    assert (openai.input_tokens, openai.output_tokens, openai.total_tokens) == (4, 9, 13)
    assert openai.response_model == "gemini-2.5-pro"


def test_an_answer_without_usage_changes_nothing() -> None:
    exchange = Exchange()
    exchange.sniff_usage(b'{"candidates": [{"content": {"parts": [{"text": "modelVersion"}]}}]}')
    assert (exchange.input_tokens, exchange.output_tokens, exchange.response_model) == (0, 0, "")


def test_the_token_kinds_that_price_apart_on_every_surface() -> None:
    gemini = Exchange()
    gemini.sniff_usage(
        b'{"usageMetadata": {"promptTokenCount": 1000, "candidatesTokenCount": 100, '
        b'"cachedContentTokenCount": 800, "thoughtsTokenCount": 400, '
        b'"toolUsePromptTokenCount": 50, "totalTokenCount": 1550, "promptTokensDetails": '
        b'[{"modality": "TEXT", "tokenCount": 400}, {"modality": "AUDIO", "tokenCount": 600}]}}'
    )
    assert (gemini.input_tokens, gemini.output_tokens, gemini.cached_tokens) == (1000, 100, 800)
    assert (gemini.thoughts_tokens, gemini.tool_use_tokens, gemini.audio_tokens) == (400, 50, 600)

    openai = Exchange()  # reasoning is inside completion_tokens there; apart in the ledger
    openai.sniff_usage(
        b'{"usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500, '
        b'"prompt_tokens_details": {"cached_tokens": 800}, '
        b'"completion_tokens_details": {"reasoning_tokens": 400}}, "model": "m1"}'
    )
    assert (openai.input_tokens, openai.output_tokens) == (1000, 100)
    assert (openai.cached_tokens, openai.thoughts_tokens) == (800, 400)

    interaction = Exchange()
    interaction.sniff_usage(
        b'{"id": "i1", "usage": {"total_input_tokens": 1000, "total_output_tokens": 100, '
        b'"total_cached_tokens": 800, "total_thought_tokens": 400, "total_tool_use_tokens": 50, '
        b'"total_tokens": 1550}}'
    )
    assert (interaction.input_tokens, interaction.output_tokens) == (1000, 100)
    assert (interaction.cached_tokens, interaction.thoughts_tokens) == (800, 400)
    assert interaction.tool_use_tokens == 50

    live = Exchange()  # Live says responseTokenCount for the output
    live.sniff_usage(
        b'{"usageMetadata": {"promptTokenCount": 20, "responseTokenCount": 7, '
        b'"cachedContentTokenCount": 5, "thoughtsTokenCount": 3, "totalTokenCount": 30}}'
    )
    assert (live.input_tokens, live.output_tokens, live.cached_tokens) == (20, 7, 5)
    assert live.thoughts_tokens == 3
