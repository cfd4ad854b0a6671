"""One trainer for the learned models (proposer, dynamics ensemble, world model; the planner's LLMs
train in ``llm_planner``).

A model plugs in by being an ``nn.Module`` with two methods::

    compute_loss(batch: dict[str, Tensor], generator: torch.Generator) -> Tensor   # scalar
    save_pretrained(directory) -> None

and the caller supplies ``sample_batch(rng: np.random.Generator) -> dict[str, Tensor]``. Each
model's ``train_<model>.py`` builds these from a data set and exposes a ``ModelTrainer``, which
``forethought train MODEL`` (``cli_train``) runs. The
trainer owns the rest: AdamW, a warm-up + cosine learning-rate schedule (diffusers
``get_scheduler``), an EMA of the weights (diffusers ``EMAModel``, Diffusion Policy's power-0.75
warm-up), gradient clipping, a tqdm progress bar, atomic checkpoints and exact resume, a loss
curve PNG and the resolved configuration written beside the outputs.

Randomness is derived from ``(seed, step)`` at every step, so a resumed run draws the same
batches, noise and dropout as an uninterrupted one.

Output directory::

    OUT/train_config.json      the resolved configuration (written first; checked on --resume)
    OUT/<model files>          save_pretrained of the EMA weights, refreshed at every checkpoint
    OUT/loss.png               training loss per step (and a running mean)
    OUT/train_summary.json     steps, losses, wall time (written at the end)
    OUT/checkpoints/last.pt    model, EMA, optimiser, schedule, losses (removed at the end
                               unless keep_checkpoints)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

import numpy as np
import torch
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch import Tensor, nn
from tqdm import tqdm

from forethought.files import atomic_path
from forethought.models.configuration import PresetRegistry

CHECKPOINT = Path("checkpoints") / "last.pt"
RUN_CONFIG_FILE = "train_config.json"
SUMMARY_FILE = "train_summary.json"
LOSS_PLOT_FILE = "loss.png"
LR_SCHEDULERS: tuple[str, ...] = ("cosine", "linear", "constant_with_warmup")
RESUME_MAY_CHANGE: tuple[str, ...] = ("steps", "device", "checkpoint_every", "log_every")
"""Training fields a resumed run may change; any other difference is refused."""


@dataclass
class TrainConfig:
    """Optimisation settings shared by every model.

    Attributes:
        steps: optimiser steps in all (a resumed run continues up to this number).
        batch_size: samples per step (passed to ``sample_batch`` by the caller's closure).
        lr, weight_decay, betas: AdamW.
        lr_scheduler: ``cosine`` (default), ``linear`` or ``constant_with_warmup``.
        warmup_steps: linear warm-up from 0 to ``lr``.
        grad_clip_norm: clip the global gradient norm to this (0 disables).
        ema: keep an EMA of the weights and save it (not the raw weights).
        ema_power, ema_max_decay: EMA decay ``min(1 - (1 + step) ** -power, max_decay)``.
        checkpoint_every: steps between checkpoints (and loss plots).
        log_every: steps between progress-bar loss updates.
        seed: seeds model initialisation (via ``seed_everything``) and every step's randomness.
        device: ``cpu`` or ``cuda[:i]``.
    """

    steps: int = 5000
    batch_size: int = 128
    lr: float = 1e-4
    weight_decay: float = 1e-6
    betas: tuple[float, float] = (0.95, 0.999)
    lr_scheduler: str = "cosine"
    warmup_steps: int = 500
    grad_clip_norm: float = 1.0
    ema: bool = True
    ema_power: float = 0.75
    ema_max_decay: float = 0.9999
    checkpoint_every: int = 1000
    log_every: int = 100
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"train {name} must be a positive integer, got {v!r}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"train warmup_steps must be a non-negative integer, got {self.warmup_steps!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"train lr must be a positive number, got {self.lr!r}")
        if self.weight_decay < 0 or self.grad_clip_norm < 0:
            raise ValueError("train weight_decay and grad_clip_norm must be >= 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"train betas must be two numbers in [0, 1), got {self.betas}")
        if self.lr_scheduler not in LR_SCHEDULERS:
            raise ValueError(f"train lr_scheduler {self.lr_scheduler!r} is not one of {list(LR_SCHEDULERS)}")
        if not 0 < self.ema_max_decay < 1 or self.ema_power <= 0:
            raise ValueError("train ema_max_decay must lie in (0, 1) and ema_power be positive")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"train device must be 'cpu' or 'cuda[:i]', got {self.device!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown train config keys {unknown}; valid keys are {sorted(known)}")
        return cls(**data)


class TrainableModel(Protocol):
    """What the trainer needs from a model (besides being an ``nn.Module``)."""

    def compute_loss(self, batch: Mapping[str, Tensor], generator: torch.Generator | None = None) -> Tensor: ...

    def save_pretrained(self, directory: str | os.PathLike[str]) -> None: ...


@dataclass
class TrainResult:
    """What a finished run reports (also written to ``train_summary.json``)."""

    steps: int
    first_loss: float
    final_loss: float
    wall_s: float
    seconds_per_step: float
    num_parameters: int


@dataclass(frozen=True)
class ModelTrainer:
    """How ``forethought train MODEL`` trains one model on a collected data set (``cli_train``).

    Attributes:
        train: runs the command from its parsed arguments and returns the trainer's result.
        presets: the model's named configs (``--config``).
        add_arguments: adds the model's own options to the shared ones.
        sources: the episode sources trained on by default (``--sources``).
    """

    train: Callable[[argparse.Namespace], TrainResult]
    presets: PresetRegistry
    add_arguments: Callable[[argparse.ArgumentParser], None]
    sources: tuple[str, ...] = ("expert",)


def given_options(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """``{name: value}`` of the command-line options in ``names`` the user set (not ``None``): a preset's overrides."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def seed_everything(seed: int) -> None:
    """Seed torch's global RNG (model initialisation) and numpy's legacy global RNG."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The numpy generator of one training step: a pure function of ``(seed, step)``."""
    return np.random.default_rng([seed, step])


def save_loss_plot(losses: list[float], path: str | os.PathLike[str], title: str = "") -> None:
    """Write a PNG of ``losses`` (one per step, log scale) with a running mean."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("the loss plot needs matplotlib: pip install matplotlib==3.11.2") from e
    y = np.asarray(losses, dtype=np.float64)
    x = np.arange(1, len(y) + 1)
    w = max(1, len(y) // 50)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(x, y, lw=0.5, alpha=0.35, label="loss per step")
    if len(y) >= w:
        ax.plot(x[w - 1 :], np.convolve(y, np.ones(w) / w, mode="valid"), lw=1.5, label=f"running mean ({w})")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


DATA_METADATA_KEYS = ("env_id", "env_kwargs", "num_episodes", "num_steps", "seed", "noise", "play_fraction", "disturb",
                      "command")
"""What a run records of its data set's metadata (``forethought collect`` writes them)."""


def data_metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The ``DATA_METADATA_KEYS`` entries of a data set's metadata (``None`` where absent)."""
    return {k: meta.get(k) for k in DATA_METADATA_KEYS}


def run_command(words: Sequence[str], options: Iterable[tuple[str, Any]]) -> str:
    """The shell command that reproduces a training run: ``words``, then each ``(flag, value)`` that is not ``None``."""
    command = [*words]
    for flag, value in options:
        if value is not None:
            command += [flag, str(value)]
    return shlex.join(command)


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _comparable(run_config: Mapping[str, Any]) -> dict[str, Any]:
    data = json.loads(json.dumps(run_config))
    for key in RESUME_MAY_CHANGE:
        data.get("train", {}).pop(key, None)
    return data


def train(
    model: nn.Module,
    sample_batch: Callable[[np.random.Generator], Mapping[str, Tensor]],
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    run_config: Mapping[str, Any],
    resume: bool = False,
    keep_checkpoints: bool = False,
) -> TrainResult:
    """Train ``model`` (see the module docstring) and save its EMA weights into ``out_dir``.

    Args:
        model: an ``nn.Module`` with ``compute_loss`` and ``save_pretrained`` (``TrainableModel``).
        sample_batch: draws one batch of tensors (CPU) from the step's numpy generator.
        config: optimisation settings; ``config.seed`` fixes every step's randomness.
        out_dir: where outputs go (see the module docstring).
        run_config: the resolved configuration of the whole run (JSON-able: model config, data,
            preset, ...); ``asdict(config)`` is stored under ``"train"``.
        resume: continue the unfinished run in ``out_dir`` from its checkpoint.
        keep_checkpoints: keep ``checkpoints/last.pt`` after the run finishes.
    """
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT
    resolved = {**dict(run_config), "train": asdict(config)}
    if resume:
        if not ckpt_path.is_file():
            raise ValueError(f"--resume: nothing to resume in {out}: no {CHECKPOINT} there")
        saved = json.loads((out / RUN_CONFIG_FILE).read_text())
        if _comparable(saved) != _comparable(resolved):
            raise ValueError(
                f"--resume: the configuration differs from the one {out} was started with "
                f"({out / RUN_CONFIG_FILE}); only {list(RESUME_MAY_CHANGE)} may change. Use a new --out instead"
            )
    elif ckpt_path.exists():
        raise ValueError(f"{out} holds an unfinished run ({ckpt_path}): pass --resume to continue it, or pick another --out")
    elif (out / SUMMARY_FILE).exists():
        raise ValueError(f"{out} already holds a trained model ({out / SUMMARY_FILE}): pick another --out or delete it")
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / RUN_CONFIG_FILE, resolved)

    device = torch.device(config.device)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    lr_scheduler = get_scheduler(
        config.lr_scheduler, optimizer, num_warmup_steps=config.warmup_steps, num_training_steps=config.steps
    )
    ema = (
        EMAModel(params, decay=config.ema_max_decay, use_ema_warmup=True, power=config.ema_power)
        if config.ema
        else None
    )
    losses: list[float] = []
    start = 0
    if resume:
        try:
            state = torch.load(ckpt_path, map_location=device, weights_only=True)
        except Exception as e:  # torch raises several types for a damaged zip
            raise ValueError(f"corrupt training checkpoint {ckpt_path}: {type(e).__name__}: {e}") from e
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        lr_scheduler.load_state_dict(state["lr_scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        losses = state["losses"].tolist()
        start = int(state["step"])
        if start > config.steps:
            raise ValueError(f"--resume: the checkpoint is at step {start}, past the requested {config.steps} steps")

    def save_model() -> None:
        if ema is not None:
            ema.store(params)
            ema.copy_to(params)
        model.save_pretrained(out)
        if ema is not None:
            ema.restore(params)

    def checkpoint(step: int) -> None:
        save_model()
        with atomic_path(ckpt_path) as tmp:
            torch.save({
                "step": step,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "lr_scheduler": lr_scheduler.state_dict(),
                "ema": ema.state_dict() if ema is not None else {},
                "losses": torch.tensor(losses, dtype=torch.float64),
            }, tmp)
        save_loss_plot(losses, out / LOSS_PLOT_FILE, f"{out.name}: step {step}")

    interactive = sys.stderr.isatty()
    bar = tqdm(total=config.steps, initial=start, desc=f"train {out.name}", dynamic_ncols=True,
               mininterval=0.5 if interactive else 30.0)
    t0 = time.perf_counter()
    for step in range(start, config.steps):
        rng = step_rng(config.seed, step)
        generator = torch.Generator(device).manual_seed(int(rng.integers(2**62)))
        batch = {k: v.to(device, non_blocking=True) for k, v in sample_batch(rng).items()}
        loss = model.compute_loss(batch, generator)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training loss is {loss.item()} at step {step + 1}; the last good checkpoint is {ckpt_path}. "
                "Lower the learning rate (train lr) or check the data for outliers"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip_norm)
        optimizer.step()
        lr_scheduler.step()
        if ema is not None:
            ema.step(params)
        losses.append(float(loss.detach()))
        bar.update(1)
        if (step + 1) % config.log_every == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-config.log_every:]):.4f}", lr=f"{lr_scheduler.get_last_lr()[0]:.2e}")
        if (step + 1) % config.checkpoint_every == 0 and step + 1 < config.steps:
            checkpoint(step + 1)
    bar.close()
    wall = time.perf_counter() - t0

    save_model()
    save_loss_plot(losses, out / LOSS_PLOT_FILE, f"{out.name}: {len(losses)} steps")
    window = max(1, min(100, len(losses) // 10))
    result = TrainResult(
        steps=len(losses),
        first_loss=float(np.mean(losses[:window])),
        final_loss=float(np.mean(losses[-window:])),
        wall_s=wall,
        seconds_per_step=wall / max(1, config.steps - start),
        num_parameters=sum(p.numel() for p in params),
    )
    _write_json(out / SUMMARY_FILE, asdict(result))
    if keep_checkpoints:
        checkpoint(config.steps)
    else:
        shutil.rmtree(out / CHECKPOINT.parent, ignore_errors=True)
    return result
