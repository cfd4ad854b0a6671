"""Small result types passed between the engine's stages (target, draft, draft process)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Hashable

import torch


class TokenConstraint(ABC):
    """Which tokens may come next, as a function of a hashable state advanced token by token.

    The same constraint object (or a pickled copy of it) masks the target and the draft, so that
    speculative decoding stays exact with respect to constrained target decoding.
    """

    @abstractmethod
    def initial(self) -> Hashable:
        """The state before the first generated token."""

    @abstractmethod
    def advance(self, state: Hashable, token: int) -> Hashable:
        """The state after ``token``; a dead state if ``token`` was not allowed."""

    @abstractmethod
    def mask(self, state: Hashable) -> torch.Tensor | None:
        """Allowed tokens ``bool[V]`` in ``state``; ``None`` in a dead state (no constraint left to apply)."""


@dataclass(frozen=True)
class SpecRequest:
    """Target → draft: the outcome of the last verification and what to draft next.

    ``accepted`` draft tokens of the previous proposal were accepted, then ``bonus``; the committed
    sequence (prompt included, bonus excluded) now has ``n_committed`` tokens. Round 0 carries
    ``accepted = 0`` and the last prompt token as ``bonus``.
    """

    round: int
    accepted: int
    bonus: int
    n_committed: int
    sent_at: float


@dataclass
class Proposal:
    """Draft → target: ``K`` tokens, the draft probabilities ``q[K, V]`` that produced them (``None``
    when greedy or for a fallback proposal, verified as one-hot) and where they came from."""

    round: int
    tokens: list[int]
    q: torch.Tensor | None
    kind: str  # "hit" (speculation cache), "jit" (drafted on demand) or "fast" (random backup)
    slack_s: float | None = None  # speculation cache ready before the request by this much (negative: target waited)


@dataclass
class RoundRecord:
    """One verification round: ``accepted`` draft tokens, proposal ``kind`` (a ``Proposal``'s, ``"lookup"`` for the
    reference's continuation, ``"ar"`` for none), tokens kept after stopping rules."""

    accepted: int
    kind: str
    kept: int


@dataclass
class DecodeStats:
    """Per-call statistics. ``prefill_s`` is the time to set up the prompt's KV from the prefix cache; the prompt
    tokens past the cached prefix (``prefill_tokens``) run in the first round's target forward, so ``decode_s`` and
    ``target_forwards`` include them."""

    mode: str
    new_tokens: int = 0
    prefill_s: float = 0.0
    prefill_tokens: int = 0
    decode_s: float = 0.0
    target_forwards: int = 0
    rounds: list[RoundRecord] = field(default_factory=list)
    slack_s: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-able numbers: tok/s, TPOT, acceptance length, hit rate (over the draft's rounds), forwards per token,
        slack, and the lookup rounds with their acceptance length."""
        n_rounds = len(self.rounds)
        hits = sum(r.kind == "hit" for r in self.rounds)
        drafted = sum(r.kind in ("hit", "jit", "fast") for r in self.rounds)
        emitted = sum(r.accepted + 1 for r in self.rounds)
        lookups = [r.accepted + 1 for r in self.rounds if r.kind == "lookup"]
        out = {
            "mode": self.mode,
            "new_tokens": self.new_tokens,
            "prefill_s": round(self.prefill_s, 6),
            "prefill_tokens": self.prefill_tokens,
            "decode_s": round(self.decode_s, 6),
            "tok_per_s": self.new_tokens / self.decode_s if self.decode_s > 0 else None,
            "tpot_ms": 1e3 * self.decode_s / self.new_tokens if self.new_tokens else None,
            "rounds": n_rounds,
            "acceptance_length": emitted / n_rounds if n_rounds else None,
            "cache_hits": hits,
            "cache_misses": drafted - hits if self.mode == "ssd" else None,
            "hit_rate": hits / drafted if drafted and self.mode == "ssd" else None,
            "lookup_rounds": len(lookups),
            "acceptance_length_lookup": sum(lookups) / len(lookups) if lookups else None,
            "target_forwards": self.target_forwards,
            "target_forwards_per_token": self.target_forwards / self.new_tokens if self.new_tokens else None,
            "draft_slack_ms": 1e3 * sum(self.slack_s) / len(self.slack_s) if self.slack_s else None,
            "warnings": list(self.warnings),
        }
        if self.mode == "ssd":
            for kind in ("hit", "jit", "fast"):
                lengths = [r.accepted + 1 for r in self.rounds if r.kind == kind]
                out[f"acceptance_length_{kind}"] = sum(lengths) / len(lengths) if lengths else None
        return out
