"""``forwarder session show|list``: who stands behind a key, and a person's live sessions.

Both read the state store that the configuration's ``state:`` names, beside the running daemon:
SQLite read-only (in WAL mode a reader never blocks the daemon's commits), or the shared Redis.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from forwarder.config import load_config
from forwarder.enrich.chains import Session
from forwarder.enrich.identity import Caller, account_of
from forwarder.record import iso, parse_time
from forwarder.session_trace import Clock, Reader, Trace
from forwarder.state import open_store
from forwarder.usage import Usage, readable

# How the moment a session is judged live at is named, by where it comes from.
_CLOCKS = {"stream": "the stream has reached {at}", "wall": "it is {at} by the wall clock: no stream read yet",
           "given": "at {at}, the time given"}
_NO_ROLE = "no role assumed"  # GetSessionToken: the credentials act as their caller itself


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``session`` and its subcommands to the ``forwarder`` command."""
    session = commands.add_parser("session", help="who stands behind a session key: read from the daemon's state store")
    actions = session.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="who issued a key, its chain to the origin, its expiry and the calls seen with it")
    show.add_argument("key", metavar="ACCESS_KEY_ID")
    _common(show)
    show.set_defaults(func=_show)
    listing = actions.add_parser("list", help="the live sessions whose chain starts at an identity (a person, a service)")
    listing.add_argument("--origin", required=True, metavar="ARN", help="the chain origin, as on assumerole.chain.origin.arn")
    listing.add_argument("--at", type=_moment, metavar="TIME",
                         help="live at this time (ISO 8601, UTC without an offset) instead of the point the stream has reached")
    _common(listing)
    listing.set_defaults(func=_list)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="the daemon's configuration file: its state store is read")
    parser.add_argument("--json", action="store_true", help="one JSON object on standard output")


def _moment(value: str) -> float:
    moment = parse_time(value)
    if moment is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a time (ISO 8601, such as 2026-03-31T14:45:00Z)")
    return moment.timestamp()


def _show(args: argparse.Namespace) -> int:
    store = open_store(load_config(args.config).state, read_only=True)
    try:
        reader = Reader(store)
        trace = reader.trace(args.key)
        if trace is None:
            print(f"forwarder: {args.key}: not in the state store: no STS call that issued this key has been read "
                  "(not yet, not a temporary key, or forgotten after it expired)", file=sys.stderr)
            return 1
        described = _described(trace, _usage(reader, args.key), reader.clock())
    finally:
        store.close()
    print(orjson.dumps(described, option=orjson.OPT_INDENT_2).decode() if args.json else "\n".join(_show_text(described)))
    return 0


def _list(args: argparse.Namespace) -> int:
    store = open_store(load_config(args.config).state, read_only=True)
    try:
        reader = Reader(store)
        clock = Clock(args.at, "given") if args.at is not None else reader.clock()
        found = []
        for session in sorted(reader.all_sessions(), key=lambda s: (s.created or 0.0, s.key)):
            if not clock.live(session):
                continue
            trace = reader.trace(session.key)
            if trace is not None and trace.origin is not None and trace.origin.arn == args.origin:
                found.append(_described(trace, _usage(reader, session.key), clock))
    finally:
        store.close()
    if args.json:
        listed = {"origin": args.origin, "at": _iso(clock.at), "clock": clock.by, "sessions": found}
        print(orjson.dumps(listed, option=orjson.OPT_INDENT_2).decode())
        return 0
    when = _CLOCKS[clock.by].format(at=_iso(clock.at))
    if not found:
        print(f"No live session has the origin {args.origin} ({when}).")
        return 0
    print(f"{len(found)} live session{'s' if len(found) > 1 else ''} with the origin {args.origin} ({when}):")
    for item in found:
        used = item["usage"]
        calls = (f"{used['calls']} call{'s' if used['calls'] > 1 else ''}, the last {used['last_call']}" if used
                 else "no calls seen")
        print(f"  {item['access_key_id']}  {item['role']['arn'] or _NO_ROLE}  depth {len(item['hops'])}  "
              f"issued {item['issued_at']}  expires {item['expires_at'] or 'unknown'}  {calls}")
    return 0


def _usage(reader: Reader, key: str) -> Usage | None:
    data = reader.store.get("usage", key)
    return readable(data) if data is not None else None


# -- what is printed ---------------------------------------------------------------------------


