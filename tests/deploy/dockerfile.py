"""Reading a Dockerfile's final stage, as the tests need it."""

from __future__ import annotations

import re
from pathlib import Path


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    found: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "FROM":
            found = []
        found.append((keyword.upper(), rest.strip()))
    return found


def last(path: Path, keyword: str) -> str:
    return [rest for key, rest in instructions(path) if key == keyword][-1]


def image_env(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for key, rest in instructions(path):
        if key == "ENV":
            env.update(dict(pair.split("=", 1) for pair in rest.split()))
    return env
