"""The LLM task planner: command text in, schema-valid plan out, decoded with AR / SD / SSD.

Example::

    planner = Planner.load(config=EngineConfig(mode="ssd"))
    result = planner.plan("push the red block to the left", scene="pushblocks-3")
    print(result.plan, result.stats)
"""

from __future__ import annotations

import json
import os
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engine import Engine, EngineConfig
from .grammar import GrammarConstraint, token_strings
from .models import ModelSpec, check_same_vocab, load_tokenizer
from .prompts import prompt_ids
from .schema import plan_dfa, refusal, scene_blocks, validate_plan

DEFAULT_TARGET = "smollm2"
DEFAULT_DRAFT = str(Path(__file__).resolve().parent.parent / "models" / "pretrained" / "draft-smollm2")
MAX_COMMAND_CHARS = 500
MAX_PLAN_TOKENS = 192


@dataclass
class PlanResult:
    """The validated plan, the raw text the model produced and the decoding statistics."""

    plan: dict[str, Any]
    text: str = ""
    stats: dict[str, Any] = field(default_factory=dict)


def clean_command(command: str | bytes) -> str:
    """Text of a command: bytes decoded as UTF-8 with replacement, control characters dropped, whitespace collapsed."""
    if isinstance(command, bytes):
        command = command.decode("utf-8", errors="replace")
    if not isinstance(command, str):
        raise ValueError(f"a command must be str or bytes, got {type(command).__name__}")
    kept = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in command)
    return " ".join(kept.split())


class Planner:
    """Loads the target (and draft) once; ``plan`` decodes one command under the scene's grammar."""

    def __init__(self, tokenizer: Any, engine: Engine, max_new_tokens: int = MAX_PLAN_TOKENS) -> None:
        self.tokenizer = tokenizer
        self.engine = engine
        self.max_new_tokens = max_new_tokens
        self.tokens = token_strings(tokenizer)
        if tokenizer.eos_token_id is None:
            raise ValueError("the planner needs a tokenizer with an EOS token")
        self.eos_ids = {int(tokenizer.eos_token_id)}
        self._constraints: dict[tuple[str, ...], GrammarConstraint] = {}

    @classmethod
    def load(
        cls,
        target: str = DEFAULT_TARGET,
        draft: str | None = DEFAULT_DRAFT,
        config: EngineConfig | None = None,
        max_new_tokens: int = MAX_PLAN_TOKENS,
    ) -> "Planner":
        """Load the target (an HF directory, a ``.gguf`` file or ``"smollm2"``) and, unless ``ar``, the draft."""
        config = config or EngineConfig(mode="ssd")
        tokenizer = load_tokenizer(target)
        target_lm = ModelSpec(path=target).load()
        draft_spec = None
        if config.mode != "ar":
            if draft is None or not os.path.exists(draft):
                raise ValueError(
                    f"mode {config.mode!r} needs a draft model, and {draft!r} does not exist: "
                    "train it with `forethought train draft` or pass --mode ar"
                )
            check_same_vocab(tokenizer, load_tokenizer(draft), target_lm.vocab_size, target_lm.vocab_size)
            draft_spec = ModelSpec(path=draft)
        return cls(tokenizer, Engine(target_lm, config, draft=draft_spec, target_tokenizer=tokenizer), max_new_tokens)

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> "Planner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def constraint(self, present: tuple[str, ...]) -> GrammarConstraint:
        """The grammar of plans valid in a scene with blocks ``present`` (built once per scene)."""
        if present not in self._constraints:
            self._constraints[present] = GrammarConstraint(plan_dfa(present), self.tokens, self.eos_ids, self.engine.target.vocab_size)
        return self._constraints[present]

    def plan(self, command: str | bytes, scene: str = "pushblocks-3", seed: int | None = None) -> PlanResult:
        """Plan ``command`` in ``scene``; unusable commands get a refusal, never an exception."""
        present = scene_blocks(scene)
        text = clean_command(command)
        if not text or len(text) > MAX_COMMAND_CHARS:
            why = "empty" if not text else f"longer than {MAX_COMMAND_CHARS} characters"
            return PlanResult(refusal("unclear command"), stats={"note": f"command {why}: refused without decoding"})
        constraint = self.constraint(present)
        ids = prompt_ids(self.tokenizer, text, present)
        out = self.engine.generate(ids, self.max_new_tokens, eos_ids=self.eos_ids, constraint=constraint, seed=seed)
        body = [t for t in out.tokens if t not in self.eos_ids]
        raw = self.tokenizer.decode(body)
        stats = out.stats.summary()
        try:
            plan = validate_plan(json.loads(raw), present)
        except ValueError as e:  # json.JSONDecodeError is a ValueError: only a cut-off plan gets here
            warnings.warn(f"plan did not complete within {self.max_new_tokens} tokens: {e}", RuntimeWarning, stacklevel=2)
            plan = refusal("unclear command")
        return PlanResult(plan, raw, stats)
