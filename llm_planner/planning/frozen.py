"""The frozen command set: hand-written commands with their exact plans, for measuring, never for training.

``llm_planner/data/frozen_commands.jsonl`` holds commands written by hand the way people type to a
robot, not by the generator of ``commands.py``: terse and polite phrasings, typos, synonyms of
colours, blocks and regions, pronouns and references, two and three steps with varied connectors,
absent objects, unsupported skills, injections, nonsense, targets off the table, ambiguous
references and reach points. Each row is ``{"command", "scene", "plan", "kind", "split"}``.

The split is fixed by a hash of the command and scene (``split_of``): ``dev`` is for every choice,
``test`` only for reporting (``BENCHMARKS.md`` counts its reads). The training generator
(``commands.py``, ``training/data.py``) never reads this file; ``tests/test_frozen_commands.py``
checks that no frozen command appears in generated training rows.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

FROZEN = Path(__file__).resolve().parents[1] / "data" / "frozen_commands.jsonl"
SPLITS = ("dev", "test")


def split_of(command: str, scene: str) -> str:
    """``"dev"`` when the first byte of sha256(``command|scene``) is even, else ``"test"``."""
    return "dev" if hashlib.sha256(f"{command}|{scene}".encode()).digest()[0] % 2 == 0 else "test"


def load(split: str | None = None, path: Path = FROZEN) -> list[dict[str, Any]]:
    """Rows of ``split`` (``"dev"``, ``"test"`` or ``None`` for both), in file order."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown frozen split {split!r}: valid splits are {list(SPLITS)}")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [r for r in rows if split is None or r["split"] == split]