def _described(trace: Trace, usage: Usage | None, clock: Clock) -> dict[str, Any]:
    session, caller = trace.session, trace.hops[-1].caller
    return {
        "access_key_id": session.key,
        "role": {"arn": session.role_arn, "account_id": account_of(session.role_arn)},
        "caller": _identity(caller),
        "issued_at": _iso(session.created),
        "expires_at": _iso(session.expires_at),
        "live": clock.live(session),
        "clock": {"at": _iso(clock.at), "by": clock.by},
        "source_identity": session.source_identity,
        "origin": _identity(trace.origin) if trace.origin else None,
        "resolved": trace.origin is not None,
        "unresolved_because": trace.missing,
        # As on the enriched events: credentials that act as their caller itself are no hop.
        "hops": [_hop(hop.session, hop.caller) for hop in trace.hops if hop.session.role_arn],
        "usage": _used(usage) if usage else None,
    }


def _identity(caller: Caller) -> dict[str, Any]:
    return {"arn": caller.arn, "type": caller.type, "account_id": caller.account_id,
            "identity_provider": caller.identity_provider}


def _hop(session: Session, caller: Caller) -> dict[str, Any]:
    return {"role_arn": session.role_arn, "account_id": account_of(session.role_arn), "access_key_id": session.key,
            "assumed_at": _iso(session.created), "expires_at": _iso(session.expires_at), "caller": _identity(caller)}


def _used(usage: Usage) -> dict[str, Any]:
    return {
        "calls": usage.calls, "first_call": _iso(usage.first), "last_call": _iso(usage.last),
        "source_ips": [{"ip": ip, "first_call": _iso(t)} for ip, t in _by_time(usage.ips)],
        "more_source_ips": usage.more_ips,
        "user_agents": [{"user_agent": agent, "first_call": _iso(t)} for agent, t in _by_time(usage.agents)],
        "more_user_agents": usage.more_agents,
    }


def _by_time(seen: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(seen.items(), key=lambda item: (item[1], item[0]))


def _show_text(d: dict[str, Any]) -> list[str]:
    clock = _CLOCKS[d["clock"]["by"]].format(at=d["clock"]["at"])
    lines = [
        f"{d['access_key_id']}  {d['role']['arn'] or _NO_ROLE}",
        f"  issued to    {_who(d['caller'])}",
        f"  issued at    {d['issued_at'] or 'unknown'}",
        f"  expires      {d['expires_at'] or 'not logged (12 hours at most)'}"
        f" ({'live' if d['live'] else 'expired'}: {clock})",
    ]
    if d["source_identity"]:
        lines.append(f"  source identity  {d['source_identity']}")
    if d["origin"]:
        lines.append(f"  origin       {_who(d['origin'])}")
    else:
        lines.append(f"  origin       unknown: {d['unresolved_because']}")
    if not d["hops"]:
        lines.append("  chain        none: the credentials act as the origin itself")
    else:
        lines.append(f"  chain        {len(d['hops'])} role assumption{'s' if len(d['hops']) > 1 else ''}"
                     + (" from the origin:" if d["origin"] else " known, from the missing link on:"))
    for number, hop in enumerate(d["hops"], start=1):
        lines.append(f"    {number}. {hop['assumed_at'] or 'time unknown'}  {hop['role_arn']}  "
                     f"(account {hop['account_id']}, key {hop['access_key_id']})")
        lines.append(f"       by {_who(hop['caller'])}")
    usage = d["usage"]
    if usage is None:
        lines.append("  calls        none seen with this key")
        return lines
    lines.append(f"  calls        {usage['calls']}, first {usage['first_call']}, last {usage['last_call']}")
    lines += _seen("from", usage["source_ips"], "ip", usage["more_source_ips"])
    lines += _seen("user agents", usage["user_agents"], "user_agent", usage["more_user_agents"])
    return lines


def _who(identity: dict[str, Any]) -> str:
    if identity["arn"] is None:  # the role owner's copy of a cross-account call names only the account
        return f"an identity of account {identity['account_id']} ({identity['type']})"
    account = f", account {identity['account_id']}" if identity["account_id"] else ""
    provider = f", named by {identity['identity_provider']}" if identity["identity_provider"] else ""
    return f"{identity['arn']} ({identity['type']}{account}{provider})"


def _seen(title: str, entries: list[dict[str, Any]], name: str, more: bool) -> list[str]:
    """One line each (user agents are long), the earliest first."""
    shown = [f"{entry['first_call']}  {entry[name]}" for entry in entries] or ["not logged"]
    if more:
        shown.append("and more, not kept")
    return [f"  {title:<12} {shown[0]}", *(f"  {'':<12} {line}" for line in shown[1:])]


def _iso(moment: float | None) -> str | None:
    return iso(datetime.fromtimestamp(moment, UTC)) if moment is not None else None
