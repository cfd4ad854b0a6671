"""Decoding options shared by the ``plan`` and ``generate`` verbs, parsed into ``EngineConfig``."""

from __future__ import annotations

import argparse

from .engine import MODES, EngineConfig


def add_engine_arguments(parser: argparse.ArgumentParser, default_mode: str = "ssd") -> None:
    g = parser.add_argument_group("decoding")
    g.add_argument("--mode", choices=MODES, default=default_mode, help=f"decoding mode (default {default_mode})")
    g.add_argument("--k", type=int, default=4, help="draft tokens per round (sd, ssd)")
    g.add_argument("--temperature", type=float, default=0.0, help="target temperature; 0 = greedy")
    g.add_argument("--draft-temperature", type=float, default=None, help="draft temperature (default: --temperature)")
    g.add_argument("--fanout", default="geometric", help="ssd fan-out: geometric, uniform, zero or K+1 comma-separated counts")
    g.add_argument("--branch-budget", type=int, default=12, help="ssd branches pre-drafted per round")
    g.add_argument("--accept-rate", type=float, default=0.7, help="per-token acceptance a assumed by the geometric fan-out")
    g.add_argument("--saguaro-c", type=float, default=1.0, help="Saguaro scale C in [0, 1] on the draft's top tokens (sampling)")
    g.add_argument("--backup", choices=("jit", "fast"), default="jit", help="ssd cache-miss backup")
    g.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the draft process before finishing without it")
    g.add_argument("--seed", type=int, default=0)


def engine_config(args: argparse.Namespace) -> EngineConfig:
    """``EngineConfig`` from parsed arguments (``ValueError`` on invalid values)."""
    fan = args.fanout
    if "," in fan or fan.isdigit():
        fan = [int(x) for x in fan.split(",")]
    return EngineConfig(
        mode=args.mode,
        k=args.k,
        temperature=args.temperature,
        draft_temperature=args.draft_temperature,
        fanout=fan,
        branch_budget=args.branch_budget,
        accept_rate=args.accept_rate,
        saguaro_c=args.saguaro_c,
        backup=args.backup,
        timeout_s=args.timeout,
        seed=args.seed,
    )
