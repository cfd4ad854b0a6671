"""The speculation cache: branches pre-drafted for predicted verification outcomes (SSD).

Not to be confused with the KV cache (``kv`` everywhere in ``decoding/``): this one holds token
proposals, keyed by the outcome they were drafted for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Branch:
    """``K`` pre-drafted tokens and the draft probabilities ``q[K, V]`` that produced them (``None`` when greedy)."""

    tokens: list[int]
    q: torch.Tensor | None


class SpeculationCache:
    """Branches keyed by ``(seq_id, accepted, bonus)``: the branch drafted after ``accepted`` draft tokens and ``bonus``.

    It holds next-round branches only: ``replace`` swaps in a whole new round at once.
    """

    def __init__(self) -> None:
        self._branches: dict[tuple[int, int, int], Branch] = {}

    def __len__(self) -> int:
        return len(self._branches)

    def __contains__(self, key: tuple[int, int, int]) -> bool:
        return key in self._branches

    def get(self, seq_id: int, accepted: int, bonus: int) -> Branch | None:
        """The branch for outcome ``(accepted, bonus)`` of sequence ``seq_id``, or ``None`` on a miss."""
        return self._branches.get((seq_id, accepted, bonus))

    def replace(self, branches: dict[tuple[int, int, int], Branch]) -> None:
        """Drop every branch and hold ``branches`` instead."""
        self._branches = dict(branches)

    def clear(self) -> None:
        self._branches.clear()
