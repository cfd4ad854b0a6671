"""The decoding engine: autoregressive (``ar``), speculative (``sd``) and speculative speculative (``ssd``).

Every mode runs the same verification loop on the target. The committed sequence's last token
(the *pending* token: the last prompt token at first, then each round's bonus token) has not been
run through the target yet; a round runs ``[pending, d_1..d_K]`` in one target forward, verifies
the proposal, crops the target's KV cache back to the accepted prefix and emits ``k + 1`` tokens:
the ``k`` accepted draft tokens and the bonus. ``K`` is the lookahead (``EngineConfig.lookahead``),
``k`` the accepted count (``VerifyResult.accepted``).
``ar`` is the same loop with an empty proposal (``K = 0``).

A ``generate`` call may carry a *reference*, a guess of the whole output (the planner's: the plan the
command's words spell out). With ``EngineConfig.lookup`` on, a round proposes the reference's continuation
(``lookup.py``) whenever the output so far leads into it, and the draft (in ``sd`` and ``ssd``) only where it
does not: a right guess is verified in one target forward. The draft starts on its first proposal and starts
again from the committed sequence after lookup rounds, so it never drafts from tokens it has not seen.

Example::

    engine = Engine(target, EngineConfig(mode="ssd", lookahead=4), draft=ModelSpec(path="models/pretrained/draft-smollm2"))
    out = engine.generate(prompt_ids, max_new_tokens=64, eos_ids={2})
    print(out.tokens, out.stats.summary())
    engine.close()
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import torch

from .draft_process import DraftProcessError, ProcessSpeculator
from .fanout import resolve_fanout
from .language_model import LanguageModel, ModelSpec, check_same_vocab
from .lookup import allowed_prefix, lookup
from .prefix_cache import PrefixCache
from .sampling import masked_logits, to_probs
from .speculate_types import DecodeStats, RoundRecord, SpecRequest, TokenConstraint
from .speculator import DraftSpeculator, Speculator, SpeculatorConfig
from .verify import verify

DECODE_MODES = ("ar", "sd", "ssd")
MODES = DECODE_MODES + ("auto",)
"""``auto`` is resolved before an ``Engine`` is built: ``Planner.load`` times each of ``DECODE_MODES`` and keeps the fastest."""


@dataclass
class EngineConfig:
    """Decoding settings.

    mode: ``"ar"``, ``"sd"`` (synchronous), ``"ssd"`` (Saguaro) or ``"auto"`` (the fastest of the three on this
        machine, from ``Planner.load``'s start-up calibration; an ``Engine`` needs a resolved mode).
    lookahead: ``K``, draft tokens per round (sd, ssd).
    temperature: target temperature; 0 is greedy.
    draft_temperature: draft sampling temperature (default: ``temperature``).
    fanout: ``"geometric"``, ``"uniform"``, ``"zero"`` or ``K + 1`` explicit counts (ssd).
    branch_budget: branches pre-drafted per round, ``B = sum(F)`` (ssd).
    accept_rate, miss_exponent: ``a`` and ``r`` of the geometric fan-out.
    adapt_accept_rate: re-estimate ``a`` from the verified rounds, starting from ``accept_rate`` (geometric ssd; see
        ``SpeculatorConfig.adapt_accept_rate``); False keeps ``accept_rate`` fixed.
    saguaro_c: Saguaro scale ``C`` on the draft's top tokens when sampling (1 = off).
    backup: on a speculation-cache miss, ``"jit"`` drafting or the ``"fast"`` random backup (ssd).
    draft_process: run the ssd draft in its own process (False: sequential, for tests and debugging).
    timeout_s: how long the target waits for the draft process before finishing without it.
    prefix_cache: reuse the KV of the prompt prefix shared with the previous request, in the target
        and the draft (``prefix_cache.py``; False: prefill every prompt from scratch).
    lookup: propose a ``generate`` call's ``reference`` where the output leads into it (``lookup.py``; any mode);
        False: ignore references.
    seed: seeds the target's (and, offset by one, the draft's) random stream.
    """

    mode: str = "ssd"
    lookahead: int = 4
    temperature: float = 0.0
    draft_temperature: float | None = None
    fanout: str | list[int] = "geometric"
    branch_budget: int = 12
    accept_rate: float = 0.7
    miss_exponent: float = 1.0
    adapt_accept_rate: bool = True
    saguaro_c: float = 1.0
    backup: str = "jit"
    draft_process: bool = True
    timeout_s: float = 60.0
    prefix_cache: bool = True
    lookup: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.lookahead < 1:
            raise ValueError(f"lookahead (draft tokens per round, --k) must be >= 1, got {self.lookahead}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.draft_temperature is not None and self.draft_temperature <= 0:
            raise ValueError(f"draft_temperature must be > 0, got {self.draft_temperature}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")

    def speculator_config(self) -> SpeculatorConfig:
        ssd = self.mode == "ssd"
        fan = (resolve_fanout(self.fanout, self.lookahead, self.branch_budget, self.accept_rate, self.miss_exponent) if ssd
               else [0] * (self.lookahead + 1))
        return SpeculatorConfig(
            lookahead=self.lookahead,
            fanout=tuple(fan),
            backup=self.backup if ssd else "jit",
            greedy=self.temperature == 0,
            temperature=self.draft_temperature or self.temperature or 1.0,
            saguaro_c=self.saguaro_c if ssd else 1.0,
            predraft=ssd,
            prefix_cache=self.prefix_cache,
            adapt_accept_rate=self.accept_rate if ssd and self.fanout == "geometric" and self.adapt_accept_rate else None,
            branch_budget=self.branch_budget,
            miss_exponent=self.miss_exponent,
        )


@dataclass
class Generation:
    """New token ids (EOS included when reached) and the call's statistics."""

    tokens: list[int]
    stats: DecodeStats = field(default_factory=lambda: DecodeStats("ar"))


