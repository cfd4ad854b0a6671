"""Measure the planner on the labelled command set: schema validity, exact plans, refusals, per split.

Examples::

    forethought plan-eval                      # both splits, batched greedy, shipped adapter
    forethought plan-eval --split heldout --mode sd --json
    forethought plan-eval --no-adapter --limit 40

``--mode batched`` decodes many commands at once with the target alone (fast; equal to the
engine's greedy output up to floating-point near-ties); ``ar``/``sd``/``ssd`` run ``Planner.plan``
one command at a time.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..decoding.engine import MODES, EngineConfig
from ..planning import commands


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..planning.planner import DEFAULT_ADAPTER, DEFAULT_DRAFT, DEFAULT_TARGET

    parser.add_argument("--split", choices=("heldout", "train", "all"), default="all")
    parser.add_argument("--mode", choices=("batched",) + MODES, default="batched")
    parser.add_argument("--target", default=DEFAULT_TARGET)
    parser.add_argument("--draft", default=DEFAULT_DRAFT)
    parser.add_argument("--adapter", default=DEFAULT_ADAPTER)
    parser.add_argument("--no-adapter", dest="adapter", action="store_const", const=None)
    parser.add_argument("--limit", type=int, default=None, help="first N rows of each split")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from ..planning.planner import Planner

    splits = ("heldout", "train") if args.split == "all" else (args.split,)
    try:
        mode = "ar" if args.mode == "batched" else args.mode
        report = {}
        with Planner.load(args.target, args.draft, EngineConfig(mode=mode), adapter=args.adapter) as planner:
            for split in splits:
                rows = commands.load(split)[: args.limit]
                if args.mode == "batched":
                    plans = [r.plan for r in planner.plan_batch([(r["command"], r["scene"]) for r in rows], args.batch_size)]
                else:
                    plans = [planner.plan(r["command"], r["scene"]).plan for r in rows]
                report[split] = commands.score(rows, plans)
                report[split]["failures"] = [
                    {"command": r["command"], "scene": r["scene"], "want": r["plan"], "got": p} for r, p in zip(rows, plans) if p != r["plan"]
                ]
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report))
        return 0
    for split, m in report.items():
        refusal = "n/a" if m["refusal_exact"] is None else f"{m['refusal_exact']:.1%}"
        print(f"{split}: n={m['n']} schema_valid={m['schema_valid']:.1%} exact={m['exact']:.1%} refusal_exact={refusal} "
              f"false_refusals={m['false_refusals']:.1%}")
        print("  by kind: " + ", ".join(f"{k} {v:.0%}" for k, v in m["exact_by_kind"].items()))
        for f in m["failures"][:15]:
            print(f"  FAIL [{f['scene']}] {f['command']!r}\n    want {json.dumps(f['want'])}\n    got  {json.dumps(f['got'])}")
    return 0
