"""argparse helpers shared by every ``forethought <verb>`` module."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

T = TypeVar("T")


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


def key_values(items: Sequence[str], flag: str) -> dict[str, str]:
    """The ``KEY=VALUE`` items of a repeatable ``flag`` as a dict; ``ValueError`` for an item without a key or ``=``."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} must be KEY=VALUE, got {item!r}")
        options[key] = value
    return options


def run_writer(verb: str, out: Path, job: Callable[[], T]) -> tuple[int, T | None]:
    """Run ``job``, which writes ``out`` atomically, for ``forethought <verb>``: ``(0, its result)``.

    A ``ValueError`` (bad input) prints one line and gives ``(2, None)``; Ctrl-C says that nothing
    was written and gives ``(130, None)``.
    """
    try:
        return 0, job()
    except ValueError as e:
        print(f"forethought {verb}: error: {e}", file=sys.stderr)
        return 2, None
    except KeyboardInterrupt:
        print(f"forethought {verb}: interrupted; nothing written to {out}", file=sys.stderr)
        return 130, None
