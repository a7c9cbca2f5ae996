"""YAML with lines and ${VAR} interpolation."""

from __future__ import annotations

from pathlib import Path

from proxy.yamlsource import dotted, load


def test_interpolation_types_plain_scalars_and_keeps_quoted_ones(tmp_path: Path) -> None:
    text = (
        "a: ${PORT}\n"
        'b: "${PORT}"\n'
        "c: ${MISSING:-fallback}\n"
        "d: ${EMPTY:-}\n"
        "e: x-${PORT}-y\n"
        "f: ${FLAG:-true}\n"
        "on: [1]\n"
    )
    src = load_text(tmp_path, text, {"PORT": "8081"})
    assert src.data == {
        "a": 8081,
        "b": "8081",
        "c": "fallback",
        "d": None,
        "e": "x-8081-y",
        "f": True,
        "on": [1],
    }
    assert src.issues == []
    assert src.lines[("e",)] == 5


def load_text(tmp_path: Path, text: str, env: dict[str, str]):  # type: ignore[no-untyped-def]
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load(path, env)


def test_missing_variable_is_an_issue_naming_it(tmp_path: Path) -> None:
    src = load_text(tmp_path, 'x:\n  keys: ["${SECRET_KEY}"]\n', {})
    assert [(i.line, i.message) for i in src.issues] == [
        (
            2,
            "key 'x.keys[0]': environment variable SECRET_KEY is not set "
            "(write ${SECRET_KEY:-default} to give a default)",
        )
    ]


def test_syntax_error_has_its_line(tmp_path: Path) -> None:
    src = load_text(tmp_path, "a: 1\nb: [1, 2\nc: 3\n", {})
    assert src.data is None
    assert len(src.issues) == 1
    assert src.issues[0].message.startswith("not valid YAML")


def test_duplicate_keys_are_issues(tmp_path: Path) -> None:
    src = load_text(tmp_path, "a: 1\na: 2\n", {})
    assert [(i.line, i.message) for i in src.issues] == [(2, "key 'a' is given twice")]


def test_dotted() -> None:
    assert dotted(("chains", "default", 0)) == "chains.default[0]"
    assert dotted(()) == ""
