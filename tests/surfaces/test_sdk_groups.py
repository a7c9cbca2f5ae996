"""The docs' table of the SDK's groups stays true: every public method of google-genai's
async client (and of the groups under it) is listed there, and nothing listed is gone."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from google import genai
from google.genai._common import ExperimentalWarning

TABLE = Path(__file__).resolve().parents[2] / "docs" / "endpoints.md"
# What every group of the SDK's newer (_gaos) clients carries that is no API method.
PLUMBING = frozenset({"do_request_async", "dynamic_import", "get_server_details"})
SUBGROUPS = frozenset({"documents", "files", "music"})


def _methods(group: object) -> set[str]:
    return {
        name
        for name in dir(group)
        if not name.startswith("_")
        and name not in PLUMBING
        and callable(getattr(type(group), name, None))
    }


def sdk_methods() -> set[str]:
    """``group.method`` for every method of ``client.aio``'s groups and their subgroups."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        # The newer groups warn with a plain UserWarning: that one, by its words.
        warnings.filterwarnings("ignore", r".* usage is experimental", UserWarning)
        aio = genai.Client(api_key="unused").aio
        out: set[str] = set()
        for name in dir(aio):
            if name.startswith("_") or name == "aclose":
                continue
            group = getattr(aio, name)
            out |= {f"{name}.{m}" for m in _methods(group)}
            for sub in SUBGROUPS:
                child = getattr(group, sub, None)
                if child is not None and type(child).__module__.startswith("google.genai"):
                    out |= {f"{name}.{sub}.{m}" for m in _methods(child)}
    return out


def readme_methods() -> set[str]:
    text = TABLE.read_text()
    table = text.split("### The SDK's groups through the proxy", 1)[1].split("\n#", 1)[0]
    out: set[str] = set()
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        group = cells[0].strip("`")
        out |= {f"{group}.{m}" for m in re.findall(r"`([a-z_]+)`", cells[1])}
    return out


def test_the_readme_lists_every_method_of_the_sdk() -> None:
    missing = sdk_methods() - readme_methods()
    assert not missing, f"methods the table in docs/endpoints.md does not list: {sorted(missing)}"


def test_the_readme_lists_no_method_the_sdk_lacks() -> None:
    gone = readme_methods() - sdk_methods()
    assert not gone, f"methods docs/endpoints.md lists that the SDK does not have: {sorted(gone)}"


def test_the_walk_sees_the_groups_the_issue_names() -> None:
    found = sdk_methods()
    for expected in (
        "interactions.create",
        "batches.create_embeddings",
        "file_search_stores.documents.list",
        "auth_tokens.create",
        "operations.get",
        "webhooks.rotate_signing_secret",
        "environments.files.upload",
    ):
        assert expected in found
