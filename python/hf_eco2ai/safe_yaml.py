"""Loading a configuration file's YAML with limits, so that no file can hang or exhaust a process.

On top of PyYAML's safe loader (no Python objects): the file is at most ``MAX_CONFIG_FILE_BYTES``
of UTF-8; aliases (``*name``) are refused, because a few hundred bytes of nested aliases expand to
gigabytes; nesting is at most ``MAX_NESTING`` levels, far below the interpreter's recursion limit;
a key given twice in one mapping is refused instead of the last one silently winning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import yaml  # type: ignore[import-untyped]

MAX_CONFIG_FILE_BYTES = 64 * 1024
MAX_NESTING = 32


class UnsafeYaml(ValueError):
    """The file breaks one of the limits; the message says which, where, and what to do."""


class _LimitedLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nesting = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise UnsafeYaml(
                f"uses the alias *{event.anchor} at line {event.start_mark.line + 1}: aliases are not accepted in "
                "configuration files; write the value out"
            )
        self._nesting += 1
        try:
            if self._nesting > MAX_NESTING:
                event = self.peek_event()
                raise UnsafeYaml(
                    f"is nested deeper than {MAX_NESTING} levels at line {event.start_mark.line + 1}: "
                    "expected the flat shape shown in docs/configuration.md"
                )
            return super().compose_node(parent, index)
        finally:
            self._nesting -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Dict[Any, Any]:
        first_line_by_key: Dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first_line = first_line_by_key.setdefault(key, line)
            except TypeError:
                continue  # an unhashable key: the safe constructor rejects it with its own message
            if first_line != line:
                raise UnsafeYaml(
                    f"has the duplicate key {str(key)[:80]!r} at line {first_line} and line {line}: keep only one"
                )
        return super().construct_mapping(node, deep)


def load_config_yaml(path: Path) -> Any:
    """The YAML document of ``path`` (None when empty).

    Raises:
        OSError: the file cannot be read.
        UnsafeYaml: too large, not UTF-8, an alias, too deeply nested, or a duplicate key.
        yaml.YAMLError: not valid YAML (with ``problem_mark`` where PyYAML knows the position).
    """
    with open(path, "rb") as handle:
        raw = handle.read(MAX_CONFIG_FILE_BYTES + 1)
    if len(raw) > MAX_CONFIG_FILE_BYTES:
        raise UnsafeYaml(f"is larger than {MAX_CONFIG_FILE_BYTES} bytes: a configuration file is a few lines")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UnsafeYaml(f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}): save it as UTF-8") from None
    loader = _LimitedLoader(text)
    try:
        return loader.get_single_data()
    except RecursionError:
        raise UnsafeYaml(
            "is nested too deeply to read: expected the flat shape shown in docs/configuration.md"
        ) from None
    finally:
        loader.dispose()
