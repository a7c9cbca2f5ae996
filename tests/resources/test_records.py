"""What upstream answers tell the registry: a finished batch's usage, inline or in its results
file, settled once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from proxy.exchange import Exchange
from proxy.resources import kinds, records
from proxy.resources.owners import Holder, Owners

USAGE = {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8}
LINE = orjson.dumps({"key": "1", "response": {"candidates": [], "usageMetadata": USAGE}})
DONE = {
    "name": "batches/b1",
    "metadata": {"state": "BATCH_STATE_SUCCEEDED", "output": {"responsesFile": "files/batch-1"}},
    "done": True,
}


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("size", [1, 7, 64, 1 << 20])
async def test_a_results_file_is_summed_however_its_pieces_fall(size: int) -> None:
    data = b"\n".join([LINE, b"", b"not json", LINE, b'["a list"]', LINE])  # no final newline
    assert await records.results_usage(pieces(data, size)) == (15, 9, 24)


async def test_a_line_past_the_cap_counts_nothing_and_is_never_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(records, "MAX_RESULT_LINE", 200)
    huge = orjson.dumps({"response": {"usageMetadata": USAGE, "pad": "x" * 1000}})
    data = b"\n".join([LINE, huge, LINE, huge]) + b"\n"
    assert await records.results_usage(pieces(data, 50)) == (10, 6, 16)


def test_the_results_file_is_found_where_a_batch_names_it() -> None:
    assert records.responses_file(DONE) == "files/batch-1"
    assert records.responses_file({"response": {"responsesFile": "files/batch-2"}}) == (
        "files/batch-2"
    )
    assert records.responses_file({"metadata": {"output": {"inlinedResponses": {}}}}) is None
    assert records.responses_file({"response": {"responsesFile": "../x"}}) is None


async def test_a_batch_is_settled_from_its_file_once_the_file_can_be_read() -> None:
    owners = Owners({"up": ("k",)}, None)
    holder = Holder(kinds.BATCH.tag, "up", 0, "alice", "m1")
    await owners.add("batches/b1", holder)
    asked: list[str] = []
    answers: list[records.Usage | None] = [None, (5, 3, 8)]

    async def reader(name: str) -> records.Usage | None:
        asked.append(name)
        return answers.pop(0)

    body = orjson.dumps(DONE)
    unread = Exchange()
    await records.learn(owners, unread, body, holder, "batches/b1", reader)
    assert (unread.input_tokens, unread.batch) == (0, False)  # the file failed: not settled
    found = await owners.find("batches/b1")
    assert found is not None
    assert not found.settled
    read = Exchange()
    await records.learn(owners, read, body, found, "batches/b1", reader)
    assert (read.input_tokens, read.output_tokens, read.total_tokens) == (5, 3, 8)
    assert read.batch
    settled = await owners.find("batches/b1")
    assert settled is not None
    assert settled.settled
    again = Exchange()
    await records.learn(owners, again, body, settled, "batches/b1", reader)
    assert again.input_tokens == 0
    assert asked == ["files/batch-1", "files/batch-1"]  # never read once settled
