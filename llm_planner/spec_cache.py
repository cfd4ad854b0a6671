"""The speculation cache: branches pre-drafted for predicted verification outcomes."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class CacheEntry:
    """``K`` pre-drafted tokens and the draft probabilities ``q[K, V]`` that produced them (``None`` when greedy)."""

    tokens: list[int]
    q: torch.Tensor | None


class SpecCache:
    """Entries keyed by ``(seq_id, k, t*)``: the branch drafted after ``k`` accepted tokens and bonus ``t*``.

    It holds next-round entries only: ``replace`` swaps in a whole new round at once.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[int, int, int], CacheEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: tuple[int, int, int]) -> bool:
        return key in self._entries

    def get(self, seq_id: int, k: int, bonus: int) -> CacheEntry | None:
        """The entry for outcome ``(k, bonus)`` of sequence ``seq_id``, or ``None`` on a miss."""
        return self._entries.get((seq_id, k, bonus))

    def replace(self, entries: dict[tuple[int, int, int], CacheEntry]) -> None:
        """Drop every entry and hold ``entries`` instead."""
        self._entries = dict(entries)

    def clear(self) -> None:
        self._entries.clear()
