"""Safe, strict YAML for specs and ``--set`` values: one reader, one-line errors.

``yaml.safe_load`` refuses Python objects, but on a spec it still has these problems:

* it expands aliases, so ten lines of ``&a``/``*a`` ("billion laughs") grow to gigabytes;
* it recurses once per nesting level, so ``[[[[...]]]]`` ends in a ``RecursionError``;
* it keeps the last of two equal keys and says nothing;
* it reads ``1e6`` as a string: the YAML 1.1 float pattern wants a dot and a signed exponent,
  while YAML 1.2 (and every user) reads it as a number;
* ``Path.read_text`` decodes with the locale's encoding, and a bad value (``!!int x``,
  ``2024-13-45``) raises a bare ``ValueError``.

:class:`_StrictLoader` closes each of these in PyYAML's own hooks (no new dependency): the
composer refuses anchors, aliases and nesting past :data:`MAX_DEPTH`; the constructor refuses
equal keys, merge keys (``<<``) and tags it does not know; an extra implicit resolver reads
YAML 1.2 exponent floats. Files are read as bytes, refused past :data:`MAX_SPEC_BYTES` before
parsing, and decoded strictly as UTF-8. Every problem is a :class:`ConfigError` of one line
naming the file (or ``--set KEY``) and, where it has one, the line.
"""

from __future__ import annotations

import codecs
import os
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node

from metaxm.errors import ConfigError

MAX_SPEC_BYTES = 1 << 20
"""The largest spec file read (1 MiB); the specs in ``tasks/`` hold about 1 KB."""

MAX_OVERRIDE_BYTES = 64 << 10
"""The largest ``--set`` value (64 KiB, counted in UTF-8 bytes)."""

MAX_DEPTH = 64
"""The deepest nesting of lists and mappings read; a spec uses three or four levels."""

_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# The YAML 1.2 core-schema floats that YAML 1.1 reads as strings: those with an exponent but
# no dot or no exponent sign (1e6, 1E-3, 1.0e3, .5e2). The rest already resolve as floats.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$")
# Integers YAML 1.1 reads otherwise than 1.2: a leading zero is octal (010 is 8), colons base 60
# (1:30 is 90). YAML 1.2 reads 010 as 10 and 1:30 as a string; a spec refuses both readings.
_AMBIGUOUS_INT = re.compile(r"^[-+]?(?:0[0-9_]+|[0-9][0-9_]*(?::[0-5]?[0-9])+)$")
# UTF-32 first: its little-endian mark begins with UTF-16's.
_OTHER_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


class _Refused(Exception):
    """A problem found while loading; :func:`parse_yaml` prefixes where it was."""


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[:limit]}..."


def _copy_resolvers(cls: type) -> dict[str, list[tuple[str, re.Pattern[str]]]]:
    # PyYAML keeps the implicit resolvers in a class-level dict of lists; a subclass that adds
    # one must own copies, or it would change what SafeLoader (yaml.safe_load) reads too.
    return {first: list(found) for first, found in cls.yaml_implicit_resolvers.items()}


