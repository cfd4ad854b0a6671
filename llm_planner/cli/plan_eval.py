"""Measure the planner on a labelled command set: schema validity, exact plans, refusals, wrong executions.

With grounding on, ``decoded`` in the report scores the same run's plans as decoded, before grounding
(for a command decoded twice for coverage, the decode whose plan was kept).
Splits: ``train`` and ``heldout`` of the generated set (``planning.commands``), ``dev`` and ``test``
of the hand-written frozen set (``planning.frozen``; read ``test`` only to report), ``composed``: rows of
the compositional generator (``planning.compose``) for a seed no training used.

Examples::

    forethought plan-eval                      # train and heldout, batched greedy, shipped adapter
    forethought plan-eval --split dev --json --batch-size 16
    forethought plan-eval --split heldout --mode sd --json
    forethought plan-eval --split dev --no-grounding   # the decoded plans as they were before grounding
    forethought plan-eval --split dev --sweep          # + the refusal threshold's trade-off curve on plan log-probability
    forethought plan-eval --split composed --composed-seed 999 --no-coverage   # generated rows, no second decode

``--mode batched`` decodes many commands at once with the target alone (fast; equal to the
engine's greedy output up to floating-point near-ties); ``ar``/``sd``/``ssd``/``auto`` run ``Planner.plan``
one command at a time, the deployed path, and report its latency (``latency``: ``Planner.plan`` wall time, p50 and
p90 over every row and over the rows whose label is one step).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time

from ..decoding.engine import MODES, EngineConfig
from ..planning import commands, frozen
from ..planning.compose import compose
from .options import add_device_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..planning.planner import DEFAULT_ADAPTER, DEFAULT_DRAFT, DEFAULT_TARGET

    parser.add_argument("--split", choices=("heldout", "train", "all", "composed") + frozen.SPLITS, default="all",
                        help="all: train and heldout; dev/test: the frozen hand-written set; composed: --composed-rows generated rows")
    parser.add_argument("--composed-rows", type=int, default=300)
    parser.add_argument("--composed-seed", type=int, default=999, help="training used seeds 0-13")
    parser.add_argument("--no-coverage", dest="coverage", action="store_false",
                        help="keep a plan that does less than the command asks (no second decode; planning.coverage)")
    parser.add_argument("--mode", choices=("batched",) + MODES, default="batched")
    parser.add_argument("--no-lookup", dest="lookup", action="store_false",
                        help="engine modes: do not propose the reference plan (decoding/lookup.py)")
    parser.add_argument("--target", default=DEFAULT_TARGET)
    parser.add_argument("--draft", default=DEFAULT_DRAFT)
    parser.add_argument("--adapter", default=DEFAULT_ADAPTER)
    parser.add_argument("--no-adapter", dest="adapter", action="store_const", const=None)
    parser.add_argument("--limit", type=int, default=None, help="first N rows of each split")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-grounding", dest="grounding", action="store_false",
                        help="skip the grounding check after decoding (to measure what it changes)")
    parser.add_argument("--sweep", action="store_true",
                        help="score each plan's log-probability and report accuracy vs refusals for every threshold")
    parser.add_argument("--max-wrong", type=float, default=0.01,
                        help="with --sweep: the calibrated threshold is the lowest with at most this share of wrong executions")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_device_arguments(parser)


def decoded(text: str, plan: dict) -> dict:
    """The plan as decoded, before grounding: ``text`` parsed, or ``plan`` when nothing was decoded or it did not parse."""
    try:
        return json.loads(text) if text else plan
    except ValueError:
        return plan


def sweep(rows: list[dict], plans: list[dict], logprobs: list[float], max_wrong: float) -> dict:
    """Accuracy, false refusals and wrong executions when plans with steps below each threshold are refused.

    Thresholds: ``None`` (none refused) and each plan's log-probability nudged up (that plan and
    all below refused). ``calibrated``: the lowest threshold with wrong executions <= ``max_wrong`` of the rows.
    """
    from ..planning.planner import UNSURE
    from ..planning.schema import refusal

    curve = []
    for t in [-math.inf] + sorted({lp + 1e-6 for p, lp in zip(plans, logprobs) if p["steps"]}):
        kept = [refusal("unclear command", UNSURE) if p["steps"] and lp < t else p for p, lp in zip(plans, logprobs)]
        m = commands.score(rows, kept)
        curve.append({"threshold": None if t == -math.inf else t, "exact": m["exact"], "false_refusals": m["false_refusals"],
                      "wrong_executions": m["wrong_executions"], "refused": sum("refusal" in p for p in kept) / len(kept)})
    calibrated = next(c for c in curve if c["wrong_executions"] <= max_wrong * len(rows)) if curve else None
    return {"max_wrong": max_wrong, "calibrated": calibrated, "curve": curve}


def latency(rows: list[dict], seconds: list[float], mode: str) -> dict:
    """p50 and p90 of ``Planner.plan`` wall time (ms) over every row and over the rows whose label has one step."""
    def quantiles(xs: list[float]) -> tuple[float | None, float | None]:
        if not xs:
            return None, None
        ms = [1e3 * x for x in xs]
        return statistics.median(ms), statistics.quantiles(ms, n=10, method="inclusive")[-1] if len(ms) > 1 else ms[0]

    one = [t for r, t in zip(rows, seconds) if len(r["plan"]["steps"]) == 1]
    (p50, p90), (one_p50, one_p90) = quantiles(seconds), quantiles(one)
    return {"mode": mode, "n": len(seconds), "p50_ms": p50, "p90_ms": p90, "one_step_n": len(one), "one_step_p50_ms": one_p50,
            "one_step_p90_ms": one_p90}


def run(args: argparse.Namespace) -> int:
    from ..planning.planner import Planner

    splits = ("heldout", "train") if args.split == "all" else (args.split,)
    try:
        mode = "ar" if args.mode == "batched" else args.mode
        report = {}
        with Planner.load(args.target, args.draft, EngineConfig(mode=mode, lookup=args.lookup), adapter=args.adapter,
                          device=args.device, dtype=args.dtype) as planner:
            planner.grounding, planner.score_plans, planner.coverage = args.grounding, args.sweep, args.coverage
            for split in splits:
                rows = (frozen.load(split) if split in frozen.SPLITS else compose(args.composed_rows, args.composed_seed)
                        if split == "composed" else commands.load(split))[: args.limit]
                if args.mode == "batched":
                    results = planner.plan_batch([(r["command"], r["scene"]) for r in rows], args.batch_size)
                else:
                    results, seconds = [], []
                    for r in rows:
                        t0 = time.perf_counter()
                        results.append(planner.plan(r["command"], r["scene"]))
                        seconds.append(time.perf_counter() - t0)
                plans = [r.plan for r in results]
                report[split] = commands.score(rows, plans)
                if args.mode != "batched":
                    report[split]["latency"] = latency(rows, seconds, planner.engine.config.mode)
                if args.grounding:
                    report[split]["decoded"] = commands.score(rows, [decoded(r.text, r.plan) for r in results])
                if args.sweep:
                    report[split]["sweep"] = sweep(rows, plans, [r.stats.get("plan_logprob", 0.0) for r in results], args.max_wrong)
                report[split]["failures"] = [
                    {"command": r["command"], "scene": r["scene"], "kind": r["kind"], "want": r["plan"], "got": p,
                     "wrong_execution": commands.wrong_execution(r["plan"], p)}
                    for r, p in zip(rows, plans) if {k: v for k, v in p.items() if k != "detail"} != r["plan"]
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
              f"false_refusals={m['false_refusals']:.1%} wrong_executions={m['wrong_executions']}")
        print("  by kind: " + ", ".join(f"{k} {v:.0%}" for k, v in m["exact_by_kind"].items()))
        if "decoded" in m:
            d = m["decoded"]
            print(f"  as decoded, before grounding: exact={d['exact']:.1%} false_refusals={d['false_refusals']:.1%} "
                  f"wrong_executions={d['wrong_executions']}")
        if "latency" in m:
            t = m["latency"]
            one = "n/a" if t["one_step_p50_ms"] is None else f"{t['one_step_p50_ms']:.0f} / {t['one_step_p90_ms']:.0f} ms"
            print(f"  plan latency ({t['mode']}): p50 / p90 {t['p50_ms']:.0f} / {t['p90_ms']:.0f} ms; one-step rows {one}")
        if "sweep" in m:
            c = m["sweep"]["calibrated"]
            print(f"  threshold for <= {m['sweep']['max_wrong']:.0%} wrong executions: {c['threshold']} (exact {c['exact']:.1%}, "
                  f"false refusals {c['false_refusals']:.1%}, wrong {c['wrong_executions']}); {len(m['sweep']['curve'])} points in --json")
        for f in m["failures"][:15]:
            print(f"  {'WRONG' if f['wrong_execution'] else 'FAIL'} [{f['scene']}] {f['command']!r}\n    want {json.dumps(f['want'])}\n    got  {json.dumps(f['got'])}")
    return 0
