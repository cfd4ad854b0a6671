"""Shared pieces of the planner's training jobs (LoRA target, distilled draft): examples and batches.

An example is the chat prompt of a command (``prompts.prompt_ids``) followed by a plan's
canonical text and EOS; the loss covers the plan tokens and EOS only.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from . import commands
from .prompts import prompt_ids
from .schema import SCENES, plan_to_text


@dataclass
class Example:
    """``ids[L]`` = prompt + plan + EOS; positions ``>= n_prompt`` are predicted."""

    ids: list[int]
    n_prompt: int


def training_rows(n_generated: int, seed: int) -> list[dict[str, Any]]:
    """The shipped train split plus ``n_generated`` more train-phrasing rows (seeded), never a held-out (command, scene)."""
    held = {(r["command"], r["scene"]) for r in commands.load("heldout")}
    rows, seen = [], set(held)
    extra = commands.generate({"train": n_generated}, seed=seed) if n_generated else []
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


def masked_loss(hidden: torch.Tensor, labels: torch.Tensor, head: torch.nn.Module) -> torch.Tensor:
    """Cross-entropy of ``head(hidden[B, L, D])`` against ``labels[B, L]``, computed only where labels exist."""
    keep = labels != -100
    logits = head(hidden[keep])  # [N, V]
    return torch.nn.functional.cross_entropy(logits.float(), labels[keep])


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
