"""The LLM task planner: command text in, schema-valid plan out, decoded with AR / SD / SSD.

Example::

    planner = Planner.load(config=EngineConfig(mode="ssd"))
    result = planner.plan("push the red block to the left", scene="pushblocks-3")
    print(result.plan, result.stats)

Every decode proposes ``reference.reference_plan`` (the plan the command's words spell out) to the engine's
lookup (``decoding/lookup.py``): verified like any draft, it makes a right guess one target forward and changes no
token. Every decoded plan then goes through ``grounding.ground``: a plan naming a block, region or point
the command does not refer to becomes a refusal whose ``detail`` says what is missing or asks
which block is meant. A grounded plan that does less than the command asks for (``coverage.demand``:
"green left, red right" planned as one push, "put red beside it" as a push to a region) or goes to a
demanded region more often than asked (``coverage.exceeds``), one that grounding refused for a block or
place the command does not name, or a model refusal the scene contradicts (``coverage.CONTRADICTED``:
"object not in scene" of a command whose every named block is present and every word read, "blue: next to
green"; "unknown target" of a reach to a point written on the table, "touch 0.1, -0.2"), is decoded once
more under the grammar of plans that go to the command's destinations in its order and involve every
block it names (``schema.plan_dfa(..., targets, required)``; for a contradicted refusal without the
refusal branch, ``refusal=False``), pushing only the blocks the command names when it names them by
colour (``Planner._named``; none when it refers to no block), through the same engine; the second plan
is kept when it passes grounding and covers the command, else
the first plan or refusal stands. With ``score_plans`` (or a ``min_logprob``) the plan's
log-probability under the grammar-constrained target is in ``stats["plan_logprob"]``, and a plan
below ``min_logprob`` becomes the refusal "not sure what you mean; please rephrase".
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
import unicodedata
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from forethought.runtime import pretrained_dir

from ..decoding.engine import DECODE_MODES, Engine, EngineConfig
from ..decoding.language_model import HFLanguageModel, ModelSpec, check_same_vocab, load_tokenizer
from ..decoding.sampling import masked_logits
from ..training.lora import load_config
from .coverage import CONTRADICTED, Demand, covers, demand, exceeds
from .grammar import GrammarConstraint, token_strings
from .grounding import check, ground, licensed_blocks, mentions, without_repeats
from .prompts import prompt_ids
from .reference import reference_text
from .schema import MAX_STEPS, plan_dfa, refusal, scene_blocks, validate_plan



DEFAULT_TARGET = "smollm2"
DEFAULT_DRAFT = str(pretrained_dir() / "draft-smollm2")
DEFAULT_ADAPTER = str(pretrained_dir() / "planner-lora-smollm2")
"""The shipped LoRA adapter of the default target (``forethought train planner-lora``); pass ``adapter=None`` to plan with the base model."""
MAX_COMMAND_CHARS = 500
MAX_PLAN_TOKENS = 192
UNSURE = "not sure what you mean; please rephrase"
KEPT_COVERING = 16
"""How many covering grammars (``constraint(present, want)``) a planner keeps."""
CALIBRATION = (("push the red block to the left", "pushblocks-3"), ("move the pusher to the center", "pushblocks-3"))
"""One-step commands that ``mode="auto"`` times each decoding mode on at start-up."""


@dataclass
class PlanResult:
    """The validated, grounded plan, the raw text the model produced (and its token ids, EOS excluded) and the decoding statistics.

    ``stats["grounding"]``: ``"refused"`` when grounding replaced the decoded plan by a refusal,
    ``"explained"`` when it added a detail (or the reason the command's words give) to the model's refusal,
    ``"deduplicated"`` when it dropped a step repeating the one before (kept when the command asks for it twice:
    "... to the lower left. after that, ... to the lower left"), ``"unsure"`` when the plan fell below
    ``min_logprob``; absent when the decoded plan stands. ``stats["coverage"]``: ``"redecoded"`` when the plan
    is the second decode of a command the first plan (or the model's contradicted refusal) did not cover, ``"short"``
    when that decode did not cover it either (the first plan or refusal stands)."""

    plan: dict[str, Any]
    text: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    tokens: list[int] = field(default_factory=list)


def clean_command(command: str | bytes) -> str:
    """Text of a command: bytes decoded as UTF-8 with replacement, control characters dropped, whitespace collapsed."""
    if isinstance(command, bytes):
        command = command.decode("utf-8", errors="replace")
    if not isinstance(command, str):
        raise ValueError(f"a command must be str or bytes, got {type(command).__name__}")
    kept = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in command)
    return " ".join(kept.split())


class Planner:
    """Loads the target (and draft) once; ``plan`` decodes one command under the scene's grammar, then grounds it.

    ``grounding=False`` returns the decoded plans unchecked (to measure what grounding changes);
    ``coverage=False`` keeps a grounded plan that does less than the command asks for (no second decode);
    ``score_plans=True`` puts each plan's log-probability in ``stats["plan_logprob"]`` (one more
    target forward per command); ``min_logprob`` (which implies scoring) refuses plans below it.
    """

    def __init__(self, tokenizer: Any, engine: Engine, max_new_tokens: int = MAX_PLAN_TOKENS, prompt_style: str = "fewshot",
                 grounding: bool = True, score_plans: bool = False, min_logprob: float | None = None, coverage: bool = True) -> None:
        self.tokenizer = tokenizer
        self.grounding = grounding
        self.coverage = coverage
        self.score_plans = score_plans
        self.min_logprob = min_logprob
        self.engine = engine
        self.max_new_tokens = max_new_tokens
        self.prompt_style = prompt_style
        self.tokens = token_strings(tokenizer)
        if tokenizer.eos_token_id is None:
            raise ValueError("the planner needs a tokenizer with an EOS token")
        self.eos_ids = {int(tokenizer.eos_token_id)}
        self._constraints: dict[tuple, GrammarConstraint] = {}
        self.calibration: dict[str, Any] | None = None
        """With ``mode="auto"``: ``{"chosen": mode, "seconds": {mode: median seconds to plan CALIBRATION}}``."""

    @classmethod
    def load(
        cls,
        target: str = DEFAULT_TARGET,
        draft: str | None = DEFAULT_DRAFT,
        config: EngineConfig | None = None,
        max_new_tokens: int = MAX_PLAN_TOKENS,
        adapter: str | None = DEFAULT_ADAPTER,
        device: str = "cpu",
        dtype: str | None = None,
    ) -> "Planner":
        """Load the target (an HF directory, a ``.gguf`` file or ``"smollm2"``), merge its LoRA ``adapter``
        (``None``: the base model with the few-shot prompt) and, unless ``ar``, the draft, both on ``device`` in ``dtype``
        (default: bfloat16 on CUDA, float32 on the CPU; ``language_model.resolve_device``).

        ``config.mode == "auto"`` builds a planner in each of ar, sd and ssd, times them on ``CALIBRATION``
        (``fastest``) and keeps the fastest; greedy plans are the same in every mode.
        The default adapter belongs to the default target and is used with it only."""
        config = config or EngineConfig(mode="ssd")
        if adapter == DEFAULT_ADAPTER and target != DEFAULT_TARGET:
            adapter = None
        style = load_config(adapter).prompt_style if adapter is not None else "fewshot"
        tokenizer = load_tokenizer(target)
        target_lm = ModelSpec(path=target, adapter=adapter, device=device, dtype=dtype).load()
        draft_spec = None
        if config.mode != "ar":
            if draft is None or not os.path.exists(draft):
                raise ValueError(
                    f"mode {config.mode!r} needs a draft model, and {draft!r} does not exist: "
                    "train it with `forethought train draft` or pass --mode ar"
                )
            check_same_vocab(tokenizer, load_tokenizer(draft), target_lm.vocab_size, target_lm.vocab_size)
            draft_spec = ModelSpec(path=draft, device=device, dtype=dtype)

        def build(mode: str) -> Planner:
            engine = Engine(target_lm, replace(config, mode=mode), draft=draft_spec, target_tokenizer=tokenizer)
            return cls(tokenizer, engine, max_new_tokens, style)

        return fastest(build) if config.mode == "auto" else build(config.mode)

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> "Planner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def constraint(self, present: tuple[str, ...], want: Demand | None = None, refuse: bool = True,
                   blocks: tuple[str, ...] | None = None) -> GrammarConstraint:
        """The grammar of plans valid in a scene with blocks ``present``; with ``want``, of the plans that go to
        exactly ``want.targets`` in order with ``want.skills``, ``want.objects`` and ``want.points`` and do every item it
        requires, unless ``refuse`` with no refusal, and with ``blocks`` pushing and going next to those blocks only
        (built once per key; the ``KEPT_COVERING`` newest of these are kept, each holding a few MB of masks once used)."""
        blocks = present if blocks is None else blocks
        key = (present,) if want is None else (blocks, want.targets, want.required, refuse, want.skills, want.objects, want.points)
        if key not in self._constraints:
            dfa = plan_dfa(present) if want is None else plan_dfa(blocks, targets=want.targets, required=want.required,
                                                                 refusal=refuse, skills=want.skills, objects=want.objects,
                                                                 points=want.points)
            self._constraints[key] = GrammarConstraint(dfa, self.tokens, self.eos_ids, self.engine.target.vocab_size)
            covering = [k for k in self._constraints if len(k) > 1]  # oldest first; a scene's grammar is kept for good
            if len(covering) > KEPT_COVERING:
                del self._constraints[covering[0]]
        return self._constraints[key]

    def _uncovered(self, result: PlanResult, command: str, present: tuple[str, ...]) -> tuple[Demand, bool] | None:
        """``(what command asks for, whether the second decode may refuse)`` when ``result``'s grounded plan does less
        (or goes to a demanded region more often than asked: ``coverage.exceeds``), when grounding refused a decoded plan
        for a block or place the command does not name while its words name a block or the pusher and alone refuse
        nothing, or when the scene contradicts the model's refusal (``coverage.CONTRADICTED``: "object not in scene" of a
        command whose every named block is present, "unknown target" of a reach to a point written on the table; every
        word read; the second decode may then not refuse again): a second decode is due. Else ``None``."""
        substituted = result.stats.get("grounding") == "refused" and check(command, present, {"steps": []}) is None
        refutes = CONTRADICTED.get(result.plan.get("refusal", ""))
        contradicted = refutes is not None and "grounding" not in result.stats and refutes(command, present)
        if not (self.coverage and self.grounding and (result.plan["steps"] or substituted or contradicted)):
            return None
        want = demand(command, present)
        if want is None or want.min_steps > MAX_STEPS or covers(result.plan, want) and not exceeds(result.plan, want) \
                and not (substituted or contradicted):
            return None
        if substituted and not (want.blocks or mentions(command).pusher):  # "left" alone: too little to plan from
            return None
        return want, not contradicted

    @staticmethod
    def _named(command: str, present: tuple[str, ...]) -> tuple[str, ...]:
        """The blocks a second decode may push or go next to: none when the command refers to no block (grounding would
        refuse any push: "pusher leftwards, next go to the center"), those it names by colour
        (``grounding.licensed_blocks``: "push red ... then push that block ..." pushes red) unless it also leaves a
        block unnamed ("the other block"), else every present block."""
        m = mentions(command)
        if not (m.block_reference or m.all_blocks):
            return ()
        return licensed_blocks(m, present) if m.colors and not m.unnamed else present

    @staticmethod
    def _covered(first: PlanResult, second: PlanResult, want: Demand) -> PlanResult:
        """``second`` (decoded under the grammar of plans covering ``want``) when it kept its steps through grounding, else ``first``."""
        if second.plan["steps"] and covers(second.plan, want):
            return replace(second, stats={**second.stats, "coverage": "redecoded"})
        return replace(first, stats={**first.stats, "coverage": "short"})

    def _prepare(self, command: str | bytes, scene: str) -> tuple[tuple[str, ...], str, list[int] | PlanResult]:
        """The scene's blocks, the cleaned command and the prompt ids, or a refusal made without decoding."""
        present = scene_blocks(scene)
        text = clean_command(command)
        if not text or len(text) > MAX_COMMAND_CHARS:
            why = "empty" if not text else f"longer than {MAX_COMMAND_CHARS} characters"
            return present, text, PlanResult(refusal("unclear command"), stats={"note": f"command {why}: refused without decoding"})
        return present, text, prompt_ids(self.tokenizer, text, present, self.prompt_style)

    @torch.inference_mode()
    def plan_logprob(self, prompt: list[int], tokens: list[int], present: tuple[str, ...]) -> float:
        """Sum of ``log p(token)`` over the decoded ``tokens`` (EOS included) under the target masked by the scene's grammar."""
        if not tokens:
            return 0.0
        constraint = self.constraint(present)
        target = self.engine.target
        logits = target.forward(target.new_kv_cache(), torch.tensor([prompt + tokens[:-1]]))[0, len(prompt) - 1 :]  # [len(tokens), V]
        state, total = constraint.initial(), 0.0
        for row, token in zip(logits, tokens):
            total += float(torch.log_softmax(masked_logits(row, constraint.mask(state)), -1)[token])
            state = constraint.advance(state, token)
        return total if math.isfinite(total) else -math.inf

    def _finish(self, tokens: list[int], present: tuple[str, ...], stats: dict[str, Any], command: str, prompt: list[int]) -> PlanResult:
        body = [t for t in tokens if t not in self.eos_ids]
        raw = self.tokenizer.decode(body)
        try:
            plan = validate_plan(json.loads(raw), present)
        except ValueError as e:  # json.JSONDecodeError is a ValueError: only a cut-off plan gets here
            warnings.warn(f"plan did not complete within {self.max_new_tokens} tokens: {e}", RuntimeWarning, stacklevel=3)
            plan = refusal("unclear command")
        if self.score_plans or self.min_logprob is not None:
            stats = {**stats, "plan_logprob": self.plan_logprob(prompt, tokens, present)}
            if self.min_logprob is not None and plan["steps"] and stats["plan_logprob"] < self.min_logprob:
                plan, stats = refusal("unclear command", UNSURE), {**stats, "grounding": "unsure"}
        if self.grounding:
            want = demand(command, present) if plan["steps"] else None
            asked_twice = want is not None and covers(plan, want) and not covers(without_repeats(plan), want)
            grounded = ground(command, present, plan, repeats=asked_twice)
            if grounded != plan:
                change = "explained" if not plan["steps"] else "refused" if not grounded["steps"] else "deduplicated"
                stats = {**stats, "grounding": change}
            plan = grounded
        return PlanResult(plan, raw, stats, body)

    def plan(self, command: str | bytes, scene: str = "pushblocks-3", seed: int | None = None) -> PlanResult:
        """Plan ``command`` in ``scene``; unusable commands get a refusal, never an exception."""
        present, text, ids = self._prepare(command, scene)
        if isinstance(ids, PlanResult):
            return ids
        guess = self.tokenizer.encode(reference_text(text, present), add_special_tokens=False) if self.engine.config.lookup else []
        out = self.engine.generate(ids, self.max_new_tokens, eos_ids=self.eos_ids, constraint=self.constraint(present), seed=seed,
                                   reference=guess)
        result = self._finish(out.tokens, present, out.stats.summary(), text, ids)
        if (redo := self._uncovered(result, text, present)) is not None:
            again = self.engine.generate(ids, self.max_new_tokens, eos_ids=self.eos_ids, seed=seed, reference=guess,
                                         constraint=self.constraint(present, *redo, self._named(text, present)))
            result = self._covered(result, self._finish(again.tokens, present, again.stats.summary(), text, ids), redo[0])
        return result

    def plan_batch(self, items: list[tuple[str | bytes, str]], batch_size: int = 32) -> list[PlanResult]:
        """Greedy plans for many ``(command, scene)`` pairs at once with the target alone (``decoding.batched.greedy_batch``).

        For evaluation and distillation traces: much faster than ``plan`` on a CPU, and equal to its
        greedy output up to floating-point near-ties. No decoding statistics.
        """
        if not isinstance(self.engine.target, HFLanguageModel):
            raise ValueError("plan_batch needs a Hugging Face target model")
        results: list[PlanResult | None] = [None] * len(items)
        todo: list[tuple[int, tuple[str, ...], str, list[int]]] = []
        for i, (command, scene) in enumerate(items):
            present, text, ids = self._prepare(command, scene)
            if isinstance(ids, PlanResult):
                results[i] = ids
            else:
                todo.append((i, present, text, ids))
        self._batch(results, todo, batch_size)
        short = [(i, p, t, ids, *redo, self._named(t, p)) for i, p, t, ids in todo
                 if (redo := self._uncovered(results[i], t, p)) is not None]
        first = {i: results[i] for i, *_ in short}
        self._batch(results, short, batch_size)
        for i, _, _, _, want, *_ in short:
            results[i] = self._covered(first[i], results[i], want)
        return results

    def _batch(self, results: list[PlanResult | None], todo: list[tuple], batch_size: int) -> None:
        """Decode ``todo`` rows ``(index, present, text, ids[, demand, refuse, blocks])`` with ``greedy_batch`` into
        ``results``, each under ``self.constraint(present[, demand, refuse, blocks])``."""
        from ..decoding.batched import greedy_batch

        todo = sorted(todo, key=lambda t: len(t[3]))  # similar lengths together: little padding
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            outs = greedy_batch(self.engine.target, [row[3] for row in chunk], [self.constraint(row[1], *row[4:]) for row in chunk],
                                self.eos_ids, self.max_new_tokens)
            for (i, present, text, ids, *_), tokens in zip(chunk, outs):
                results[i] = self._finish(tokens, present, {"mode": "batched", "new_tokens": len(tokens)}, text, ids)


def fastest(build: Any, commands: tuple[tuple[str, str], ...] = CALIBRATION, runs: int = 2) -> Planner:
    """The fastest of ``build(mode)`` for ``mode`` in ar, sd, ssd: one warm-up plan, then the median of ``runs`` timed
    passes over ``commands``; the others are closed. Its ``calibration`` holds the timings. The modes are timed without
    lookup (``EngineConfig.lookup``), which proposes the same reference in each: a right reference would hide the
    drafting that plans it pays for where the reference is wrong."""
    seconds: dict[str, float] = {}
    best: Planner | None = None
    for mode in DECODE_MODES:
        planner = build(mode)
        config = planner.engine.config
        planner.engine.config = replace(config, lookup=False)
        planner.plan(*commands[0])
        passes = []
        for _ in range(runs):
            t0 = time.perf_counter()
            for command, scene in commands:
                planner.plan(command, scene)
            passes.append(time.perf_counter() - t0)
        planner.engine.config = config
        seconds[mode] = statistics.median(passes)
        if best is None or seconds[mode] < seconds[best.engine.config.mode]:
            if best is not None:
                best.close()
            best = planner
        else:
            planner.close()
    best.calibration = {"chosen": best.engine.config.mode, "seconds": seconds}
    return best
