"""Request bodies that name a resource (a file, a cached content, an interaction, a file search
store, a batch's input file) in any spelling a JSON parser accepts:
escapes in the field name, either case convention, a URI with a suffix, any depth. Shared by
the check's own fuzz (``tests/resources``) and the surface's (``tests/fuzz``)."""

from __future__ import annotations

from hypothesis import strategies as st

GEMINI = "https://generativelanguage.googleapis.com"


# The fields that name each kind of resource, in both spellings.
FIELDS = {
    "file": ["fileUri", "file_uri"],
    "cache": ["cachedContent", "cached_content"],
    "interaction": ["previous_interaction_id", "previousInteractionId"],
    "store": ["fileSearchStoreNames", "file_search_store_names"],
    "batch": ["fileName", "file_name"],
}


def _escaped(name: str, which: list[bool], upper: bool) -> str:
    """``name`` as a JSON string's text with the chosen characters written as ``\\uXXXX``."""
    out = ""
    for ch, escape in zip(name, which + [False] * len(name), strict=False):
        code = f"{ord(ch):04x}"
        out += f"\\u{code.upper() if upper else code}" if escape else ch
    return out


@st.composite
def spelt(draw: st.DrawFn) -> tuple[bytes, str]:
    """A raw body naming one resource, spelt any way a parser reads: escapes in the field
    name, either case convention, a URI with a suffix, buried at any depth in objects and
    lists. Returns the body and the resource it names."""
    kind = draw(st.sampled_from(["file", "cache", "interaction", "store", "batch"]))
    field = draw(st.sampled_from(FIELDS[kind]))
    which = draw(st.lists(st.booleans(), max_size=len(field)))
    key = _escaped(field, which, draw(st.booleans()))
    ident = draw(st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True))
    if kind in ("file", "batch"):
        prefix = draw(st.sampled_from([f"{GEMINI}/v1beta/", f"{GEMINI}/v1/", "", "/"]))
        suffix = draw(st.sampled_from(["", "?x", "/", "#f", "?alt=media", "/?a=b"]))
        value, name = f"{prefix}files/{ident}{suffix}", f"files/{ident}"
    else:
        collection = {
            "cache": "cachedContents",
            "interaction": "interactions",
            "store": "fileSearchStores",
        }[kind]
        value = draw(st.sampled_from([ident, f"{collection}/{ident}"]))
        name = f"{collection}/{ident}"
    literal = f'["{value}"]' if kind == "store" else f'"{value}"'
    inner = f'{{"{key}": {literal}}}'
    if kind == "batch":  # a file name counts in a batch's input (spelt either way too)
        parent = _escaped(draw(st.sampled_from(["inputConfig", "input_config"])), which, False)
        inner = f'{{"{parent}": {inner}}}'
    for wrap in draw(st.lists(st.sampled_from(["obj", "list", "obj2"]), max_size=60)):
        inner = {
            "obj": f'{{"a": {inner}}}',
            "list": f"[1, {inner}]",
            "obj2": f'{{"x\\u0041": "y", "b": {inner}}}',
        }[wrap]
    return f'{{"contents": [{inner}]}}'.encode(), name
