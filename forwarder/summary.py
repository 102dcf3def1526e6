"""A short human summary of a run: counts, and the events a SOC would look at first."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from forwarder.document import Document
from forwarder.enrich.assumption import ROLE_EVENTS
from forwarder.record import epoch
from forwarder.sinks.base import Delivery

BURST_COUNT = 5
BURST_SECONDS = 600
FEDERATED = frozenset({"SAMLUser", "WebIdentityUser"})


@dataclass(slots=True)
class Finding:
    rank: int
    what: str
    document: Document


@dataclass
class Summary:
    """A sink that ships nowhere: it watches what the others receive."""

    name = "summary"
    counts: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    _failures: dict[str, list[tuple[float, Document]]] = field(default_factory=lambda: defaultdict(list))

    def send(self, documents: Sequence[Document]) -> Delivery:
        for document in documents:
            self._add(document)
        return Delivery()

    def close(self) -> None:
        pass

    def _add(self, document: Document) -> None:
        self.counts["documents"] += 1
        ar = document.assumerole
        if ar is None:
            return
        chain = ar["chain"]
        if not chain["resolved"]:
            self.counts["unresolved chains"] += 1
        if "role" not in ar:
            self.counts["calls with assumed credentials"] += 1
            for reason in (ar.get("session") or {}).get("reasons") or ():  # stolen-session findings
                self._find(1, reason, document)
            return
        # AssumeRoot, GetFederationToken and GetSessionToken issue credentials too: counted apart.
        self.counts["role assumptions" if document.record.get("eventName") in ROLE_EVENTS else "other credentials issued"] += 1
        role, caller = ar["role"], ar["caller"]
        for flag, label in ((ar["failed"], "failed"), (ar["cross_account"], "cross-account"), (role["service_linked"], "service-linked")):
            if flag:
                self.counts[f"  {label}"] += 1
        if ar["failed"]:
            moment = epoch(document.event_time)
            if moment is not None:
                self._failures[caller["arn"] or caller["account_id"] or "?"].append((moment, document))
            return
        if caller["approved"] is False:
            self._find(1, f"sensitive role {role['name']} assumed by a principal that is not approved", document)
        if role["sensitive"] and caller["type"] in FEDERATED:
            self._find(2, f"sensitive role {role['name']} assumed through {caller['type']}", document)
        if caller["external"]:
            self._find(2, f"cross-account assumption of {role['name']} by external account {caller['account_id']}", document)
        if role["service_linked"] and caller["type"] != "AWSService":
            self._find(3, f"service-linked role {role['name']} assumed by {caller['type']}", document)
        if ar["after_hours"]:
            self._find(4, f"human role {role['name']} assumed after hours", document)
        if role["sensitive"] and chain["depth"] > 1:
            self._find(4, f"sensitive role {role['name']} reached through a chain of {chain['depth']}", document)
        baseline = ar.get("baseline") or {}
        if not baseline.get("learning"):  # the behaviour baseline's findings, each with its sentence
            for reason in baseline.get("reasons") or ():
                self._find(3, reason, document)

    def _find(self, rank: int, what: str, document: Document) -> None:
        # Both copies of a cross-account call describe one event: report the role owner's.
        if document.assumerole and not document.assumerole.get("primary", True):
            return
        self.findings.append(Finding(rank, what, document))

    def _bursts(self) -> list[Finding]:
        found = []
        for principal, attempts in self._failures.items():
            attempts.sort(key=lambda item: item[0])
            start, most, last = 0, 0, 0
            for end in range(len(attempts)):
                while attempts[end][0] - attempts[start][0] > BURST_SECONDS:
                    start += 1
                if end - start + 1 > most:
                    most, last = end - start + 1, end
            if most > BURST_COUNT:
                what = f"{most} failed role assumptions by {principal} within 10 minutes"
                found.append(Finding(1, what, attempts[last][1]))
        return found

    def render(self, limit: int = 15) -> str:
        lines = ["", "Summary", "-------"]
        lines += [f"{name:>32}: {count}" for name, count in self.counts.items()]
        findings = sorted(self._bursts() + self.findings, key=lambda f: (f.rank, f.document.event_time or ""))
        lines += ["", f"Look at these first ({len(findings)} findings):"]
        for finding in findings[:limit]:
            lines.append(f"  [{finding.rank}] {finding.what}")
            lines.append(f"      {_describe(finding.document)}")
        if len(findings) > limit:
            lines.append(f"  ... and {len(findings) - limit} more")
        return "\n".join(lines)


def _describe(document: Document) -> str:
    ar: dict[str, Any] = document.assumerole or {}
    origin = ar.get("chain", {}).get("origin", {})
    who = origin.get("arn") or (f"account {origin['account_id']}" if origin.get("account_id") else "unknown origin")
    hops = " -> ".join(h.rsplit("/", 1)[-1] for h in ar.get("chain", {}).get("hops", []))
    return f"{document.event_time}  origin: {who}  chain: {hops or '-'}  eventID {document.event_id}"
