"""Country and autonomous system of a public address, offline.

Built in: the country from ``iptocc``, which ships the five Regional Internet Registries'
delegation files inside its wheel (the country a block is assigned to; no autonomous system).
``.mmdb`` files named in the configuration (MaxMind GeoLite2/GeoIP2 Country, City or ASN; DB-IP's
country and ASN files; IPinfo's) replace it for what they hold: a country database replaces the
built-in countries, an ASN database adds the autonomous system.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import iptocc

from forwarder.config import ConfigError

_CACHE = 65536  # addresses remembered: a trail's sources repeat


class Geo:
    def __init__(self, mmdb: Sequence[Path] = (), where: str = "baseline.mmdb") -> None:
        self._readers: list[Any] = []
        for number, path in enumerate(mmdb):
            import maxminddb  # only for a file named: it takes longer to import than a small batch to enrich

            try:
                self._readers.append(maxminddb.open_database(str(path)))
            except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise ConfigError(f"{where}[{number}] {path}: cannot be read as a MaxMind DB (.mmdb) file: {reason}") from None
        self._builtin = not any("ASN" not in reader.metadata().database_type.upper() for reader in self._readers)
        self._known: dict[str, tuple[str | None, int | None]] = {}

    def locate(self, ip: str) -> tuple[str | None, int | None]:
        """(ISO country code, AS number) of a public address; None where it is not known."""
        found = self._known.get(ip)
        if found is None:
            if len(self._known) >= _CACHE:
                self._known.clear()
            found = self._known[ip] = self._lookup(ip)
        return found

    def _lookup(self, ip: str) -> tuple[str | None, int | None]:
        country: str | None = None
        number: int | None = None
        for reader in self._readers:
            try:
                record = reader.get(ip)
            except ValueError:  # an IPv6 address in an IPv4-only file
                continue
            if isinstance(record, dict):
                country = country or _country(record)
                number = number or _as_number(record)
        if country is None and self._builtin:
            country = iptocc.country_code(ip)
        return country, number

    def close(self) -> None:
        for reader in self._readers:
            reader.close()


def _country(record: dict[str, Any]) -> str | None:
    value = record.get("country")
    if isinstance(value, dict):  # MaxMind, DB-IP
        code = value.get("iso_code")
    else:  # IPinfo: "country": "DE"
        code = value
    return code if isinstance(code, str) and len(code) == 2 else None


def _as_number(record: dict[str, Any]) -> int | None:
    value = record.get("autonomous_system_number", record.get("asn"))
    if isinstance(value, str) and value.upper().startswith("AS"):  # IPinfo: "asn": "AS3320"
        value = value[2:]
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
