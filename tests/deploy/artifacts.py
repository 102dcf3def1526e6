"""Where the deploy artifacts are, and the dev tools in the venv that check them."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from paths import REPO

DEPLOY = REPO / "deploy"


def tool(name: str) -> str:
    """A linter installed by the dev extra, beside this interpreter: missing means a broken install."""
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: `make install` installs the dev extra of pyproject.toml")
    return found


# benchmarks/README.md, "Memory": the daemon's peak with `concurrency` objects of
# `max_object_bytes` in work at once, every record an assumption (the most a byte can cost).
BASE_MIB = 90
RSS_PER_OBJECT_BYTE = 16


def worst_case_memory_mib(concurrency: int, max_object_bytes: int) -> int:
    return BASE_MIB + concurrency * RSS_PER_OBJECT_BYTE * max_object_bytes // (1 << 20)
