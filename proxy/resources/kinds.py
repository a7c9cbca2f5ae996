"""The kinds of upstream resource, told from their names.

Every stateful Gemini resource has a name of collection/id pairs: ``files/abc``,
``batches/xyz``, ``models/veo-3/operations/op1``, ``fileSearchStores/s/documents/d``. The last
collection names the kind. A name under another resource (a store's documents, its operations)
belongs with that resource: the same key's project holds it, the same client owns it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Kind:
    """``tag`` is what the registry stores, ``label`` Gemini's word for it in an error,
    ``counted`` its name in ``/metrics``' ``resources``, ``ttl_s`` how long a record is kept
    when the upstream gives no expiry (0: until deleted)."""

    tag: str
    label: str
    counted: str
    ttl_s: float = 0.0


DAY = 86_400.0
FILE = Kind("file", "File", "files", 2 * DAY)
CACHE = Kind("cache", "CachedContent", "cached_contents")
BATCH = Kind("batch", "Batch", "batches")
OPERATION = Kind("operation", "Operation", "operations", 30 * DAY)
# Gemini keeps a stored interaction 55 days on a paid tier (one on the free tier).
INTERACTION = Kind("interaction", "Interaction", "interactions", 55 * DAY)
STORE = Kind("fileSearchStore", "FileSearchStore", "file_search_stores")
DOCUMENT = Kind("document", "Document", "documents")
TUNED = Kind("tunedModel", "TunedModel", "tuned_models")
TOKEN = Kind("authToken", "AuthToken", "auth_tokens", DAY)
# What a path that ``surface.passthrough`` opens makes (``agents/…``, ``webhooks/…``).
OPENED = Kind("opened", "resource", "opened")

# Each collection's kind, by the collection segment of a name.
COLLECTIONS: dict[str, Kind] = {
    "files": FILE,
    "cachedContents": CACHE,
    "batches": BATCH,
    "operations": OPERATION,
    "interactions": INTERACTION,
    "fileSearchStores": STORE,
    "documents": DOCUMENT,
    "tunedModels": TUNED,
    "auth_tokens": TOKEN,
    "authTokens": TOKEN,
}
BY_TAG = {kind.tag: kind for kind in (*COLLECTIONS.values(), OPENED)}
# What a list of a client's resources is called in Gemini's answer, by the collection listed.
LIST_FIELDS = {
    "files": "files",
    "cachedContents": "cachedContents",
    "batches": "operations",  # Gemini lists batches as long-running operations
    "fileSearchStores": "fileSearchStores",
    "tunedModels": "tunedModels",
}


def kind_of(name: str) -> Kind | None:
    """The kind of a resource name (``batches/x``, ``models/m/operations/o``), or None for a
    name that is no resource's (a collection alone, a model)."""
    parts = name.split("/")
    if len(parts) < 2 or not all(parts):
        return None
    return COLLECTIONS.get(parts[-2])


def prefixes(name: str) -> list[str]:
    """``name`` and every name it lies under, nearest first, down to two segments:
    ``a/b/c/d`` gives ``a/b/c/d``, ``a/b/c``, ``a/b``."""
    parts = name.split("/")
    return ["/".join(parts[:end]) for end in range(len(parts), 1, -1)]


def parents(name: str) -> list[str]:
    """The resources ``name`` lies under, nearest first: ``fileSearchStores/s/documents/d``
    and ``fileSearchStores/s/upload/operations/o`` give ``fileSearchStores/s``; a name under a
    model (``models/m/operations/o``) has none the proxy could hold."""
    return [p for p in prefixes(name)[1:] if kind_of(p) is not None]


def denied_message(name: str) -> str:
    """Gemini's message for a resource that does not exist or is another project's."""
    kind = kind_of(name)
    label = kind.label if kind is not None else "resource"
    short = name.split("/", 1)[-1] if name.count("/") == 1 else name
    return f"You do not have permission to access the {label} {short} or it may not exist."