def _line(node: Node) -> int:
    return node.start_mark.line + 1


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` without anchors, aliases, deep nesting, equal keys or unknown tags."""

    yaml_implicit_resolvers = _copy_resolvers(yaml.SafeLoader)
    yaml_constructors = dict(yaml.SafeLoader.yaml_constructors)

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, AliasEvent) or event.anchor is not None:
            raise _Refused(f"YAML anchors and aliases are not allowed in specs (line {line})")
        if self._depth >= MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep (line {line})")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, AttributeError, OverflowError):
            # a scalar its explicit or implicit tag cannot hold: !!int x, 2024-13-45
            tag = node.tag.replace("tag:yaml.org,2002:", "")
            value = _short(repr(node.value)) if isinstance(node.value, str) else "this value"
            raise _Refused(f"cannot read {value} as {tag} (line {_line(node)})") from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            line = _line(key_node)
            if key_node.tag == _MERGE_TAG:
                raise _Refused(f"YAML merge keys (<<) are not allowed in specs (line {line})")
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # a list or mapping as a key
                raise _Refused(f"a key must be a plain value (line {line})") from None
            if duplicate:
                raise _Refused(f"duplicate key {_short(repr(key))} (line {line})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_strict_int(self, node: Node) -> Any:
        value = str(self.construct_scalar(node))  # type: ignore[arg-type]
        if _AMBIGUOUS_INT.match(value):
            raise _Refused(
                f"{_short(value)} reads as octal or base 60 in YAML 1.1 and otherwise in YAML 1.2 "
                f"(line {_line(node)}); write the number without a leading zero or colon"
            )
        return self.construct_yaml_int(node)

    def construct_undefined(self, node: Node) -> Any:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise _Refused(f"the YAML tag {_short(tag)} is not allowed in specs (line {_line(node)})")


_StrictLoader.add_constructor(None, _StrictLoader.construct_undefined)
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_strict_int)
_StrictLoader.add_implicit_resolver(_FLOAT_TAG, _EXPONENT_FLOAT, list("-+.0123456789"))


class _StrictDumper(yaml.SafeDumper):
    """``SafeDumper`` whose output :class:`_StrictLoader` reads back unchanged."""

    yaml_implicit_resolvers = _copy_resolvers(yaml.SafeDumper)

    def ignore_aliases(self, data: Any) -> bool:
        return True  # write a shared list twice rather than as an anchor the loader refuses


# the same resolver, so that a string such as "1e6" is written quoted
_StrictDumper.add_implicit_resolver(_FLOAT_TAG, _EXPONENT_FLOAT, list("-+.0123456789"))


def parse_yaml(text: str, source: str) -> Any:
    """Parse one YAML document strictly.

    Args:
        text: the YAML text.
        source: where the text came from (a path, ``--set KEY``); every error begins with it.

    Returns:
        The plain data (``dict``, ``list``, ``str``, ``int``, ``float``, ``bool``, ``None``, and
        the dates and bytes of YAML's safe schema). ``1e6`` is a float, ``7`` an int.

    Raises:
        ConfigError: malformed YAML, an anchor or alias, nesting deeper than
            :data:`MAX_DEPTH`, a duplicate or merge key, an unknown tag (``!!python/...``) or a
            value its tag cannot hold; one line, naming the line of the text.
    """
    try:
        loader = _StrictLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except _Refused as err:
        raise ConfigError(f"{source}: {err}") from None
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        raise ConfigError(
            f"{source}: character U+{err.character:04X} is not allowed in YAML (line {line})"
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        said = [getattr(err, "context", None), getattr(err, "problem", None)]
        said = ", ".join(str(part) for part in said if part)
        why = f": {_short(' '.join(said.split()), 120)}" if said else ""
        raise ConfigError(f"{source}: not valid YAML{where}{why}") from None
    except RecursionError:  # the depth limit should make this unreachable
        raise ConfigError(f"{source}: nested too deeply to read") from None


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file strictly: at most :data:`MAX_SPEC_BYTES`, UTF-8, then :func:`parse_yaml`.

    A UTF-8 byte-order mark is dropped; a UTF-16 or UTF-32 one is refused.

    Raises:
        ConfigError: a missing, unreadable, too large or non-UTF-8 file, or anything
            :func:`parse_yaml` refuses; one line beginning with the path.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(MAX_SPEC_BYTES + 1)  # never more, whatever stat said
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the file ({err.strerror or err})") from None
    size = max(size, len(data))
    if size > MAX_SPEC_BYTES:
        raise ConfigError(
            f"{path}: the file is {size:,} bytes; a spec may hold at most {MAX_SPEC_BYTES:,}"
        )
    return parse_yaml(_decode(data, str(path)), str(path))


def _decode(data: bytes, source: str) -> str:
    for bom, encoding in _OTHER_BOMS:
        if data.startswith(bom):
            raise ConfigError(
                f"{source}: the file is {encoding} text (it starts with a {encoding} byte-order "
                "mark); save it as UTF-8"
            )
    skipped = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skipped:].decode("utf-8")
    except UnicodeDecodeError as err:
        offset = skipped + err.start
        raise ConfigError(
            f"{source}: not UTF-8 text (byte offset {offset}); save it as UTF-8"
        ) from None


def parse_override(raw: str, key: str) -> Any:
    """Parse the value of ``--set key=raw`` as :func:`parse_yaml` parses a file.

    An empty (or all-blank) value is the empty string.

    Raises:
        ConfigError: a value longer than :data:`MAX_OVERRIDE_BYTES`, or anything
            :func:`parse_yaml` refuses; one line beginning with ``--set KEY``.
    """
    source = f"--set {key}"
    size = len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_OVERRIDE_BYTES:
        raise ConfigError(
            f"{source}: the value is {size:,} bytes; an override may hold at most "
            f"{MAX_OVERRIDE_BYTES:,}"
        )
    if not raw.strip():
        return ""
    return parse_yaml(raw, source)


def dump_yaml(data: Any) -> str:
    """YAML text for plain data that :func:`parse_yaml` reads back equal.

    Unlike ``yaml.safe_dump`` it quotes strings such as ``"1e6"`` (which would come back as
    floats) and never writes anchors (it repeats a shared list instead). Keys keep their order.
    """
    return yaml.dump(data, Dumper=_StrictDumper, sort_keys=False)
