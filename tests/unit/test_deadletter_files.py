"""The dead-letter files hold whole records: owner-only whatever the umask, one entry a line."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from forwarder.deadletter import DOCUMENTS, OBJECTS, DeadLetter
from forwarder.document import Document


@pytest.fixture
def no_umask() -> Iterator[None]:
    before = os.umask(0)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_directories_and_files_are_owner_only_under_umask_0(tmp_path: Path, no_umask: None) -> None:
    directory = tmp_path / "var" / "dead-letter"
    dead_letter = DeadLetter(directory)
    dead_letter.object("s3://bucket/key.json.gz", "not JSON")
    dead_letter.document(Document({"eventID": "e1"}, None, "s3://bucket/key.json.gz"), "ndjson", "refused")
    assert mode(tmp_path / "var") == 0o700
    assert mode(directory) == 0o700
    assert mode(directory / OBJECTS) == 0o600
    assert mode(directory / DOCUMENTS) == 0o600


def test_a_directory_the_operator_made_keeps_its_mode(tmp_path: Path, no_umask: None) -> None:
    directory = tmp_path / "dead-letter"
    directory.mkdir(0o750)
    DeadLetter(directory).object("s3://bucket/key.json.gz", "not JSON")
    assert mode(directory) == 0o750
    assert mode(directory / OBJECTS) == 0o600


def test_a_partial_line_left_by_a_full_disk_is_not_glued_to_the_next_entry(tmp_path: Path) -> None:
    dead_letter = DeadLetter(tmp_path)
    dead_letter.object("s3://bucket/first.json.gz", "not JSON")
    with open(tmp_path / OBJECTS, "ab") as out:
        out.write(b'{"source": "s3://bucket/cut-off')  # what a write that ran out of space left
    dead_letter.object("s3://bucket/next.json.gz", "not JSON")
    lines = (tmp_path / OBJECTS).read_bytes().splitlines()
    assert len(lines) == 3
    assert [orjson.loads(line)["source"] for line in (lines[0], lines[2])] == [
        "s3://bucket/first.json.gz", "s3://bucket/next.json.gz"]
