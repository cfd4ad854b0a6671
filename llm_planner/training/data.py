"""The planner's training data (LoRA target, distilled draft): rows, examples, batches and grammar masks.

An example is the chat prompt of a command (``planning.prompts.prompt_ids``) followed by a plan's
canonical text and EOS; the loss (``loop.masked_loss``) covers the plan tokens and EOS only.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from ..decoding.speculate_types import TokenConstraint
from ..planning import commands
from ..planning.compose import ALLOWED_HELD_OUT, compose
from ..planning.prompts import prompt_ids
from ..planning.schema import SCENES, plan_to_text


@dataclass
class Example:
    """``ids[L]`` = prompt + plan + EOS; positions ``>= n_prompt`` are predicted."""

    ids: list[int]
    n_prompt: int


def held_out_words() -> set[str]:
    """Words of 4+ letters found in held-out commands and in no train command of the shipped set."""
    def words(split: str) -> set[str]:
        return {w for r in commands.load(split) for w in re.findall(r"[a-z]+", r["command"].lower()) if len(w) >= 4}

    return words("heldout") - words("train")


def training_rows(n_generated: int, seed: int, n_composed: int = 0) -> list[dict[str, Any]]:
    """The shipped train split plus ``n_generated`` rows of the augmented train phrasings and ``n_composed``
    rows of the compositional generator (``planning.compose``), both seeded.

    Never a held-out (command, scene), nor a generated command using a held-out word: a random
    typo can make one (a swap turns "center" into "centre"). Composed commands may use the held-out
    split's function words ``compose.ALLOWED_HELD_OUT`` ("that", "after", "over").
    """
    held = {(r["command"], r["scene"]) for r in commands.load("heldout")}
    banned = held_out_words()
    rows, seen = [], set(held)
    extra = commands.generate({"augmented": n_generated}, seed=seed) if n_generated else []
    extra = [r for r in extra if banned.isdisjoint(re.findall(r"[a-z]+", r["command"].lower()))]
    composed = compose(n_composed, seed=seed) if n_composed else []
    composed = [r for r in composed if banned.difference(ALLOWED_HELD_OUT).isdisjoint(re.findall(r"[a-z]+", r["command"].lower()))]
    for r in commands.load("train") + extra + composed:
        key = (r["command"], r["scene"])
        if key not in seen:
            seen.add(key)
            rows.append(r)
    return rows


def encode(tokenizer: Any, command: str, scene: str, plan: dict | list[int], style: str) -> Example:
    """The example for ``command`` in ``scene`` with ``plan`` (a plan dict, or plan token ids without EOS)."""
    prompt = prompt_ids(tokenizer, command, SCENES[scene], style)
    body = plan if isinstance(plan, list) else list(tokenizer(plan_to_text(plan))["input_ids"])
    return Example(prompt + body + [int(tokenizer.eos_token_id)], len(prompt))


def pad_batch(examples: list[Example], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``ids[B, L]``, ``attention[B, L]`` and next-token ``labels[B, L]`` (-100 where no loss)."""
    width = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for b, e in enumerate(examples):
        n = len(e.ids)
        ids[b, :n] = torch.tensor(e.ids)
        attention[b, :n] = 1
        labels[b, e.n_prompt - 1 : n - 1] = torch.tensor(e.ids[e.n_prompt :])  # position t predicts token t + 1
    return ids, attention, labels


def length_batches(lengths: list[int], batch_size: int, rng: random.Random) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length (little padding), batches in random order."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(chunks)
    yield from chunks


def grammar_masks(example: Example, constraint: TokenConstraint) -> list[torch.Tensor]:
    """The grammar's allowed-token mask ``bool[V]`` at every predicted position of ``example`` (plan tokens, then EOS)."""
    state, out = constraint.initial(), []
    for t in example.ids[example.n_prompt :]:
        mask = constraint.mask(state)
        if mask is None or not mask[t]:
            raise ValueError(f"example token {t} is outside the plan grammar")
        out.append(mask)
        state = constraint.advance(state, t)
    return out
