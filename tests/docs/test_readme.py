"""The README is the landing page outside the docs build: its links must lead somewhere, and it
stays a page a person reads in a minute."""

from __future__ import annotations

import re

from tests.conftest import ROOT

README = ROOT / "README.md"


def test_every_relative_link_of_the_readme_exists() -> None:
    text = README.read_text()
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    relative = [link for link in links if "://" not in link]
    assert "docs/clients.md" in relative
    missing = [link for link in relative if not (ROOT / link).exists()]
    assert not missing, f"README links to what is not in the tree: {missing}"


def test_the_readme_is_a_landing_page() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 220  # issue 27: about 200 lines; the rest lives in docs/
    for page in sorted((ROOT / "docs").glob("*.md")):
        if page.name != "index.md":
            assert f"docs/{page.name}" in README.read_text(), f"README does not link {page.name}"
