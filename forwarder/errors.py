"""Unexpected exceptions told in one line: an operator reads a log line, never a traceback."""

from __future__ import annotations


def defect(exc: BaseException) -> str:
    """A one-line account of an unexpected exception: its type, message and where it rose."""
    frame = None
    trace = exc.__traceback__
    while trace is not None:
        frame, trace = trace, trace.tb_next
    where = f" at {frame.tb_frame.f_code.co_filename.rsplit('/forwarder/', 1)[-1]}:{frame.tb_lineno}" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"
