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
