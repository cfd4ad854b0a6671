"""Flags the planner's verbs share: decoding (``plan``, ``generate``), training (``train draft``, ``train planner-lora``)."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from ..decoding.engine import MODES, EngineConfig
from ..decoding.language_model import DTYPES

ENGINE_FIELDS = ("mode", "lookahead", "temperature", "draft_temperature", "branch_budget", "accept_rate", "adapt_accept_rate",
                 "saguaro_c", "backup", "timeout_s", "lookup", "seed")
"""``EngineConfig`` fields read straight from the parsed decoding flags (``fanout`` is parsed apart)."""


def add_engine_arguments(parser: argparse.ArgumentParser, default_mode: str = "ssd", modes: tuple[str, ...] = MODES) -> None:
    """Decoding flags; ``modes`` are the ``--mode`` choices (``auto``, a start-up calibration, needs the planner)."""
    g = parser.add_argument_group("decoding")
    g.add_argument("--mode", choices=modes, default=default_mode, help=f"decoding mode (default {default_mode}; auto: the fastest here)")
    g.add_argument("--k", dest="lookahead", metavar="K", type=int, default=4, help="draft tokens per round (sd, ssd)")
    g.add_argument("--temperature", type=float, default=0.0, help="target temperature; 0 = greedy")
    g.add_argument("--draft-temperature", type=float, default=None, help="draft temperature (default: --temperature)")
    g.add_argument("--fanout", default="geometric", help="ssd fan-out: geometric, uniform, zero or K+1 comma-separated counts")
    g.add_argument("--branch-budget", type=int, default=12, help="ssd branches pre-drafted per round")
    g.add_argument("--accept-rate", type=float, default=0.7,
                   help="per-token acceptance a of the geometric fan-out: its start, then estimated from the verified rounds")
    g.add_argument("--fixed-accept-rate", dest="adapt_accept_rate", action="store_false",
                   help="keep --accept-rate fixed instead of estimating it from the verified rounds")
    g.add_argument("--saguaro-c", type=float, default=1.0, help="Saguaro scale C in [0, 1] on the draft's top tokens (sampling)")
    g.add_argument("--backup", choices=("jit", "fast"), default="jit", help="ssd cache-miss backup")
    g.add_argument("--timeout", dest="timeout_s", metavar="TIMEOUT", type=float, default=60.0,
                   help="seconds to wait for the draft process before finishing without it")
    g.add_argument("--no-lookup", dest="lookup", action="store_false",
                   help="do not propose the reference plan the command's words spell out (decoding/lookup.py)")
    g.add_argument("--seed", type=int, default=0)


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--dtype`` of the target and the draft (``language_model.resolve_device``)."""
    g = parser.add_argument_group("device")
    g.add_argument("--device", default="cpu", help="torch device of the target and the draft: cpu, cuda or cuda:N (default cpu)")
    g.add_argument("--dtype", choices=DTYPES, default=None, help="model precision (default: bfloat16 on cuda, float32 on cpu)")


def engine_config(args: argparse.Namespace) -> EngineConfig:
    """``EngineConfig`` from parsed arguments (``ValueError`` on invalid values)."""
    fan = args.fanout
    if "," in fan or fan.isdigit():
        fan = [int(x) for x in fan.split(",")]
    return EngineConfig(fanout=fan, **{name: getattr(args, name) for name in ENGINE_FIELDS})


def add_training_arguments(parser: argparse.ArgumentParser, epochs: int, lr: float, batch_size: int, seed: int) -> None:
    """The optimisation flags of both training jobs, with the job's defaults."""
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=seed)


def run_job(job: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> int:
    """Run ``job(args)``; a user error (``ValueError``, ``OSError``) prints one line and returns 2."""
    try:
        job(args)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
