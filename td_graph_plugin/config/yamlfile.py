"""Read a YAML config strictly: a repeated mapping key is an error, every key keeps its line.

PyYAML keeps the last of two equal keys without a word, so a second ``isolation:`` block would
silently erase the first one's ``protected_users``.  The check runs on the composed node tree,
before construction: ``<<`` merges flatten nodes in place while they are constructed, and an
explicit key overriding a merged one is YAML's intended override, not a duplicate.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..errors import ConfigError
from .typed import Problems

__all__ = ["read_yaml"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that records each key's line and every duplicate key, by dotted path."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.lines: dict[str, int] = {}
        self.duplicates: list[tuple[str, int, int]] = []  # (dotted key, line, first line)

    def construct_document(self, node: yaml.Node) -> Any:
        self._walk(node, "", set())
        if self.duplicates:
            return None  # nothing is built from a file that says two things at once
        return super().construct_document(node)

    def _walk(self, node: yaml.Node, path: str, seen: set[int]) -> None:
        if id(node) in seen:  # an alias: its anchor was walked where it was defined
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                child = f"{path}[{i}]"
                self.lines.setdefault(child, item.start_mark.line + 1)
                self._walk(item, child, seen)
        elif isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    self._walk(value_node, path, seen)
                    continue
                name = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                child = f"{path}.{name}" if path else str(name)
                line = key_node.start_mark.line + 1
                ident = self._identity(key_node)
                if ident is not None and ident in first:
                    self.duplicates.append((child, line, first[ident]))
                elif ident is not None:
                    first[ident] = line
                self.lines.setdefault(child, line)
                self._walk(value_node, child, seen)

    def _identity(self, key_node: yaml.Node) -> Any:
        """What the key becomes in Python (``true`` and ``True`` are one key); None if not a scalar."""
        if not isinstance(key_node, yaml.ScalarNode):
            return None
        try:
            value = self.construct_object(key_node)
            hash(value)
        except (yaml.YAMLError, TypeError):
            return ("raw", key_node.tag, key_node.value)
        return (type(value).__name__, value)


def read_yaml(path: str) -> tuple[Any, dict[str, int]]:
    """The document at ``path`` and the line of each dotted key; ConfigError on any problem."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError("file not found", file=path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", file=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=path) from None
    try:
        loader = _StrictLoader(text)  # its reader refuses control characters right away
    except yaml.YAMLError as exc:
        raise ConfigError(_describe(exc), file=path) from None
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError(_describe(exc), file=path) from None
    except RecursionError:
        raise ConfigError("not valid YAML: nested too deeply", file=path) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        p = Problems(path)  # the message gives both lines itself
        for key, line, first in loader.duplicates:
            p.add(key, f"duplicate key at line {line} (first at line {first}); YAML would silently "
                       "keep only the last one: merge the two into one")
        p.raise_if_any()
    return data, loader.lines


def _describe(exc: yaml.YAMLError) -> str:
    """PyYAML's complaint with its line; without the text around it (it may hold a secret)."""
    if isinstance(exc, yaml.reader.ReaderError):
        return f"not valid YAML: {exc.reason} (character #x{exc.character:04x} at offset {exc.position})"
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or "invalid YAML"
    return f"not valid YAML{where}: {problem}"
