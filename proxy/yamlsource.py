"""Read a YAML file into plain values, remembering the line of every key and item.

``${VAR}`` and ``${VAR:-default}`` in scalars are replaced from the environment; a plain
(unquoted) scalar is typed after the replacement, so ``port: ${PORT:-8081}`` is an int.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
import yaml.reader

Path_ = tuple[str | int, ...]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# Anything shaped like a Google API key: never quoted in a config message, whatever its field.
_GOOGLE_KEY = re.compile(r"AIza[0-9A-Za-z_-]{35}")
HIDDEN = "(hidden)"
# A secret shorter than this is not searched for in messages (it would mangle their words);
# its own field never shows it anyway (:meth:`Source.is_secret`).
_MIN_SECRET = 4


@dataclass(frozen=True, slots=True)
class Issue:
    """One config error: the line it is on and what is wrong."""

    line: int
    message: str


@dataclass(slots=True)
class Source:
    """A parsed file: its values, the line of each path, and the issues found so far."""

    file: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    # Where the secret fields are, and the values found in them (proxy.config.secrets).
    secret_paths: set[Path_] = field(default_factory=set)
    secrets: set[str] = field(default_factory=set)
    # The keys each mapping's reader accepts, by the mapping's path (filled as it finishes):
    # what "did you mean" chooses from, and what the config reference must document.
    accepted: dict[Path_, frozenset[str]] = field(default_factory=dict)

    def line(self, path: Path_) -> int:
        """The line of ``path``, or of its nearest ancestor that has one."""
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def error(self, path: Path_, message: str) -> None:
        self.issues.append(Issue(self.line(path), self.scrub(message)))

    def is_secret(self, path: Path_) -> bool:
        """Whether ``path`` is in (or is) a field that holds a secret."""
        return any(path[:n] in self.secret_paths for n in range(len(path) + 1))

    def hide(self, values: set[str]) -> None:
        """Never quote ``values`` in an issue: those recorded already, and those to come."""
        self.secrets.update(v for v in values if len(v) >= _MIN_SECRET)
        self.issues[:] = [Issue(i.line, self.scrub(i.message)) for i in self.issues]

    def scrub(self, text: str) -> str:
        """``text`` with every secret value (longest first) and anything shaped like a Google
        API key replaced by ``(hidden)``."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, HIDDEN)
        return _GOOGLE_KEY.sub(HIDDEN, text)


def dotted(path: Path_) -> str:
    """``("chains", "default", 0)`` -> ``chains.default[0]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class _Builder:
    def __init__(self, source: Source, env: Mapping[str, str]) -> None:
        self.source = source
        self.env = env
        self.constructor = yaml.constructor.SafeConstructor()
        self.resolver = yaml.resolver.Resolver()

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.source.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                # Keys stay text: YAML 1.1 would read the key `on` (rotation.on) as True.
                key = (
                    key_node.value
                    if isinstance(key_node, yaml.ScalarNode)
                    else str(self._construct(key_node, path))
                )
                child = (*path, key)
                self.source.lines[child] = key_node.start_mark.line + 1
                if key in out:
                    self.source.error(child, f"key '{dotted(child)}' is given twice")
                out[key] = self.build(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        if "${" not in node.value:
            return self._construct(node, path)
        text = self.interpolate(node.value, path)
        if node.style is not None:  # quoted: stays a string
            return text
        tag = self.resolver.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
        return self._construct(yaml.ScalarNode(tag, text), path)

    def _construct(self, node: yaml.Node, path: Path_) -> Any:
        """The node's value; a node YAML cannot build (a tag it does not know, such as the
        bare ``=``) is a config error on its line, never a traceback."""
        try:
            return self.constructor.construct_object(node)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            self.source.error(path, f"not valid YAML: {problem}")
            return None

    def interpolate(self, text: str, path: Path_) -> str:
        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = self.env.get(name)
            if value:
                return value
            if default is not None:
                return default
            if value is not None:  # set but empty, and no default: still a value
                return value
            self.source.error(
                path,
                f"key '{dotted(path)}': environment variable {name} is not set "
                f"(write ${{{name}:-default}} to give a default)",
            )
            return ""

        return _VAR.sub(replace, text)


def load(file: str | Path, env: Mapping[str, str]) -> Source:
    """Parse ``file``; YAML syntax errors and missing variables land in ``Source.issues``."""
    name = str(file)
    source = Source(file=name, data=None)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        source.issues.append(Issue(1, f"cannot read the file: {exc.strerror or exc}"))
        return source
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        # Only the problem: the text around it is a line of the file, which may hold a key.
        source.issues.append(
            Issue(line, source.scrub(f"not valid YAML: {exc.problem or 'a syntax error'}"))
        )
        return source
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (a control byte)
        line = text.count("\n", 0, max(0, exc.position)) + 1
        source.issues.append(Issue(line, f"not valid YAML: {exc.reason} (#x{exc.character:04x})"))
        return source
    if node is None:
        source.data = {}
        return source
    source.data = _Builder(source, env).build(node, ())
    return source
