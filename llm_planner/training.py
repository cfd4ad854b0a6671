"""Shared pieces of the planner's training jobs (LoRA target, distilled draft): examples and batches.

An example is the chat prompt of a command (``prompts.prompt_ids``) followed by a plan's
canonical text and EOS; the loss covers the plan tokens and EOS only.
"""

from __future__ import annotations

import argparse
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from forethought.runtime import pretrained_dir

from . import commands
from .prompts import prompt_ids
from .schema import SCENES, plan_to_text
from .speculate_types import TokenConstraint


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


def training_rows(n_generated: int, seed: int) -> list[dict[str, Any]]:
    """The shipped train split plus ``n_generated`` rows of the augmented train phrasings (seeded).

    Never a held-out (command, scene), nor a generated command using a held-out word: a random
    typo can make one (a swap turns "center" into "centre").
    """
    held = {(r["command"], r["scene"]) for r in commands.load("heldout")}
    banned = held_out_words()
    rows, seen = [], set(held)
    extra = commands.generate({"augmented": n_generated}, seed=seed) if n_generated else []
    extra = [r for r in extra if banned.isdisjoint(re.findall(r"[a-z]+", r["command"].lower()))]
    for r in commands.load("train") + extra:
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


def masked_loss(hidden: torch.Tensor, labels: torch.Tensor, head: torch.nn.Module, allowed: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of ``head(hidden[B, L, D])`` against ``labels[B, L]``, computed only where labels exist.

    ``allowed[N, V]`` (one row per label, in row-major order) restricts each softmax to the tokens
    the grammar allows there, as decoding does: forced tokens then cost nothing and the loss is
    spent on the real choices.
    """
    keep = labels != -100
    logits = head(hidden[keep]).float()  # [N, V]
    if allowed is not None:
        logits = logits.masked_fill(~allowed[:, : logits.shape[-1]], float("-inf"))
    return torch.nn.functional.cross_entropy(logits, labels[keep])


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


def cosine_lr(step: int, total: int, peak: float, warmup: int = 10) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + torch.cos(torch.tensor(progress * torch.pi)).item())


class Progress:
    """One log line every ``every`` seconds: step, loss (running mean), tokens per second."""

    def __init__(self, total: int, every: float = 20.0) -> None:
        self.total, self.every = total, every
        self.t0 = self.last = time.perf_counter()
        self.losses: list[float] = []
        self.tokens = 0

    def update(self, step: int, loss: float, tokens: int) -> None:
        self.losses.append(loss)
        self.tokens += tokens
        now = time.perf_counter()
        if now - self.last >= self.every or step == self.total - 1:
            mean = sum(self.losses[-20:]) / len(self.losses[-20:])
            print(f"step {step + 1}/{self.total} loss {mean:.4f} {self.tokens / (now - self.t0):.0f} tok/s {now - self.t0:.0f} s", flush=True)
            self.last = now


def portable_settings(args: argparse.Namespace) -> dict[str, object]:
    """The training arguments, with paths inside the installed package written relative to the repository."""
    root = str(pretrained_dir())
    settings = {k: v for k, v in vars(args).items() if not k.startswith("_") and k not in ("command", "model")}
    return {k: "models/pretrained" + v[len(root):] if isinstance(v, str) and v.startswith(root) else v
            for k, v in settings.items()}
