"""Where a call came from, in the baseline's terms: a network, whether it is public, an agent family."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

AWS_INTERNAL = "AWS Internal"


@dataclass(frozen=True, slots=True)
class Origin:
    ip: str | None  # the address, when the source is one
    network: str | None  # IPv4 /24, IPv6 /48, or the service name / "AWS Internal" as CloudTrail writes it
    public: bool  # a globally routed address (not private, loopback, documentation, link-local...)


@lru_cache(maxsize=65536)
def origin(source: str | None) -> Origin:
    """``sourceIPAddress`` read as an origin: an address and its network, else what CloudTrail named
    (an AWS service such as ``ec2.amazonaws.com``, ``AWS Internal``)."""
    if not source:
        return Origin(None, None, False)
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return Origin(None, source, False)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return Origin(str(address), str(network), address.is_global)


def service_source(source: str | None) -> bool:
    """A call AWS made on the caller's behalf: a service name or ``AWS Internal`` as the source."""
    return bool(source) and origin(source).ip is None


@lru_cache(maxsize=4096)
def agent_family(agent: str | None) -> str | None:
    """The user agent's product, without versions: ``aws-cli/2.15.0 Python/3.11`` is ``aws-cli``,
    ``[Boto3/1.34.2 ...]`` is ``boto3``, ``console.amazonaws.com`` stays itself."""
    if not agent:
        return None
    head = agent.strip().lstrip("[").split(" ", 1)[0].split("/", 1)[0].rstrip("]")
    return head.lower() or None
