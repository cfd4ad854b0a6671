"""The draft side of speculative decoding: just-in-time drafting, backups, and SSD pre-drafting.

``DraftSpeculator`` runs in-process (SD, or SSD in its sequential debug form) or inside the SSD
draft process (``draft_process.py``). Per round it answers a ``SpecRequest`` with a ``Proposal``:

- from the speculation cache when the reported outcome ``(k, t*)`` (``k`` draft tokens accepted, then
  the bonus token ``t*``) was predicted (a *hit*);
- else by drafting ``K`` tokens from the true prefix (``jit``) or with random allowed tokens
  (``fast``, verified as ``q = one-hot``).

With ``predraft`` on (SSD), after answering it runs the *glue* forward over the ``K + 1`` tokens
it just sent, ``[t*, d_1..d_K]``, takes the top-``F_j`` tokens of its distribution at each depth
``j`` (leaving out ``d_{j+1}``, which a rejection can never return) and drafts each such branch
``K`` tokens deep, all branches as one batch whose 2-D attention mask hides the glue tokens
deeper than the branch's fork depth and whose ``position_ids`` are the branch's logical ones.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Hashable

import torch

from .fanout import AcceptanceRate, fanout
from .language_model import LanguageModel
from .prefix_cache import PrefixCache
from .sampling import masked_logits, saguaro_probs
from .speculate_types import Proposal, SpecRequest, TokenConstraint
from .speculation_cache import Branch, SpeculationCache


@dataclass(frozen=True)
class SpeculatorConfig:
    """Draft-side settings.

    lookahead: ``K``, draft tokens per round.
    fanout: branches per depth ``F[K + 1]`` for pre-drafting (all zero: no pre-drafting).
    backup: on a speculation-cache miss, ``"jit"`` drafts from the true prefix, ``"fast"`` proposes random allowed tokens.
    greedy: the target decodes greedily, so the draft proposes its argmax and sends no ``q``.
    temperature: draft sampling temperature (sampling only).
    saguaro_c: Saguaro scale ``C`` in ``[0, 1]`` on the top-``F_j`` draft tokens (1 = plain sampling).
    predraft: run the glue forward and pre-draft branches after each answer (SSD).
    prefix_cache: reuse the KV of the prompt prefix shared with the previous sequence (``prefix_cache.py``).
    adapt_accept_rate: with a geometric fan-out, its prior acceptance rate ``a``, then re-estimated from every verified
        round (``fanout.AcceptanceRate``) and the fan-out recomputed for ``branch_budget`` and ``miss_exponent``;
        ``None``: ``fanout`` stays fixed. Only which branches are pre-drafted changes, never what is accepted.
    """

    lookahead: int
    fanout: tuple[int, ...]
    backup: str = "jit"
    greedy: bool = True
    temperature: float = 1.0
    saguaro_c: float = 1.0
    predraft: bool = True
    prefix_cache: bool = True
    adapt_accept_rate: float | None = None
    branch_budget: int = 0
    miss_exponent: float = 1.0

    def __post_init__(self) -> None:
        if self.lookahead < 1:
            raise ValueError(f"lookahead must be >= 1, got {self.lookahead}")
        if len(self.fanout) != self.lookahead + 1:
            raise ValueError(f"fanout needs K+1={self.lookahead + 1} entries, got {list(self.fanout)}")
        if self.backup not in ("jit", "fast"):
            raise ValueError(f"backup must be 'jit' or 'fast', got {self.backup!r}")
        if not self.greedy and self.temperature <= 0:
            raise ValueError(f"draft temperature must be > 0 when sampling, got {self.temperature}")


class Speculator(ABC):
    """Anything that answers ``SpecRequest`` with a ``Proposal`` of exactly ``lookahead`` tokens."""

    lookahead: int

    @abstractmethod
    def start(self, prompt: list[int], seed: int, constraint: TokenConstraint | None, generated: int = 0) -> None:
        """Begin a new sequence (forgets the previous one). The last ``generated`` tokens of ``prompt`` were decoded under
        ``constraint`` (the engine restarts the draft after lookup rounds): its state starts after them."""

    @abstractmethod
    def propose(self, request: SpecRequest) -> Proposal:
        """Draft the next ``lookahead`` tokens after the outcome in ``request``."""

    @abstractmethod
    def close(self) -> None:
        """Release resources; idempotent."""


def _mask_rows(constraint: TokenConstraint | None, states: list[Hashable], vocab: int) -> torch.Tensor | None:
    """Stacked allowed-token masks ``bool[len(states), V]`` (all True for dead states), or ``None`` without a constraint."""
    if constraint is None:
        return None
    rows = []
    for s in states:
        m = constraint.mask(s)
        rows.append(torch.ones(vocab, dtype=torch.bool) if m is None else m)
    return torch.stack(rows)


class DraftSpeculator(Speculator):
    """The draft model with its KV cache, speculation cache and backup (see module docstring)."""

    def __init__(self, model: LanguageModel, config: SpeculatorConfig) -> None:
        self.model = model
        self.config = config
        self.lookahead = config.lookahead
        self.spec_cache = SpeculationCache()
        self.seq_id = 0
        self.constraint: TokenConstraint | None = None
        self.kv = None
        self.prefix = PrefixCache(model, config.prefix_cache)
        self.fanout = tuple(config.fanout)
        self.acceptance = None if config.adapt_accept_rate is None else AcceptanceRate(config.adapt_accept_rate)

    # -- sequence bookkeeping -------------------------------------------------------------------

    def start(self, prompt: list[int], seed: int, constraint: TokenConstraint | None, generated: int = 0) -> None:
        if not prompt or not 0 <= generated < len(prompt):
            raise ValueError(f"the prompt must hold at least one token besides the {generated} generated ones")
        self.generator = torch.Generator().manual_seed(seed)
        self.constraint = constraint
        self.seq_id += 1
        self.spec_cache.clear()
        self.seq = list(prompt[:-1])  # committed tokens whose KV the target holds
        self.pending = prompt[-1]  # the last committed token, not yet run through either model
        self.pending_state = constraint.initial() if constraint else None
        for t in prompt[len(prompt) - generated :]:
            self.pending_state = self._advance(self.pending_state, t)
        self.kv, _ = self.prefix.prefill(self.seq)
        self.kv_tokens: list[int] = list(self.seq)
        self.last_tokens: list[int] = []
        self.last_states: list[Hashable] = []
        self.last_kind = ""
        self.depth_logits: dict[int, torch.Tensor] = {}  # position -> draft logits[V] from the last JIT
        self.ready_at: float | None = None

    def _advance(self, state: Hashable, token: int) -> Hashable:
        return None if self.constraint is None else self.constraint.advance(state, token)

    def _forward(self, tokens: list[int]) -> torch.Tensor:
        """Append ``tokens`` to the canonical KV; return their logits ``[T, V]``."""
        logits = self.model.forward(self.kv, torch.tensor([tokens]))[0]
        self.kv_tokens += tokens
        return logits

    def _sync(self, target: list[int]) -> int:
        """Crop the canonical KV to its longest common prefix with ``target``; return that length."""
        n = 0
        limit = min(len(self.kv_tokens), len(target))
        while n < limit and self.kv_tokens[n] == target[n]:
            n += 1
        if n < len(self.kv_tokens):
            self.model.crop(self.kv, n)
            del self.kv_tokens[n:]
        return n

    def _choose(self, logits: torch.Tensor, mask: torch.Tensor | None, depth: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Tokens ``[B]`` and their proposal probabilities ``q[B, V]`` (``None`` when greedy) from ``logits[B, V]``."""
        cfg = self.config
        if cfg.greedy:
            return masked_logits(logits, mask).argmax(dim=-1), None
        f = self.fanout[depth] if cfg.predraft else 0
        q = saguaro_probs(logits, f, cfg.saguaro_c, cfg.temperature, mask)
        return torch.multinomial(q, 1, generator=self.generator)[:, 0], q

    # -- answering a request --------------------------------------------------------------------

    def propose(self, request: SpecRequest) -> Proposal:
        if request.round > 0:
            assert self.last_tokens, "a round > 0 request needs a previous proposal"
            if self.acceptance is not None:
                self.acceptance.update(request.accepted, self.lookahead)
                cfg = self.config
                self.fanout = tuple(fanout(self.lookahead, self.acceptance.rate, cfg.miss_exponent, cfg.branch_budget))
            self.seq += [self.pending] + self.last_tokens[: request.accepted]
            before = self.last_states[request.accepted]
            self.pending = request.bonus
            self.pending_state = self._advance(before, request.bonus)
        assert len(self.seq) == request.n_committed, f"draft has {len(self.seq)} committed tokens, target {request.n_committed}"
        slack = None if self.ready_at is None else request.sent_at - self.ready_at
        self.ready_at = None
        self.depth_logits = {}
        branch = self.spec_cache.get(self.seq_id, request.accepted, request.bonus) if request.round > 0 else None
        if branch is not None:
            tokens, q, kind = branch.tokens, branch.q, "hit"
        elif self.config.backup == "fast":
            tokens, q, kind = self._fast(), None, "fast"
        else:
            tokens, q, kind = self._jit()
        self.spec_cache.clear()
        states = [self.pending_state]
        for t in tokens:
            states.append(self._advance(states[-1], t))
        self.last_tokens, self.last_states, self.last_kind = tokens, states, kind
        return Proposal(request.round, tokens, q, kind, slack)

    def _jit(self) -> tuple[list[int], torch.Tensor | None, str]:
        """Draft ``K`` tokens autoregressively from the true prefix ``seq + [pending]``."""
        start = len(self.seq)
        self._sync(self.seq)
        logits = self._forward(self.seq[len(self.kv_tokens) :] + [self.pending])[-1:]  # [1, V]
        state = self.pending_state
        tokens: list[int] = []
        qs: list[torch.Tensor] = []
        for i in range(self.lookahead):
            self.depth_logits[start + i] = logits[0]
            tok, q = self._choose(logits, _mask_rows(self.constraint, [state], logits.shape[-1]), i)
            tokens.append(int(tok[0]))
            if q is not None:
                qs.append(q[0])
            state = self._advance(state, tokens[-1])
            if i < self.lookahead - 1:
                logits = self._forward([tokens[-1]])[-1:]
        return tokens, (torch.stack(qs) if qs else None), "jit"

    def _fast(self) -> list[int]:
        """``K`` random tokens, each uniform over the tokens allowed at its position."""
        state = self.pending_state
        tokens = []
        for _ in range(self.lookahead):
            m = _mask_rows(self.constraint, [state], self.model.vocab_size)
            weights = torch.ones(self.model.vocab_size) if m is None else m[0].double()
            tokens.append(int(torch.multinomial(weights, 1, generator=self.generator)))
            state = self._advance(state, tokens[-1])
        return tokens

    # -- SSD: predicting outcomes and pre-drafting ----------------------------------------------

    def predraft(self) -> None:
        """Glue forward over ``[t*, d_1..d_K]``, then draft every predicted outcome's branch into the speculation cache."""
        K, L = self.lookahead, len(self.seq)
        glue = [self.pending] + self.last_tokens  # positions L .. L + K
        n = self._sync(self.seq + glue)
        known = L
        while known < n and known in self.depth_logits:
            known += 1
        n = self._sync(self.seq + glue[: known - L])  # KV beyond L without stored logits is recomputed
        rows = self._forward(glue[n - L :]) if n < L + K + 1 else None
        depth = []  # draft logits after t*, d_1..d_j, for j = 0..K
        for j in range(K + 1):
            pos = L + j
            depth.append(rows[pos - n] if pos >= n else self.depth_logits[pos])
        depth_logits = torch.stack(depth)  # [K + 1, V]
        masks = _mask_rows(self.constraint, self.last_states, depth_logits.shape[-1])
        scores = masked_logits(depth_logits, masks)
        branches: list[tuple[int, int]] = []  # (fork depth j, bonus guess t)
        for j, f in enumerate(self.fanout):
            if f == 0:
                continue
            top = scores[j].topk(min(f + 1, scores.shape[-1]))
            picks = [int(t) for t, v in zip(top.indices, top.values) if v > float("-inf") and (j == K or int(t) != glue[j + 1])]
            branches += [(j, t) for t in picks[:f]]
        drafted: dict[tuple[int, int, int], Branch] = {}
        if branches:
            for (j, t), tokens, q in zip(branches, *self._draft_branches(branches, L)):
                drafted[(self.seq_id, j, t)] = Branch(tokens, q)
        self.spec_cache.replace(drafted)
        self.ready_at = time.monotonic()

    def _draft_branches(self, branches: list[tuple[int, int]], L: int) -> tuple[list[list[int]], list[torch.Tensor | None]]:
        """Draft ``K`` tokens for each branch as one batch of ``B`` rows over a copy of the canonical KV.

        Row ``b`` forks at depth ``j_b``: it sees the prefix (``L`` tokens) and the glue tokens
        ``t*, d_1..d_{j_b}``, then its own tokens at positions ``L + j_b + 1 + s``.
        """
        K, B = self.lookahead, len(branches)
        base = self.model.kv_length(self.kv)
        assert base == L + K + 1, f"canonical draft KV holds {base} positions, expected prefix + glue = {L + K + 1}"
        kv = self.model.expand(self.kv, B)
        fork = torch.tensor([j for j, _ in branches])  # [B]
        visible = (torch.arange(base)[None, :] < (L + fork[:, None] + 1)).long()  # [B, base]
        tokens = torch.tensor([[t] for _, t in branches])  # [B, 1]
        states = [self._advance(self.last_states[j], t) for j, t in branches]
        out = torch.empty(B, K, dtype=torch.long)
        qs = []
        for s in range(K):
            visible = torch.cat([visible, torch.ones(B, 1, dtype=torch.long)], dim=1)  # [B, base + s + 1]
            positions = (L + fork + 1 + s)[:, None]  # [B, 1]
            logits = self.model.forward(kv, tokens, positions, visible)[:, -1]  # [B, V]
            tok, q = self._choose(logits, _mask_rows(self.constraint, states, logits.shape[-1]), s)
            out[:, s] = tok
            if q is not None:
                qs.append(q)
            states = [self._advance(st, int(t)) for st, t in zip(states, tok)]
            tokens = tok[:, None]
        q_rows: list[torch.Tensor | None] = list(torch.stack(qs, dim=1)) if qs else [None] * B  # [B][K, V]
        return out.tolist(), q_rows

    def close(self) -> None:
        self.spec_cache.clear()
        self.prefix.clear()
        self.kv = None
