"""What a responder is: the protocol every backend type implements, and the values it trades.

A responder answers one :class:`Call` for one model with one of its keys. It never raises for an
HTTP status: a 429 or 500 is a :class:`Reply` like any other, so rotation can read it. It raises
:class:`proxy.errors.AttemptFailed` only when no answer came (``timeout`` or ``connect``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

# Gemini actions that go through the chain.
ACTIONS = frozenset(
    {
        "generateContent",
        "streamGenerateContent",
        "countTokens",
        "embedContent",
        "batchEmbedContents",
        # Images (Imagen), videos (Veo: an operation to poll) and batches (half price).
        "predict",
        "predictLongRunning",
        "batchGenerateContent",
        "asyncBatchEmbedContent",
    }
)
# The actions whose answer is a resource made upstream (an operation, a batch): it is recorded
# as held by the key that made it.
CREATING_ACTIONS = frozenset(
    {"predictLongRunning", "batchGenerateContent", "asyncBatchEmbedContent"}
)


class Target(Protocol):
    """What an attempt is aimed at: a chain member (its responder and model)."""

    @property
    def responder(self) -> str: ...

    @property
    def model(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Pin:
    """A request bound to one key of one responder (it names a file or cache that key's project
    holds), and for a cached content to one ``model`` too."""

    responder: str
    key_index: int
    model: str = ""


@dataclass(slots=True)
class Hold:
    """A client connection's say over the upstream call made for it.

    While ``holding`` (a unary call is out), a client that leaves does not cut the call: the
    server sets ``left`` instead of cancelling, the call is let finish (the upstream counts it
    anyway, and its pooled connection survives), and then the caller stops as if cancelled.
    """

    holding: bool = False
    left: bool = False


# Actions whose 200 is a stream: Gemini's, and the OpenAI-compatible chat with ``stream``.
STREAMING_ACTIONS = frozenset(
    {"streamGenerateContent", "openai.chat.stream", "interactions.stream"}
)
# The Interactions API's create (``POST /{v}/interactions``): the model is in the body.
INTERACTIONS = frozenset({"interactions", "interactions.stream"})


@dataclass(slots=True)
class Call:
    """One request for one model. ``body`` is the client's bytes, passed on unparsed.

    ``query`` is the client's raw query string, its ``key`` removed. ``body_for``, when set,
    makes the body for a given member (its responder and model): the model fields Gemini wants
    to match the URL, the thought signatures a Gemini 3 member checks. ``repair``, when set,
    gives the body again with the current turn's signatures replaced (None: nothing to
    change), for a 400 that refused them. ``empty_fails``: an empty 200 is a failed attempt
    (``rotation.on: [empty]``, for the actions that answer with candidates). ``pin``, when
    set, binds the call to one responder's key (and model): it never rotates to another key.
    ``hold`` is the client connection's :class:`Hold`, when the server gives one.
    """

    action: str
    model: str
    version: str = "v1beta"
    body: bytes = b"{}"
    sse: bool = True
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_after_s: float = 0.0
    trace_headers: Mapping[str, str] | None = None  # the trace's context, when there is one
    query: str = ""
    body_for: Callable[[Target], bytes] | None = None
    pin: Pin | None = None
    hold: Hold | None = None
    repair: Callable[[], bytes | None] | None = None
    empty_fails: bool = False
    uses_tools: bool = False  # declares tools or carries function calls: needs such a member
    turn: str = ""  # a digest of the history before this function-calling turn (sticky_turn)

    def aim(self, member: Target) -> None:
        """Point the call at ``member`` for the next attempt, its body included."""
        self.model = member.model
        if self.body_for is not None:
            self.body = self.body_for(member)

    @property
    def streaming(self) -> bool:
        return self.action in STREAMING_ACTIONS

    @property
    def estimated_tokens(self) -> int:
        """About a token for four bytes of request, as the client limits estimate it."""
        return max(1, len(self.body) // 4)

    @property
    def openai(self) -> bool:
        """A call of the OpenAI-compatible surface (``openai.*`` actions)."""
        return self.action.startswith("openai.")


def _nothing() -> None:
    return None


@dataclass(slots=True)
class Reply:
    """An answer. ``chunks`` is set on a streaming 200 and must be drained or ``release``d."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    chunks: AsyncIterator[bytes] | None = None
    retry_after: str | None = None
    release: Callable[[], None] = _nothing


class Responder(Protocol):
    """A backend. ``key_count`` keys (1 for responders without keys, or one credential) are
    tried in turn;
    ``projects[k]`` is the Google project of key ``k`` (quotas are per project and model),
    ``project_names`` names them for ``/health``."""

    name: str
    key_count: int
    remote: bool
    # The Gemini API itself (AI Studio): its files, caches, Live, interactions and models list.
    studio: bool
    # The actions it serves (None: every one).
    actions: frozenset[str] | None
    projects: tuple[int, ...]
    project_names: tuple[str, ...]

    async def send(self, call: Call, key_index: int) -> Reply:
        """Answer ``call`` with key ``key_index``; raise ``AttemptFailed`` if no answer came."""
        ...

    async def fetch(
        self, version: str, path: str, query: Mapping[str, str], key_index: int
    ) -> Reply:
        """GET ``/{version}/{path}`` from the upstream (``models`` surface of remote responders)."""
        ...
