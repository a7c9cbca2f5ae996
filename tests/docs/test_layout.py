"""The development page's layout names every package of the proxy, so a newcomer finds each
concern from it."""

from __future__ import annotations

from tests.conftest import ROOT


def test_every_package_is_on_the_development_page() -> None:
    page = (ROOT / "docs" / "development.md").read_text()
    packages = sorted(
        p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "proxy").glob("*/__init__.py")
    )
    assert "proxy/surfaces" in packages
    missing = [p for p in packages if f"`{p}/`" not in page]
    assert not missing, f"packages docs/development.md does not name: {missing}"
