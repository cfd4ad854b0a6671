"""``forethought adapt``: fine-tune the dynamics ensemble on a little data from a changed world.

Only the dynamics model learns; the proposer and the objective stay frozen (D-MPC's test-time
adaptation). Every member is fine-tuned, each on its own bootstrap resample, through the shared
trainer (with a fresh optimiser, schedule and EMA), and the new model directory appears at
``--out`` only once it is complete.

Examples::

    forethought collect --env forethought/PushBlocksShifted-v0 --episodes 20 --noise 0.1 \\
        --play-fraction 0.5 --seed 500 --out data/dyn/shifted-adapt.parquet
    forethought adapt --model models/pretrained/dynamics-pushblocks --data data/dyn/shifted-adapt.parquet \\
        --out runs/dynamics-shifted --steps 200 --lr 3e-5 --seed 0

``OUT/diagnostics.json`` holds the k-step error on ``--data`` before and after; measure on
held-out episodes with ``python bench/dynamics.py --shift``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch

from forethought.models.training import TrainConfig
from forethought.sim.dataset import SOURCES

DEFAULT_STEPS = 200
DEFAULT_LR = 3e-5
DEFAULT_BATCH_SIZE = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``forethought adapt``."""
    parser.add_argument("--model", type=Path, required=True, help="dynamics model directory to start from")
    parser.add_argument("--data", type=Path, required=True,
                        help="a small data set (.parquet, e.g. <= 20 episodes) from the changed env")
    parser.add_argument("--out", type=Path, required=True, help="new model directory (must not exist)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"optimiser steps (default {DEFAULT_STEPS})")
    parser.add_argument("--lr", type=float, default=DEFAULT_LR, help=f"peak learning rate (default {DEFAULT_LR})")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"windows per member per step (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--seed", type=int, default=0, help="seeds the bootstrap and every step's batch")
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES,
                        help="episode sources to fine-tune on (default: all)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")


def run(args: argparse.Namespace) -> int:
    """Run ``forethought adapt``; user errors print one line and return 2."""
    from forethought.models.dynamics.train_dynamics import adapt, summary_line

    torch.set_num_threads(args.threads)
    command = ["forethought", "adapt", "--model", str(args.model), "--data", str(args.data), "--out", str(args.out),
               "--steps", str(args.steps), "--lr", str(args.lr), "--batch-size", str(args.batch_size),
               "--seed", str(args.seed), "--sources", *args.sources, "--device", args.device]
    try:
        config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, weight_decay=1e-2,
                             warmup_steps=min(50, args.steps // 10), ema_max_decay=0.99, seed=args.seed,
                             device=args.device, checkpoint_every=max(args.steps, 1), log_every=max(1, args.steps // 10))
        result, errors = adapt(args.model, args.data, args.out, config, args.sources, shlex.join(command))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"adapted {result.steps} steps in {result.wall_s:.0f} s; loss {result.first_loss:.4f} -> "
          f"{result.final_loss:.4f}; saved to {args.out}")
    print(f"RMSE on {args.data} before, model (copy-last): {summary_line(errors['before'])}")
    print(f"RMSE on {args.data} after,  model (copy-last): {summary_line(errors['after'])}")
    return 0
