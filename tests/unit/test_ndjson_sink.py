"""The NDJSON sink on a full disk: the failed send raises SinkError, and a document cut short
is never glued to the next one."""

from __future__ import annotations

import errno
import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from forwarder.config import NdjsonSink as NdjsonConfig
from forwarder.document import Document
from forwarder.sinks.base import SinkError
from forwarder.sinks.ndjson import NdjsonSink


def documents(first: int, count: int) -> list[Document]:
    # Lengths differ from one document to the next, so a full disk cuts inside a line.
    return [Document({"eventID": f"e{n}", "pad": "x" * (300 + 37 * (n % 11))}, None, "test") for n in range(first, first + count)]


def event_ids(lines: list[bytes]) -> list[str]:
    return [orjson.loads(line)["eventID"] for line in lines]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a disk that really fills up."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mountpoint)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "--lazy", str(mountpoint)], check=True)  # lazy: a failed test may leave the file open


def test_a_full_disk_leaves_only_whole_documents(small_disk: Path) -> None:
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"b" * 16384)  # what the operator will delete to make room
    output = small_disk / "out.ndjson"
    sink = NdjsonSink(NdjsonConfig(type="ndjson", path=str(output)))
    accepted: list[str] = []
    batch = 0
    with pytest.raises(SinkError, match="No space left on device"):
        while True:
            sink.send(documents(batch * 10, 10))
            accepted += [f"e{n}" for n in range(batch * 10, batch * 10 + 10)]
            batch += 1
    failed = documents(batch * 10, 10)
    with pytest.raises(SinkError):
        sink.send(failed)  # sent again before there is room: refused again
    ballast.unlink()
    sink.send(failed)
    sink.close()
    lines = output.read_bytes().splitlines()
    assert event_ids(lines) == accepted + [doc.event_id for doc in failed]


class FullPipe(io.RawIOBase):
    """A pipe whose reader is a full disk: takes ``room`` bytes, then ENOSPC once."""

    def __init__(self, room: int) -> None:
        self.data = bytearray()
        self.room: int | None = room

    def writable(self) -> bool:
        return True

    def write(self, chunk: bytes) -> int:  # type: ignore[override]
        if self.room is None:
            self.data += chunk
            return len(chunk)
        if not self.room:
            self.room = None
            raise OSError(errno.ENOSPC, "No space left on device")
        taken = bytes(chunk[: self.room])
        self.data += taken
        self.room -= len(taken)
        return len(taken)


def test_on_a_pipe_the_document_after_a_cut_starts_on_a_fresh_line() -> None:
    pipe = FullPipe(room=1000)
    sink = NdjsonSink(NdjsonConfig(type="ndjson", path="-"), stream=pipe)  # type: ignore[arg-type]
    failed = documents(0, 5)
    payload = b"".join(doc.to_json() + b"\n" for doc in failed)
    assert payload[999:1000] != b"\n"  # the cut falls inside a document
    with pytest.raises(SinkError, match="No space left on device"):
        sink.send(failed)
    sink.send(failed)
    # What went out before the cut stays (a pipe cannot take it back), ended by a newline of
    # its own: the documents sent again are each whole on their line.
    assert bytes(pipe.data) == payload[:1000] + b"\n" + payload


def test_a_file_left_inside_a_line_is_continued_on_a_fresh_line(tmp_path: Path) -> None:
    output = tmp_path / "out.ndjson"
    output.write_bytes(documents(0, 1)[0].to_json() + b"\n" + documents(1, 1)[0].to_json()[:50])  # killed mid-write
    sink = NdjsonSink(NdjsonConfig(type="ndjson", path=str(output)))
    sink.send(documents(2, 2))
    sink.close()
    lines = output.read_bytes().splitlines()
    assert event_ids(lines[:1] + lines[2:]) == ["e0", "e2", "e3"]