class Engine:
    """Target-side verifier driving a speculator (see module docstring)."""

    def __init__(
        self,
        target: LanguageModel,
        config: EngineConfig,
        draft: LanguageModel | ModelSpec | None = None,
        target_tokenizer=None,
        draft_tokenizer=None,
    ) -> None:
        self.target = target
        self.config = config
        if config.mode not in DECODE_MODES:
            raise ValueError(f"an Engine decodes in one of {DECODE_MODES}, got {config.mode!r}: 'auto' is resolved by Planner.load")
        self.speculator: Speculator | None = None
        self.prefix = PrefixCache(target, config.prefix_cache)
        if config.mode == "ar":
            return
        if draft is None:
            raise ValueError(f"mode {config.mode!r} needs a draft model")
        spec_cfg = config.speculator_config()
        if config.mode == "ssd" and config.draft_process:
            if not isinstance(draft, ModelSpec):
                raise ValueError("the ssd draft process loads its own model: pass draft as a ModelSpec")
            proc = ProcessSpeculator(draft, spec_cfg, timeout_s=config.timeout_s)
            self.speculator = proc
            draft_vocab = proc.vocab_size
        else:
            model = draft.load() if isinstance(draft, ModelSpec) else draft
            draft_tokenizer = draft_tokenizer or getattr(model, "tokenizer", None)
            self.speculator = DraftSpeculator(model, spec_cfg)
            draft_vocab = model.vocab_size
        try:
            check_same_vocab(target_tokenizer or getattr(target, "tokenizer", None), draft_tokenizer, target.vocab_size, draft_vocab)
        except ValueError:
            self.close()
            raise

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the draft process, if any (idempotent, bounded time)."""
        if self.speculator is not None:
            self.speculator.close()

    def _draft_lost(self, stats: DecodeStats, error: Exception) -> None:
        msg = f"draft unavailable ({str(error).splitlines()[0]}); finishing in ar mode, output stays exact"
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        stats.warnings.append(msg)
        self.speculator.close()
        self.speculator = None

    @torch.inference_mode()
    def generate(
        self,
        prompt: list[int],
        max_new_tokens: int,
        eos_ids: set[int] | frozenset[int] = frozenset(),
        constraint: TokenConstraint | None = None,
        seed: int | None = None,
        reference: Sequence[int] = (),
    ) -> Generation:
        """Decode up to ``max_new_tokens`` after ``prompt`` (token ids), stopping after an EOS id.

        With a ``constraint``, target and draft logits are masked identically at every position. ``reference``: a
        guess of the output, proposed where the output leads into it (``EngineConfig.lookup``); it never changes
        the tokens.
        """
        if not prompt:
            raise ValueError("the prompt must hold at least one token")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if max(prompt) >= self.target.vocab_size or min(prompt) < 0:
            raise ValueError(f"prompt token ids must lie in [0, {self.target.vocab_size})")
        cfg = self.config
        seed = cfg.seed if seed is None else seed
        greedy = cfg.temperature == 0
        generator = torch.Generator().manual_seed(seed)
        stats = DecodeStats(cfg.mode)
        if cfg.mode != "ar" and self.speculator is None:
            stats.warnings.append("draft unavailable since an earlier failure; decoding in ar mode")
        spec = self.speculator
        reference = list(reference) if cfg.lookup else []
        synced = False  # whether the draft's sequence is the committed one (it starts on its first proposal)
        spec_round = 0

        t0 = time.perf_counter()
        kv, n_cached = self.prefix.reuse(prompt[:-1])
        head = prompt[n_cached:-1]  # prompt tokens the first round runs before its proposal, in the same forward
        stats.prefill_tokens = len(head)
        t1 = time.perf_counter()
        stats.prefill_s = t1 - t0

        n_committed, pending = len(prompt) - 1, prompt[-1]
        state = constraint.initial() if constraint else None
        out: list[int] = []
        accepted = 0
        while True:
            draft, q, kind = [], None, "ar"
            if reference:
                draft = allowed_prefix(lookup(reference, out, max_new_tokens - len(out)), constraint, state)
                kind = "lookup" if draft else kind
            if spec is not None and not draft:
                try:
                    if not synced:
                        spec.start(prompt + out, seed + 1, constraint, len(out))
                        synced, spec_round, accepted = True, 0, 0
                    prop = spec.propose(SpecRequest(spec_round, accepted, pending, n_committed, time.monotonic()))
                    spec_round += 1
                    draft, q, kind = prop.tokens, prop.q, prop.kind
                    if isinstance(spec, DraftSpeculator) and spec.config.predraft:
                        spec.predraft()  # sequential ssd: what the draft process overlaps with verification
                    if prop.slack_s is not None:
                        stats.slack_s.append(prop.slack_s)
                except DraftProcessError as e:
                    self._draft_lost(stats, e)
                    spec, draft, q, kind = None, [], None, "ar"
            synced &= kind != "lookup"
            states = [state]
            for t in draft:
                states.append(constraint.advance(states[-1], t) if constraint else None)
            logits = self.target.forward(kv, torch.tensor([head + [pending] + draft]))[0, len(head) :]  # [K + 1, V]
            stats.target_forwards += 1
            if head:
                self.prefix.keep(kv, prompt[:-1])
                head = []
            mask = None
            if constraint is not None:
                rows = [constraint.mask(s) for s in states]
                mask = torch.stack([torch.ones(logits.shape[-1], dtype=torch.bool) if m is None else m for m in rows])
            p = masked_logits(logits, mask) if greedy else to_probs(logits, cfg.temperature, mask)
            res = verify(p, draft, q, greedy, generator)
            self.target.crop(kv, n_committed + 1 + res.accepted)
            new = draft[: res.accepted] + [res.bonus]
            kept, done = 0, False
            for t in new:
                out.append(t)
                kept += 1
                if t in eos_ids or len(out) >= max_new_tokens:
                    done = True
                    break
            stats.rounds.append(RoundRecord(res.accepted, kind, kept))
            n_committed += 1 + res.accepted
            pending, accepted = res.bonus, res.accepted
            state = constraint.advance(states[res.accepted], res.bonus) if constraint else None
            if done:
                break
        stats.decode_s = time.perf_counter() - t1
        stats.new_tokens = len(out)
        return Generation(out, stats)
