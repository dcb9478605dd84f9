"""YAML documents: the configuration file's text parsed within fixed bounds.

The first half of the configuration step (config.py validates the result). The file may
come from someone else (a reload applies whatever is there), so parsing is bounded before
PyYAML gets to recurse or expand anything: the size of the text, the nesting depth, and the
number of values the document expands to through aliases (a 1 kB "billion laughs" would
otherwise take hours to print in an error message). Merge keys are refused, and the line of
every key is recorded for error messages. Every failure, of any kind, is one ConfigError
line. No I/O.
"""

from __future__ import annotations

from typing import Any

import yaml

from pyimagestreamd.schema import ConfigError, dotted

# Parsing limits (README, "Configuration limits"). A real file is a few kB, nests 5 levels
# and holds a few hundred values; these leave ample room and keep the worst case well
# under a second.
MAX_CONFIG_BYTES = 64 * 1024
MAX_DEPTH = 20
MAX_VALUES = 10_000


def _key_lines(node: yaml.Node | None) -> dict[tuple[str, ...], int]:
    """Map every key path of the document to its 1-based line, rejecting duplicate keys.

    Merge keys (`<<: *defaults`) are rejected too: the keys they bring in would override or
    be overridden without the duplicate check ever seeing them.
    """
    lines: dict[tuple[str, ...], int] = {}
    # Iterative: aliases can chain mappings deeper than the file nests (bounded by
    # _check_expansion, but not by Python's recursion limit).
    stack: list[tuple[yaml.Node, tuple[str, ...]]] = [] if node is None else [(node, ())]
    while stack:
        current, path = stack.pop()
        if not isinstance(current, yaml.MappingNode):
            continue
        for key_node, value_node in current.value:
            line = _line(key_node)
            if key_node.tag == "tag:yaml.org,2002:merge":
                where = dotted(path) + ": " if path else ""
                raise ConfigError(
                    f"{where}merge keys ('<<') are not supported: write the keys out (line {line})"
                )
            key = (*path, str(key_node.value))
            if key in lines:
                raise ConfigError(f"{dotted(key)}: duplicate key (lines {lines[key]} and {line})")
            lines[key] = line
            stack.append((value_node, key))
    return lines


def _line(item: yaml.Node | yaml.Event) -> int:
    mark = item.start_mark
    return mark.line + 1 if mark is not None else 0


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing documents nested deeper than MAX_DEPTH.

    PyYAML's parser is a state machine, but its composer recurses once per level: `[` * 900
    would end in RecursionError (a traceback and exit 1 instead of a config error).
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                line = _line(self.peek_event())  # type: ignore[no-untyped-call]
                raise ConfigError(
                    f"invalid YAML: nested deeper than {MAX_DEPTH} levels (line {line})"
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Reject a document that expands, through aliases, past MAX_VALUES values or MAX_DEPTH.

    Aliases share nodes, so composing is cheap; it is everything that walks the result (the
    checks below, an error message that shows the value) that would expand it. Counted on
    the node graph with one entry per distinct node, without recursion; a recursive alias
    (`&a [*a]`) is an error too.
    """
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (values it expands to, its depth)
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        line = _line(node)
        if finished:
            on_path.discard(key)
            kids = [done[id(c)] for c in _children(node)]
            size = 1 + sum(k[0] for k in kids)
            depth = 1 + max((k[1] for k in kids), default=0)
            if size > MAX_VALUES:
                raise ConfigError(
                    f"invalid YAML: more than {MAX_VALUES} values, aliases expanded (line {line})"
                )
            if depth > MAX_DEPTH:
                raise ConfigError(
                    f"invalid YAML: nested deeper than {MAX_DEPTH} levels through aliases "
                    f"(line {line})"
                )
            done[key] = (size, depth)
            continue
        if key in done:
            continue
        if key in on_path:
            raise ConfigError(f"invalid YAML: an alias refers to itself (line {line})")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in done)


def load_document(text: str) -> tuple[dict[tuple[str, ...], int], Any]:
    """Parse `text` within the limits above; returns the line of every key and the value."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"the file is larger than {MAX_CONFIG_BYTES // 1024} KiB")
    try:
        loader = _BoundedLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return {}, None
            _check_expansion(node)
            # Before constructing: the constructor flattens merge keys into the nodes in place.
            lines = _key_lines(node)
            try:
                return lines, loader.construct_document(node)
            except yaml.YAMLError:
                raise
            except Exception as exc:
                # PyYAML's constructors do not validate explicitly tagged scalars: a date
                # like 2024-13-01 (ValueError), a 5,000-digit integer (ValueError), an empty
                # `!!float` (IndexError) or `!!timestamp` (AttributeError). The document is
                # bounded by now, so whatever they raise is a bad value, not a bug of ours.
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ConfigError(f"invalid YAML value: {first}") from None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"invalid YAML: {problem}{where}") from None
