"""What one request did, filled in by the layers it passes: for limits, the ledger and spans.

The record hangs on the request under :data:`EXCHANGE`; :func:`exchange_of` makes it on first use.
"""

from __future__ import annotations

import re
import time

from aiohttp import web

# ``response`` is the Live API's name for the output count. One pattern finds the counts and
# the model in a single pass over what follows ``usageMetadata`` (the model usually comes next).
# The quote both branches open with is outside the alternation: the scan then stops only at
# quotes, not at every byte (a third of the pattern's time).
_USAGE = re.compile(
    rb'"(?:(prompt|candidates|response|total|cachedContent|thoughts|toolUsePrompt)TokenCount"'
    rb'\s*:\s*(\d+)|modelVersion"\s*:\s*"([^"]{1,128})")'
)
_MODEL = re.compile(rb'"modelVersion"\s*:\s*"([^"]{1,128})"')
_FIELDS = {
    b"prompt": "input_tokens",
    b"candidates": "output_tokens",
    b"response": "output_tokens",
    b"total": "total_tokens",
    b"cachedContent": "cached_tokens",
    b"thoughts": "thoughts_tokens",
    b"toolUsePrompt": "tool_use_tokens",
}
# Audio input, priced apart on some models: ``promptTokensDetails: [{"modality": "AUDIO",
# "tokenCount": N}]`` (either order of the two fields).
_AUDIO = re.compile(
    rb'"modality"\s*:\s*"AUDIO"\s*,\s*"tokenCount"\s*:\s*(\d+)'
    rb'|"tokenCount"\s*:\s*(\d+)\s*,\s*"modality"\s*:\s*"AUDIO"'
)
# The OpenAI-compatible endpoint's ``usage`` and ``model``, and the Interactions API's
# (``usage.total_input_tokens``).
_OPENAI_COUNT = re.compile(
    rb'"(prompt|completion|total|cached|reasoning|total_input|total_output|total_cached'
    rb'|total_thought|total_tool_use)_tokens"\s*:\s*(\d+)'
)
_OPENAI_MODEL = re.compile(rb'"model"\s*:\s*"([^"]{1,128})"')
_OPENAI_FIELDS = {
    b"prompt": "input_tokens",
    b"completion": "output_tokens",
    b"total": "total_tokens",
    b"cached": "cached_tokens",  # prompt_tokens_details.cached_tokens
    b"reasoning": "thoughts_tokens",  # completion_tokens_details.reasoning_tokens
    b"total_input": "input_tokens",
    b"total_output": "output_tokens",
    b"total_cached": "cached_tokens",
    b"total_thought": "thoughts_tokens",
    b"total_tool_use": "tool_use_tokens",
}


class Exchange:
    """Every request makes one: its fields are class-level defaults until a layer sets them
    (a dataclass's ``__init__`` assigned fourteen fields a request, most never changed)."""

    client: str = "anonymous"
    requested: str = ""
    served: str = ""
    attempts: int = 0
    status: int = 0
    input_tokens: int = 0  # the whole prompt: cached, tool-use and audio tokens among them
    output_tokens: int = 0  # the answer's (thoughts are counted apart)
    total_tokens: int = 0
    cached_tokens: int = 0
    thoughts_tokens: int = 0
    tool_use_tokens: int = 0
    audio_tokens: int = 0  # of the prompt
    responder: str = ""  # the responder, and its key, that answered (-1: none)
    key_index: int = -1
    # What the answer cost (to the client, at the price list), once reckoned: the budgets layer
    # and the ledger both need it after the answer.
    costs: tuple[float | None, float | None] | None = None
    batch: bool = False  # the usage of a batch: priced at the batch rate
    first_byte_s: float | None = None
    response_model: str = ""
    rate_limited: str = ""  # which limit refused the request, if one did
    trace_id: str = ""  # the request's span's, when it is traced (for the ledger)

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.wall = time.time()

    def sniff_usage(self, data: bytes) -> None:
        """Read ``usageMetadata`` counts from a body or a stream chunk, without parsing JSON.

        In a stream the last chunk carries the totals, so later values replace earlier ones.
        The OpenAI-compatible shape (``"usage": {"prompt_tokens", …}``) is read too.
        """
        at = data.rfind(b'"usageMetadata"')
        if at < 0:
            self._sniff_openai(data)
            return
        model = b""
        for field_name, count, version in _USAGE.findall(data, at):
            if version:
                model = version
            else:
                setattr(self, _FIELDS[field_name], int(count))
        if not model:  # it came before the usage, as some servers order the fields
            found = _MODEL.search(data)
            model = found.group(1) if found else b""
        if model:
            self.response_model = model.decode(errors="replace")
        if b'"AUDIO"' in data:
            audio = _AUDIO.search(data, at)
            if audio is not None:
                self.audio_tokens = int(audio.group(1) or audio.group(2))

    def _sniff_openai(self, data: bytes) -> None:
        at = data.rfind(b'"usage"')
        if at < 0:
            return
        reasoning = False
        for match in _OPENAI_COUNT.finditer(data, at):
            setattr(self, _OPENAI_FIELDS[match.group(1)], int(match.group(2)))
            reasoning = reasoning or match.group(1) == b"reasoning"
        if reasoning:  # OpenAI counts reasoning inside completion_tokens; Gemini apart
            self.output_tokens = max(0, self.output_tokens - self.thoughts_tokens)
        model = _OPENAI_MODEL.search(data)
        if model:
            self.response_model = model.group(1).decode(errors="replace")

    def answered_by(self, responder: str, model: str, key_index: int, attempts: int) -> None:
        """The member (responder, model) and key that answered, after so many attempts."""
        self.responder, self.served, self.key_index = responder, model, key_index
        self.attempts = attempts

    def mark_first_byte(self) -> None:
        if self.first_byte_s is None:
            self.first_byte_s = time.perf_counter() - self.started


EXCHANGE = web.RequestKey("l104_exchange", Exchange)


def exchange_of(request: web.Request) -> Exchange:
    try:
        return request[EXCHANGE]  # the outermost layer made it: the usual, fast path
    except KeyError:
        record = request[EXCHANGE] = Exchange()
        return record
