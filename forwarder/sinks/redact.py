"""Keeping a sink's secrets out of what it says: its log lines, errors and dead-letter reasons.

The HTTP libraries put what they were given into their errors (http.client: ``Invalid header
value b'Splunk <token>'``), and a server may echo a request back. A sink passes every text that
came from outside through its Redactor before logging or raising it.
"""

from __future__ import annotations

from collections.abc import Iterable

MASK = "***"


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret:
                # As given, and as repr() of str or bytes writes it (escaped quotes, \n, \x..).
                forms |= {secret, repr(secret)[1:-1], repr(secret.encode("utf-8", "replace"))[2:-1]}
        # Longest first, so that a secret containing another is masked whole.
        self._forms = sorted(forms, key=len, reverse=True)

    def __call__(self, text: object) -> str:
        result = str(text)
        for form in self._forms:
            result = result.replace(form, MASK)
        return result
