"""Telling a refused server certificate from other TLS failures, for every HTTP sink.

A certificate that does not verify is a setting to fix (``ca_file``), so the sink stops and says
so; a connection reset in the middle of a handshake raises an SSL error too, and that one is
retried like any other connection error.
"""

from __future__ import annotations

import ssl

VERIFY_FAILED = "CERTIFICATE_VERIFY_FAILED"


def certificate_refused(exc: BaseException) -> bool:
    """Whether ``exc`` (or anything it wraps) is our refusal of the server's certificate."""
    errors: list[BaseException] = [exc]
    for error in errors:  # grows with the wrapped errors found
        if isinstance(error, ssl.SSLCertVerificationError):
            return True
        # elastic-transport keeps the reason in .message once it has dropped the wrapped errors
        if VERIFY_FAILED in str(getattr(error, "message", "")) or VERIFY_FAILED in str(error):
            return True
        wrapped = (error.__cause__, error.__context__, getattr(error, "reason", None), *getattr(error, "errors", ()), *error.args)
        errors += [inner for inner in wrapped if isinstance(inner, BaseException) and inner not in errors]
    return False


def advice(where: str, reason: object) -> str:
    return (f"the certificate of {where} did not verify ({reason}): give the CA that signed it in ca_file "
            "(verify_tls: false turns the check off: never in production)")
