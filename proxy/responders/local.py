"""The shared body of the responders that answer without an upstream (fake, template, echo).

Each of them only decides the text; this module turns it into Gemini's answer for every action,
streaming included, with the configured latency between chunks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from proxy import openai_wire
from proxy.errors import error_body
from proxy.reader import Reader
from proxy.responders.base import Call, Reply
from proxy.wire import (
    all_text,
    chunk,
    embedding,
    estimate_tokens,
    last_user_text,
    parse_body,
    response_id,
    split,
    stream_frames,
)

TextFn = Callable[[Call, dict[str, Any]], str]


@dataclass(frozen=True, slots=True)
class Pace:
    """How a local answer is shaped in time and size."""

    chunks: int = 1
    latency_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    prompt_tokens: int | None = None
    output_tokens: int | None = None


def parse_pace(r: Reader, chunks: int = 1) -> Pace:
    return Pace(
        chunks=r.whole("chunks", chunks, low=1, high=10_000),
        latency_ms=r.number("latency_ms", 0.0, high=600_000),
        chunk_delay_ms=r.number("chunk_delay_ms", 0.0, high=600_000),
        prompt_tokens=r.whole("prompt_tokens", -1, low=0) if r.has("prompt_tokens") else None,
        output_tokens=r.whole("output_tokens", -1, low=0) if r.has("output_tokens") else None,
    )


class LocalResponder:
    """A responder whose text comes from ``text_for``; one pseudo-key, no round trip."""

    key_count = 1
    remote = False
    studio = False
    actions: frozenset[str] | None = None
    projects: tuple[int, ...] = (0,)
    project_names: tuple[str, ...] = ("local",)

    def __init__(self, name: str, pace: Pace, text_for: TextFn) -> None:
        self.name = name
        self.pace = pace
        self.text_for = text_for

    async def send(self, call: Call, key_index: int) -> Reply:
        data = parse_body(call.body)
        if self.pace.latency_ms:
            await asyncio.sleep(self.pace.latency_ms / 1000)
        if call.openai:
            return self._openai(call, openai_wire.as_contents(data))
        prompt = self.pace.prompt_tokens
        if prompt is None:
            prompt = estimate_tokens(last_user_text(data))
        if call.action == "countTokens":
            return Reply(200, orjson.dumps({"totalTokens": prompt}))
        if call.action in ("embedContent", "batchEmbedContents"):
            return Reply(200, orjson.dumps(self._embed(call, data)))
        text, output, rid = self._answer(call, data)
        if not call.streaming:
            body = chunk(text, call.model, rid, finish=True, prompt=prompt, output=output)
            return Reply(200, orjson.dumps(body))
        parts = split(text, self.pace.chunks)
        objs = [
            chunk(
                p,
                call.model,
                rid,
                finish=i == len(parts) - 1,
                prompt=prompt,
                output=output if i == len(parts) - 1 else 0,
            )
            for i, p in enumerate(parts)
        ]
        frames = stream_frames(objs, call.sse)
        ctype = "text/event-stream" if call.sse else "application/json"
        return Reply(200, content_type=ctype, chunks=self._drip(frames))

    def _answer(self, call: Call, data: dict[str, Any]) -> tuple[str, int, str]:
        """The answer's text, its output tokens and its response id."""
        text = self.text_for(call, data)
        output = self.pace.output_tokens
        if output is None:
            output = estimate_tokens(text)
        return text, output, response_id(call.model, text)

    def _openai(self, call: Call, data: dict[str, Any]) -> Reply:
        """The OpenAI-compatible shapes, from the same text and token counts."""
        prompt = self.pace.prompt_tokens
        if prompt is None:
            prompt = estimate_tokens(all_text(data))
        if call.action == openai_wire.EMBEDDINGS:
            vectors = [embedding(" ".join(_texts_of(t))) for t in data["contents"]]
            return Reply(200, orjson.dumps(openai_wire.embeddings(vectors, call.model, prompt)))
        text, output, rid = self._answer(call, data)
        if not call.streaming:
            body = openai_wire.completion(text, call.model, rid, prompt, output)
            return Reply(200, orjson.dumps(body))
        parts = split(text, self.pace.chunks)
        frames = [
            openai_wire.chunk(
                p,
                call.model,
                rid,
                last=i == len(parts) - 1,
                usage_of=openai_wire.usage(prompt, output) if i == len(parts) - 1 else None,
            )
            for i, p in enumerate(parts)
        ]
        frames.append(openai_wire.DONE)
        return Reply(200, content_type="text/event-stream", chunks=self._drip(frames))

    async def _drip(self, frames: list[bytes]) -> AsyncIterator[bytes]:
        for i, frame in enumerate(frames):
            if i and self.pace.chunk_delay_ms:
                await asyncio.sleep(self.pace.chunk_delay_ms / 1000)
            yield frame

    def _embed(self, call: Call, data: dict[str, Any]) -> dict[str, Any]:
        if call.action == "embedContent":
            return {
                "embedding": {
                    "values": embedding(last_user_text({"contents": [data.get("content")]}))
                }
            }
        requests = data.get("requests")
        if not isinstance(requests, list):
            requests = []
        return {
            "embeddings": [
                {"values": embedding(last_user_text({"contents": [r.get("content")]}))}
                for r in requests
                if isinstance(r, dict)
            ]
        }

    async def fetch(
        self, version: str, path: str, query: Mapping[str, str], key_index: int
    ) -> Reply:
        return Reply(404, error_body(404, f"{path} is not served by responder {self.name}"))


def _texts_of(turn: dict[str, Any]) -> list[str]:
    return [p["text"] for p in turn["parts"]]
