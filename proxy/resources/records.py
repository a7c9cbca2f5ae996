"""What an upstream answer tells the registry: the resources it made, the result files a batch or
an operation points to, and the usage a finished batch counted.

Only answers of the upstream are read here, never a client's body: a name found in one is a
resource the upstream made for the key that was used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any

import orjson

from proxy.exchange import Exchange
from proxy.resources.kinds import BATCH, FILE, kind_of, parents
from proxy.resources.owners import Holder, Owners, wall_time
from proxy.resources.pinning import file_name

# Where a batch's or an operation's answer names the files it made (a batch's responses, a
# video of Veo's).
RESULT_KEYS = frozenset({"responsesFile", "responses_file", "uri", "fileUri", "fileName"})
_EXPIRY_KEYS = ("expireTime", "expirationTime", "expire_time")
_USAGE_FIELDS = {
    "promptTokenCount": 0,
    "candidatesTokenCount": 1,
    "totalTokenCount": 2,
}
# A results file's line longer than this is skipped, not held: the file is read a piece at a
# time, so memory stays bounded whatever its size.
MAX_RESULT_LINE = 64 * 1024 * 1024

Usage = tuple[int, int, int]
# Reads a batch's results file (``files/batch-…``) and sums the usage of its answers; ``None``
# when it cannot be read now (the batch is settled on a later poll).
ResultsReader = Callable[[str], Awaitable[Usage | None]]


def expiry(meta: dict[str, Any]) -> float:
    """A resource's expiry as wall time, from whichever field its kind uses (0: unknown)."""
    for key in _EXPIRY_KEYS:
        if key in meta:
            return wall_time(meta[key])
    return 0.0


def made(meta: Any) -> str | None:
    """The resource an answer describes (its ``name``), if the name is a resource's."""
    if not isinstance(meta, dict):
        return None
    name = meta.get("name")
    if isinstance(name, str) and kind_of(name) is not None:
        return name
    return None


def _walk(data: Any) -> Iterator[tuple[str, Any]]:
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, dict | list):
                    stack.append(value)
                else:
                    yield key, value
        elif isinstance(node, list):
            stack.extend(node)


def result_files(meta: Any) -> list[str]:
    """The files a batch or an operation answer names as its results."""
    found = [
        name
        for key, value in _walk(meta)
        if key in RESULT_KEYS and isinstance(value, str) and (name := file_name(value))
    ]
    return list(dict.fromkeys(found))


def batch_done(meta: Any) -> bool:
    """Whether a batch answer says it has ended (succeeded, failed, cancelled or expired)."""
    if not isinstance(meta, dict):
        return False
    state = ""
    for holder in (meta.get("metadata"), meta):
        if isinstance(holder, dict) and isinstance(holder.get("state"), str):
            state = holder["state"]
            break
    return (
        state
        in {
            "BATCH_STATE_SUCCEEDED",
            "BATCH_STATE_FAILED",
            "BATCH_STATE_CANCELLED",
            "BATCH_STATE_EXPIRED",
            "JOB_STATE_SUCCEEDED",
        }
        or meta.get("done") is True
    )


def responses_file(meta: Any) -> str | None:
    """The results file a finished batch wrote its answers to, if it wrote them to a file."""
    if not isinstance(meta, dict):
        return None
    for place in (meta.get("metadata"), meta):
        output = place.get("output") if isinstance(place, dict) else None
        for holder in (output, meta.get("response"), meta.get("dest")):
            if isinstance(holder, dict):
                name = holder.get("responsesFile") or holder.get("responses_file")
                if isinstance(name, str) and name.startswith("files/"):
                    return name
    return None


def _add_usage(sums: list[int], data: Any) -> None:
    for key, value in _walk(data):
        at = _USAGE_FIELDS.get(key)
        if at is not None and isinstance(value, int) and not isinstance(value, bool):
            sums[at] += value


async def results_usage(pieces: AsyncIterator[bytes]) -> Usage:
    """The usage of every answer in a batch's results file (JSON lines, each with its
    ``response``), read from ``pieces`` as they come. A line that is not JSON, or longer than
    :data:`MAX_RESULT_LINE`, counts nothing."""
    sums = [0, 0, 0]
    line = bytearray()
    skipping = False
    async for piece in pieces:
        start = 0
        while (end := piece.find(b"\n", start)) >= 0:
            if not skipping:
                line += piece[start:end]
                _line_usage(sums, bytes(line))
            line.clear()
            skipping = False
            start = end + 1
        if not skipping:
            line += piece[start:]
            if len(line) > MAX_RESULT_LINE:
                line.clear()
                skipping = True
    if line and not skipping:
        _line_usage(sums, bytes(line))
    return sums[0], sums[1], sums[2]


def _line_usage(sums: list[int], line: bytes) -> None:
    if not line.strip():
        return
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError:
        return
    if isinstance(entry, dict):
        _add_usage(sums, entry.get("response"))


def batch_usage(meta: Any) -> tuple[int, int, int]:
    """The input, output and total tokens of a finished batch's inline answers, summed. The
    output is read from one place (``metadata.output``, else ``response``): Gemini may give
    it in both."""
    if not isinstance(meta, dict):
        return 0, 0, 0
    metadata = meta.get("metadata")
    output = metadata.get("output") if isinstance(metadata, dict) else None
    sums = [0, 0, 0]
    _add_usage(sums, output if output is not None else meta.get("response"))
    return sums[0], sums[1], sums[2]


async def learn(
    owners: Owners,
    exchange: Exchange | None,
    body: bytes,
    holder: Holder,
    record: str,
    results: ResultsReader | None = None,
) -> None:
    """Record what a 200 answer made with ``holder``'s key: the resource it names, the result
    files of a batch or an operation. A finished batch's (``record``) usage goes to the ledger
    through ``exchange``, once (no exchange: a read whose row is not the batch's, a list): its
    inline answers', or those of its results file, read through ``results``."""
    try:
        meta = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    name = made(meta)
    if name is not None and name != record:
        # An operation under a resource made with it (``tunedModels/t/operations/o``): the
        # resource is that key's too.
        for held in (name, *parents(name)):
            if await owners.find(held) is not None:
                continue
            kind = kind_of(held)
            assert kind is not None
            expires = expiry(meta) if held == name else 0.0
            await owners.add(
                held,
                Holder(
                    kind.tag,
                    holder.responder,
                    holder.key_index,
                    holder.client,
                    holder.model,
                    expires,
                ),
            )
    for file in result_files(meta):
        if await owners.find(file) is None:
            await owners.add(
                file, Holder(FILE.tag, holder.responder, holder.key_index, holder.client)
            )
    settles = record and holder.kind == BATCH.tag and not holder.settled
    if exchange is not None and settles and batch_done(meta):
        usage: Usage | None = batch_usage(meta)
        answers = responses_file(meta)
        if usage == (0, 0, 0) and answers is not None and results is not None:
            usage = await results(answers)
            if usage is None:
                return  # the file could not be read now: the next poll settles it
        assert usage is not None
        exchange.input_tokens, exchange.output_tokens, exchange.total_tokens = usage
        exchange.answered_by(holder.responder, holder.model, holder.key_index, exchange.attempts)
        exchange.batch = True  # priced at the batch share
        await owners.add(record, replace(holder, settled=True))
