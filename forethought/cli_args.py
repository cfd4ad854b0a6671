"""argparse helpers shared by every ``forethought <verb>`` module."""

from __future__ import annotations

import argparse
import json
from typing import Any


def help_from_docstring(doc: str) -> tuple[str, str]:
    """(description, epilog) for ``--help`` from a module docstring: its first line and its ``Examples::``."""
    lines = doc.splitlines()
    start = lines.index("Examples::") + 1
    end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith(" ")), len(lines))
    examples = "\n".join(line[4:] if line.startswith("    ") else line for line in lines[start:end]).strip("\n")
    return lines[0].replace("``", ""), "examples:\n" + examples


def json_object(text: str) -> dict[str, Any]:
    """argparse ``type=`` for a JSON object argument, e.g. ``--task '{"skill": "reach", ...}'``."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object such as '{{\"n_blocks\": 2}}', got {text!r}")
    return value
