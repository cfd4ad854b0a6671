"""The planner's training loop pieces, shared by both jobs: grammar-masked loss, learning rate, progress, settings."""

from __future__ import annotations

import argparse
import time

import torch

from forethought.runtime import pretrained_dir


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
