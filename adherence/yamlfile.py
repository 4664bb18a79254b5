"""YAML loading that remembers line numbers.

Planners edit config, schedule and rule files by hand; every error must
point at the line to fix. PyYAML's safe loader drops positions, so this
loader builds ``LineDict``/``LineList`` containers that remember the line of
each key and item (1-based), and refuses duplicate keys, which plain YAML
silently resolves to the last one. A key that overrides one brought in by a
merge key (``- <<: *base`` then ``days: sat-sun``) is an override, as YAML
means it, not a duplicate.

These files are quoted in ``/health`` answers and log lines, so a few
hundred bytes must never become megabytes: aliases whose expansion would be
far larger than the text ("billion laughs") are refused right after
composing, before anything is built, and ``short()`` bounds how much of a
value a message quotes.
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


# A document may expand (each alias counted at its full size) to at most this many
# values plus ten times the values it writes out: merge keys and shared lists stay far
# below it; an alias bomb of a few levels is far above it.
MAX_EXPANSION_BASE = 100_000
MAX_EXPANSION_FACTOR = 10
MAX_QUOTE = 80  # characters of a value that a message quotes


def short(value: Any, limit: int = MAX_QUOTE) -> str:
    """``repr(value)`` cut to ``limit`` characters, never building more than that of it."""
    parts: list[str] = []
    size = 0
    for piece in _repr_pieces(value):
        parts.append(piece)
        size += len(piece)
        if size > limit:
            break
    text = "".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _repr_pieces(value: Any):
    """repr() of nested lists and dicts as a lazy stream of pieces (shared sub-lists are not copied)."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Text):
            yield item.text
        elif isinstance(item, dict):
            yield "{"
            stack.append(_Text("}"))
            for i, (k, v) in enumerate(reversed(list(item.items()))):
                if i:
                    stack.append(_Text(", "))
                stack.extend((v, _Text(": "), k))
        elif isinstance(item, (list, tuple)):
            yield "[" if isinstance(item, list) else "("
            stack.append(_Text("]" if isinstance(item, list) else ")"))
            for i, v in enumerate(reversed(item)):
                if i:
                    stack.append(_Text(", "))
                stack.append(v)
        else:
            yield repr(item)


class _Text:
    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


class _Loader(yaml.SafeLoader):
    def compose_document(self):
        node = super().compose_document()
        if node is not None:
            _check_expansion(node)
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand to far more values than its text holds.

    PyYAML shares an aliased node instead of copying it, so loading is cheap,
    but whatever walks the data afterwards (a validator quoting a value, a
    repr in a log line, a JSON answer) pays for the full expansion. Sizes are
    memoized per distinct node, so this check is linear in the text.
    """
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        if done:
            on_path.discard(nid)
            size[nid] = 1 + sum(size[id(c)] for c in _children(node))
            continue
        if nid in size:
            continue
        if nid in on_path:
            raise yaml.composer.ComposerError(None, None, "recursive alias (a value that contains itself)",
                                              node.start_mark)
        on_path.add(nid)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node))
    limit = MAX_EXPANSION_BASE + MAX_EXPANSION_FACTOR * len(size)
    if size[id(root)] <= limit:
        return
    worst = root  # walk down to the smallest value that is still too big: the anchor to blame
    while True:
        bigger = [c for c in _children(worst) if size[id(c)] > limit]
        if not bigger:
            break
        worst = max(bigger, key=lambda c: size[id(c)])
    raise yaml.composer.ComposerError(
        None, None,
        f"aliases expand this document to {size[id(root)]:,} values, more than {limit:,} "
        "(an alias bomb?); write the values out instead of nesting aliases", worst.start_mark)


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    explicit = sum(1 for k, _ in node.value if k.tag != _MERGE_TAG)
    loader.flatten_mapping(node)  # puts the merged pairs first, then the explicit ones
    merged_count = len(node.value) - explicit
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    from_merge: set = set()
    for i, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from None
        if i < merged_count:
            from_merge.add(key)  # several merged maps may share a key: flatten_mapping orders them so the last wins
        elif key in from_merge:
            from_merge.discard(key)  # an explicit key overrides the merged one
        elif key in result:
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
