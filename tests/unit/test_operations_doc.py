"""docs/operations.md lists every line the forwarder logs: a new log call without its entry fails here."""

from __future__ import annotations

import ast
from paths import REPO

LEVELS = {"debug", "info", "warning", "error", "exception", "critical", "log"}


def _messages() -> dict[str, str]:
    """The fixed start of each log call's message (up to its first placeholder), by where it is."""
    found: dict[str, str] = {}
    for path in sorted((REPO / "forwarder").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in LEVELS and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in ("log", "logger")):
                continue
            argument = node.args[1 if node.func.attr == "log" else 0]
            if isinstance(argument, ast.Constant):
                text = str(argument.value)
            elif isinstance(argument, ast.JoinedStr):
                text = "".join(str(part.value) for part in argument.values[:1] if isinstance(part, ast.Constant))
            else:
                continue
            fixed = text.split("%", 1)[0].split("{", 1)[0].strip()
            found[f"{path.relative_to(REPO)}:{node.lineno}"] = fixed
    return found


def test_every_log_line_is_in_the_operations_guide() -> None:
    guide = (REPO / "docs" / "operations.md").read_text()
    messages = _messages()
    assert {"forwarder started", "object dead-lettered", "message not delivered: it comes back later"} <= set(
        messages.values())  # the parse finds the calls, f-strings and log.log(level, ...) alike
    missing = {where: text for where, text in messages.items() if text and text not in guide}
    assert missing == {}, "add these to docs/operations.md, section 6"

