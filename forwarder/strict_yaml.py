"""YAML as people write it (the configuration, the Sigma rules): PyYAML's safe loader, made
strict where it is silent.

- A key given twice in one mapping is refused: PyYAML keeps the last, so a second ``source:``
  block would silently replace the first.
- Aliases may not make a document larger than ``MAX_VALUES`` values, nor contain themselves.
  PyYAML shares an aliased value instead of copying it, so loading a "billion laughs" is quick,
  but whatever walks the result (pydantic, pySigma) would visit every one of its copies.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# Far beyond any configuration or rule file (an organisation's account list included).
MAX_VALUES = 1_000_000
MERGE_TAG = "tag:yaml.org,2002:merge"

_T = TypeVar("_T")


class YamlError(ValueError):
    """The text cannot be read as YAML; the message names the line."""


def _line(node: Node) -> int:
    return node.start_mark.line + 1


class _Loader(yaml.SafeLoader):
    def compose_mapping_node(self, anchor: str | None) -> MappingNode:
        node: MappingNode = super().compose_mapping_node(anchor)
        # Compared as written (tag and text), before a merge key (<<) flattens the mapping:
        # a key that overrides a merged one is not given twice.
        first: dict[tuple[str, str], ScalarNode] = {}
        for key, _ in node.value:
            if not isinstance(key, ScalarNode) or key.tag == MERGE_TAG:
                continue
            seen = first.setdefault((key.tag, key.value), key)
            if seen is not key:
                raise YamlError(f"key {key.value!r} is given twice, at line {_line(seen)} and line {_line(key)}: "
                                "give each key once (the second would silently replace the first)")
        return node

    def compose_document(self) -> Node:
        node: Node = super().compose_document()
        _count(node, {}, set())
        return node


def _count(node: Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many values ``node`` stands for with every alias written out (memoised per node)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise YamlError(f"the value at line {_line(node)} contains an alias of itself: write it out")
    open_nodes.add(key)
    children: list[Node] = []
    if isinstance(node, SequenceNode):
        children = node.value
    elif isinstance(node, MappingNode):
        children = [part for pair in node.value for part in pair]
    total = 1
    for child in children:
        total += _count(child, sizes, open_nodes)
        if total > MAX_VALUES:
            raise YamlError(f"the aliases (*name) near line {_line(node)} expand the document beyond "
                            f"{MAX_VALUES} values: write the values out instead of repeating aliases")
    open_nodes.discard(key)
    sizes[key] = total
    return total


def read(path: Path) -> Any:
    """The one document of the file at ``path`` (the caller's message names the file)."""
    return _reading(lambda: yaml.load(_text(path), Loader=_Loader))  # _Loader is a SafeLoader


def read_all(path: Path) -> list[Any]:
    """Every document (``---`` separated) of the file at ``path``."""
    return _reading(lambda: list(yaml.load_all(_text(path), Loader=_Loader)))


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlError(f"cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise YamlError(f"not UTF-8 text (byte {exc.start}): save the file as UTF-8") from None


def _reading(call: Callable[[], _T]) -> _T:
    try:
        return call()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise YamlError(f"not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise YamlError("nested too deeply to be read") from None
    except YamlError:
        raise
    except (ValueError, TypeError, AttributeError, OverflowError) as exc:
        # PyYAML's constructors raise these on a value its tags cannot build (a date such as
        # 2001-02-30, an empty !!timestamp): name it as a YAML problem, not a traceback.
        raise YamlError(f"a value YAML cannot read: {exc}; quote it if it is meant as text") from None
