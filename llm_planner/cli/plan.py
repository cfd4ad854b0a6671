"""``forethought plan``: turn task commands into schema-valid plans with the LLM planner.

Examples::

    forethought plan "push the red block to the left" --scene pushblocks-3
    forethought plan "go to the center" --mode ar --json
    forethought plan --file commands.txt --scene pushblocks-2   # one JSON object per line
    forethought plan "go left" --no-adapter --mode ar            # the base model, few-shot prompt
"""

from __future__ import annotations

import argparse
import json
import sys

from ..planning.schema import SCENES
from .options import add_device_arguments, add_engine_arguments, engine_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..planning.planner import DEFAULT_ADAPTER, DEFAULT_DRAFT, DEFAULT_TARGET

    parser.add_argument("command", nargs="?", help="the task command (or use --file)")
    parser.add_argument("--file", help="plan every line of this file (UTF-8; undecodable bytes are replaced)")
    parser.add_argument("--scene", default="pushblocks-3", choices=list(SCENES), help="which blocks exist")
    parser.add_argument("--json", action="store_true", help='print {"plan": ..., "stats": ...} as one JSON line')
    parser.add_argument("--target", default=DEFAULT_TARGET, help="target model: HF directory, .gguf file or 'smollm2'")
    parser.add_argument("--draft", default=DEFAULT_DRAFT, help="draft model directory (sd, ssd)")
    parser.add_argument("--adapter", default=DEFAULT_ADAPTER, help="LoRA adapter directory merged into the target (default: the shipped one, with the default target)")
    parser.add_argument("--no-adapter", dest="adapter", action="store_const", const=None, help="plan with the base target and the few-shot prompt")
    add_engine_arguments(parser)
    add_device_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..planning.planner import Planner

    if (args.command is None) == (args.file is None):
        print("error: give either a command or --file", file=sys.stderr)
        return 2
    try:
        config = engine_config(args)
        if args.file:
            with open(args.file, "rb") as f:
                commands = f.read().splitlines()
        else:
            commands = [args.command]
        with Planner.load(args.target, args.draft, config, adapter=args.adapter, device=args.device, dtype=args.dtype) as planner:
            if planner.calibration is not None:
                times = ", ".join(f"{m} {1e3 * t:.0f} ms" for m, t in planner.calibration["seconds"].items())
                print(f"auto: decoding in {planner.calibration['chosen']} mode (calibration: {times})", file=sys.stderr, flush=True)
            for command in commands:
                result = planner.plan(command, args.scene)
                if args.json or args.file:
                    print(json.dumps({"plan": result.plan, "stats": result.stats}), flush=True)
                else:
                    print(json.dumps(result.plan, indent=2))
                    print(_stats_line(result.stats), flush=True)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _stats_line(stats: dict) -> str:
    keys = ("mode", "new_tokens", "tok_per_s", "tpot_ms", "acceptance_length", "hit_rate", "target_forwards_per_token", "draft_slack_ms")
    parts = [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k in keys if (v := stats.get(k)) is not None]
    return "stats: " + " ".join(parts) + "".join(f"\nwarning: {w}" for w in stats.get("warnings", []))
