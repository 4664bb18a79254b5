"""YAML loading that remembers line numbers.

Planners edit config, schedule and rule files by hand; every error must
point at the line to fix. PyYAML's safe loader drops positions, so this
loader builds ``LineDict``/``LineList`` containers that remember the line of
each key and item (1-based), and refuses duplicate keys, which plain YAML
silently resolves to the last one.
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import Problem


class LineDict(dict):
    """A mapping that knows the line it starts on and the line of each key."""

    line: int = 0
    key_lines: dict

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list):
    """A sequence that knows the line it starts on and the line of each item."""

    line: int = 0
    item_lines: list

    def line_of(self, index: int) -> int:
        if 0 <= index < len(self.item_lines):
            return self.item_lines[index]
        return self.line


def line_of(container: Any, key: Any = None) -> int | None:
    """Line of ``container[key]`` (or of the container), if known."""
    if key is not None and hasattr(container, "line_of"):
        return container.line_of(key)
    return getattr(container, "line", None) or None


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from None
        if key in result:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {result.key_lines[key]})",
                key_node.start_mark,
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


def _construct_timestamp(loader: _Loader, node: yaml.ScalarNode):
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except (ValueError, OverflowError):
        raise yaml.constructor.ConstructorError(
            None, None, f"invalid date {node.value} (expected a real date as YYYY-MM-DD)", node.start_mark
        ) from None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


class YamlSyntaxError(Exception):
    """The text is not valid YAML; carries a Problem naming file and line."""

    def __init__(self, problem: Problem):
        self.problem = problem
        super().__init__(str(problem))


def loads(text: str, filename: str = "<string>") -> Any:
    """Parse YAML text into LineDict/LineList/scalars, or raise YamlSyntaxError."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = exc.problem or str(exc)
        if exc.context and exc.problem:
            what = f"{exc.problem} ({exc.context})"
        raise YamlSyntaxError(Problem(f"invalid YAML: {what}", filename, line)) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(Problem(f"invalid YAML: {exc}", filename)) from None
    except (ValueError, TypeError, OverflowError) as exc:
        # PyYAML's constructors raise plain errors for values such as 2026-02-30
        raise YamlSyntaxError(Problem(f"invalid value: {exc}", filename)) from None
    except RecursionError:
        raise YamlSyntaxError(Problem("invalid YAML: nested too deeply", filename)) from None


def load_file(path: str) -> Any:
    """Read and parse a YAML file; unreadable or undecodable files raise YamlSyntaxError."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        raise YamlSyntaxError(Problem(f"not UTF-8 text ({exc.reason})", str(path))) from None
    except OSError as exc:
        raise YamlSyntaxError(Problem(f"cannot read: {exc.strerror}", str(path))) from None
    return loads(text, str(path))
