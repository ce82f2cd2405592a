"""YAML input with limits: the one reader of grid files and of `--set key=value` values.

PyYAML's SafeLoader builds no objects but plain data; on its own it still lets a few hundred
bytes stand for billions of values (an alias bomb: aliases of aliases, expanded by whatever walks
the result, a check or an error message), keeps the last of a key given twice, and raises
ValueError on a date or an integer it cannot convert. `load` refuses all of these, and nesting
deep enough to exhaust the stack, with a `yaml.YAMLError` that says where.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_VALUES = 100_000  # values (scalars, lists, mappings) a document stands for, aliases expanded


def load(text: str | bytes) -> Any:
    """The plain data of YAML document `text`.

    Raises:
        yaml.YAMLError: not valid YAML, a key given twice in one mapping, aliases that expand
            the document beyond `MAX_VALUES` values, nesting too deep, or a scalar that cannot
            be converted (a date 2001-13-45, an integer of more than 4,300 digits).
    """
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 (a SafeLoader subclass)
    except RecursionError:
        raise yaml.YAMLError("nested too deeply") from None
    except ValueError as exc:  # a scalar PyYAML cannot convert: a date 2001-13-45, an integer
        raise yaml.YAMLError(str(exc)) from None  # of more than 4,300 digits


def problem(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: where (line, column) and what."""
    mark = getattr(exc, "problem_mark", None)
    what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {what}" if mark else what


class Loader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping (YAML would keep the last) and
    a document whose aliases expand it beyond `MAX_VALUES` values."""

    def construct_document(self, node: yaml.Node) -> Any:
        if expanded_size(node) > MAX_VALUES:
            raise yaml.constructor.ConstructorError(
                None, None, f"it stands for more than {MAX_VALUES:,} values (aliases expanded)",
                node.start_mark,
            )
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        for key in keys:
            if keys.count(key) > 1:
                line = node.start_mark.line + 1
                what = f"key {key!r} appears twice in the mapping at line {line}"
                raise yaml.constructor.ConstructorError(None, None, what, node.start_mark)
        return super().construct_mapping(node, deep=deep)


def expanded_size(root: yaml.Node) -> int:
    """How many values `root` stands for with every alias expanded, counted without expanding
    (each node once); past `MAX_VALUES` the count stops, and a recursive node counts as past."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = MAX_VALUES + 1  # met again while being counted: recursive
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_VALUES:
                break
        sizes[id(node)] = min(total, MAX_VALUES + 1)
        return sizes[id(node)]

    return size(root)
