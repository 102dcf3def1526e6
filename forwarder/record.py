"""Reading a CloudTrail record: its bytes decoded into a dict that every encoder downstream can
write back, its loose fields as values of the expected type or None (with a note of what was
of another type), and CloudTrail's time formats, read tolerantly and written as ISO 8601 UTC.

Shared by the enrichment and the sinks (neither imports the other)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

# orjson writes at most 254 levels of nesting, and the sinks' own envelopes put a record's values
# up to 3 levels deeper (Elasticsearch's aws.cloudtrail.unindexed.<key>; a dead letter: 1).
# Real CloudTrail records are about 10 deep.
MAX_DEPTH = 251
_INT_RANGE = range(-(2**63), 2**64)  # what orjson writes: signed or unsigned 64-bit
_SHOWN = 80  # characters of a value or a path quoted in a reason or a note

_decode_json = msgspec.json.Decoder().decode


class Undecodable(ValueError):
    """A record that cannot travel as JSON every reader takes; ``reason`` says what and where."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode(raw: bytes) -> dict[str, Any]:
    """The record in ``raw`` as a dict that orjson can write back inside the sinks' envelopes,
    or Undecodable: invalid UTF-8, a lone surrogate escape, a number no double holds (``1e400``),
    an integer beyond 64 bits, nesting deeper than MAX_DEPTH, or no JSON object at all.

    msgspec reads integers exactly (orjson would turn one beyond 64 bits into a float, silently)
    and refuses the rest in C; writing the result back with orjson, inside three levels of room,
    is what bounds integers and depth, without recursion in Python. Together they cost about a
    third more than ``orjson.loads`` alone."""
    try:
        value = _decode_json(raw)
    except RecursionError:  # msgspec's bound is the interpreter's recursion limit
        raise Undecodable(f"nested deeper than {MAX_DEPTH} levels") from None
    except msgspec.MsgspecError as exc:
        raise Undecodable(_unreadable(raw, exc)) from None
    if not isinstance(value, dict):
        raise Undecodable(f"a record is a JSON object, not {kind(value)}")
    try:
        orjson.dumps([[[value]]])
    except orjson.JSONEncodeError as exc:
        raise Undecodable(_unwritable(value, exc)) from None
    return value


def check(raw: bytes) -> None:
    """Raise Undecodable where ``decode`` would, for a record that ships as its bytes, so that a
    sink that wants its dict later gets one. Its cost is decode's: whether a number fits a double
    is only known by parsing it, and no parser at hand validates without building the values."""
    decode(raw)


def _unreadable(raw: bytes, error: msgspec.MsgspecError) -> str:
    # msgspec's messages name no place for bad UTF-8 and call some lone surrogates "truncated":
    # Python's codec and orjson say better where and what, and this path is rare.
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"invalid UTF-8 at byte {exc.start}"
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "surrogate" in exc.msg:
            return f"a lone UTF-16 surrogate escape (\\ud800-\\udfff without its pair) at character {exc.pos}"
        if "infinity" in exc.msg:
            return f"a number no double holds (it would be infinite) at character {exc.pos}"
        return f"not JSON: {exc.msg} at character {exc.pos}"
    return f"not JSON: {error}"


def _unwritable(value: dict[str, Any], error: orjson.JSONEncodeError) -> str:
    """Where ``value`` holds what orjson refused: an integer beyond 64 bits or too deep a nesting."""
    stack: list[tuple[dict[str, Any] | list[Any], str, int]] = [(value, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels (at {_cut(path)})"
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            where = (f"{path}.{key}" if path else str(key)) if isinstance(node, dict) else f"{path}[{key}]"
            if isinstance(child, dict | list):
                stack.append((child, where, depth + 1))
            elif isinstance(child, int) and child not in _INT_RANGE:
                return f"integer {_cut(str(child))} at {_cut(where)} is outside the 64-bit range"
    return f"cannot be written as JSON: {error}"


def one_line(raw: bytes) -> bool:
    """True if ``raw`` can go out as one line of NDJSON or of a bulk request as it is (else it
    is pretty-printed: a carriage return ends a line too for many readers, Python's among them)."""
    return b"\n" not in raw and b"\r" not in raw


def _cut(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


# -- loose fields ------------------------------------------------------------------------


def text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def kind(value: object) -> str:
    """The JSON name of a value's type, as a note says it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


def shown(value: object) -> str:
    """A value quoted in a note: scalars as JSON writes them, containers by their type."""
    if isinstance(value, str):
        return f'"{_cut(value)}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, dict | list):
        return kind(value)
    return _cut(str(value))


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def text_at(container: dict[str, Any], where: str, key: str, notes: list[str]) -> str | None:
    """``container[key]`` if a non-empty string; a note in ``notes`` if it is of another type
    (``where`` is the container's path in the record, "" for the top level)."""
    value = container.get(key)
    if value is not None and not isinstance(value, str):
        notes.append(f"{_path(where, key)} is {kind(value)}, not a string")
    return text(value)


def mapping_at(container: dict[str, Any], where: str, key: str, notes: list[str]) -> dict[str, Any]:
    """``container[key]`` if an object, else {}; a note if it is of another type."""
    value = container.get(key)
    if value is not None and not isinstance(value, dict):
        notes.append(f"{_path(where, key)} is {kind(value)}, not an object")
    return mapping(value)


def time_at(
    container: dict[str, Any], where: str, key: str, notes: list[str], parse: Callable[[object], datetime | None]
) -> datetime | None:
    """``container[key]`` read as a time by ``parse``; a note if it is there but none."""
    value = container.get(key)
    moment = parse(value)
    if moment is None and value is not None:
        notes.append(f"{_path(where, key)} {shown(value)} is not a time CloudTrail writes")
    return moment


# -- times -------------------------------------------------------------------------------


def parse_time(value: object) -> datetime | None:
    """``eventTime`` and its export variants: ``2023-07-10T11:54:42Z``,
    ``2024-06-02 19:41:40.000000000``, ``2020-11-23T22:06:08.123Z``. Naive times are UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        return _in_range(parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC))
    except (ValueError, OverflowError):  # an offset can push a time over datetime's range
        return None


def parse_expiration(value: object) -> datetime | None:
    """STS credentials' expiration as CloudTrail writes it (``Jan 7, 2026, 11:00:00 AM``, UTC) or ISO."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return _in_range(datetime.strptime(value, "%b %d, %Y, %I:%M:%S %p").replace(tzinfo=UTC))
    except ValueError:
        return parse_time(value)


def _in_range(moment: datetime) -> datetime | None:
    # In datetime's first or last year, a time zone (business hours, a local date) can push
    # the time over datetime's range; no CloudTrail time is there.
    return moment if datetime.min.year < moment.year < datetime.max.year else None


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def epoch(value: object) -> float | None:
    moment = parse_time(value)
    return moment.timestamp() if moment else None
