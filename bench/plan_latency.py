"""Plan latency: the decoding path when issue #15 was filed against prefix KV reuse and the reference plan's lookup.

The shipped pair (SmolLM2-135M-Instruct + the shipped LoRA, the shipped draft), greedy under the
plan grammar. Configurations, all loaded side by side over one target and timed in the same run:

- ``issue-start``: ssd (planner_node's default then), prompt-prefix KV reuse off, no lookup;
- ``reuse``: ar, sd and ssd with the prompt prefix's KV reused (``decoding/prefix_cache.py``);
- ``reuse+lookup``: the same with the reference plan proposed by lookup (``decoding/lookup.py``,
  ``planning/reference.py``), the default now.

Each command is planned by every configuration in turn, the order rotating from command to command,
so that all see the same machine load. Latency is ``Planner.plan`` wall time, end to end (prompt,
decoding, grounding, a covering second decode when due). The first pass warms up and fills the prefix
caches; ``--runs`` further passes are timed. Every configuration must emit the tokens of ``issue-start``.
The engine now runs the prompt past the cached prefix in the first round's forward (the engine of the
issue's start ran it in a prefill forward of its own), so ``issue-start`` here is, if anything, faster than
the code of that day.

Commands: ``--kind`` one-step, multi-step or refusal rows of ``--source`` (``composed``: the composed
generator at ``--composed-seed``, a seed no choice was made on; ``heldout``: the generated held-out split).
Threads: ``--threads`` torch threads for ar and sd, 1 in the target and 1 in the draft process for ssd.

    .venv/bin/python bench/plan_latency.py [--prompts 10] [--runs 3] [--kind one-step] [--source composed] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from typing import Any

import torch

from forethought.llm_planner.decoding.engine import Engine, EngineConfig
from forethought.llm_planner.decoding.language_model import ModelSpec, load_tokenizer
from forethought.llm_planner.planning import commands
from forethought.llm_planner.planning.compose import compose
from forethought.llm_planner.planning.planner import DEFAULT_ADAPTER, DEFAULT_DRAFT, DEFAULT_TARGET, Planner
from forethought.llm_planner.training.lora import load_config
from forethought.runtime import apply_defaults

KINDS = {"one-step": lambda plan: len(plan["steps"]) == 1, "multi-step": lambda plan: len(plan["steps"]) > 1,
         "refusal": lambda plan: not plan["steps"]}
CONFIGS: list[tuple[str, str, bool, bool]] = [  # (name, mode, prefix reuse, lookup)
    ("issue-start", "ssd", False, False),
    ("reuse", "ar", True, False), ("reuse", "sd", True, False), ("reuse", "ssd", True, False),
    ("reuse+lookup", "ar", True, True), ("reuse+lookup", "sd", True, True), ("reuse+lookup", "ssd", True, True),
]


def select(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The first ``--prompts`` ``(command, scene)`` rows of ``--kind`` from ``--source``."""
    rows = compose(3000, args.composed_seed) if args.source == "composed" else commands.load("heldout")
    rows = [r for r in rows if KINDS[args.kind](r["plan"])]
    if len(rows) < args.prompts:
        raise ValueError(f"--prompts {args.prompts}: only {len(rows)} {args.kind} rows in {args.source}")
    return [(r["command"], r["scene"]) for r in rows[: args.prompts]]


def percentile(xs: list[float], q: float) -> float:
    """The ``q``-quantile of ``xs`` (linear interpolation)."""
    return float(torch.quantile(torch.tensor(xs, dtype=torch.float64), q))


def bench(args: argparse.Namespace) -> dict[str, Any]:
    items = select(args)
    tok = load_tokenizer(DEFAULT_TARGET)
    target = ModelSpec(path=DEFAULT_TARGET, adapter=DEFAULT_ADAPTER).load()
    style = load_config(DEFAULT_ADAPTER).prompt_style
    planners = []
    for name, mode, reuse, lookup in CONFIGS:
        config = EngineConfig(mode=mode, lookahead=args.lookahead, prefix_cache=reuse, lookup=lookup)
        draft = None if mode == "ar" else ModelSpec(path=DEFAULT_DRAFT) if mode == "ssd" else ModelSpec(path=DEFAULT_DRAFT).load()
        planners.append(Planner(tok, Engine(target, config, draft=draft, target_tokenizer=tok), prompt_style=style))
    n = len(planners)
    lat: list[list[float]] = [[] for _ in range(n)]
    stats: list[list[dict]] = [[] for _ in range(n)]
    same = [True] * n
    for run in range(args.runs + 1):
        for i, (command, scene) in enumerate(items):
            out: dict[int, Any] = {}
            for j in range(n):
                c = (run * len(items) + i + j) % n  # rotate who goes first
                torch.set_num_threads(1 if CONFIGS[c][1] == "ssd" else args.threads)
                t0 = time.perf_counter()
                out[c] = planners[c].plan(command, scene)
                if run > 0:
                    lat[c].append(1e3 * (time.perf_counter() - t0))
                    stats[c].append(out[c].stats)
            for c in range(n):
                same[c] &= out[c].tokens == out[0].tokens and out[c].plan == out[0].plan
    for p in planners:
        p.close()
    rows = []
    for c, (name, mode, reuse, lookup) in enumerate(CONFIGS):
        p50 = statistics.median(lat[c])
        rows.append({"config": name, "mode": mode, "prefix_reuse": reuse, "lookup": lookup, "p50_ms": p50,
                     "p90_ms": percentile(lat[c], 0.9), "speedup_p50": statistics.median(lat[0]) / p50,
                     "prefill_tokens": statistics.mean(s["prefill_tokens"] for s in stats[c]),
                     "rounds": statistics.mean(s["rounds"] for s in stats[c]),
                     "lookup_rounds": statistics.mean(s["lookup_rounds"] for s in stats[c]),
                     "same_tokens": same[c]})
        print(f"{name} {mode}: p50 {p50:.0f} ms, {rows[-1]['speedup_p50']:.2f}x, same tokens {same[c]}", file=sys.stderr, flush=True)
    return {"machine": platform.processor() or platform.machine(), "source": args.source, "composed_seed": args.composed_seed,
            "kind": args.kind, "prompts": len(items), "runs": args.runs, "k": args.lookahead, "threads": args.threads, "results": rows}


def markdown(report: dict[str, Any]) -> str:
    lines = ["| config | mode | p50 ms | p90 ms | p50 speed-up vs issue-start | prompt tokens run / plan | rounds / plan | "
             "lookup rounds / plan | same tokens |", "|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        lines.append(f"| {r['config']} | {r['mode']} | {r['p50_ms']:.0f} | {r['p90_ms']:.0f} | {r['speedup_p50']:.2f}× | "
                     f"{r['prefill_tokens']:.1f} | {r['rounds']:.1f} | {r['lookup_rounds']:.1f} | {r['same_tokens']} |")
    src = f"composed seed {report['composed_seed']}" if report["source"] == "composed" else "held-out"
    lines.append(f"\n{report['prompts']} {report['kind']} {src} commands × {report['runs']} timed runs, K={report['k']}, "
                 f"{report['threads']} torch thread(s) for ar/sd, 1 + 1 (draft process) for ssd; {report['machine']}")
    return "\n".join(lines)


def main() -> None:
    apply_defaults()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for ar and sd (ssd: 1 + 1 in the draft process)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--k", dest="lookahead", type=int, default=4)
    parser.add_argument("--kind", choices=list(KINDS), default="one-step")
    parser.add_argument("--source", choices=("composed", "heldout"), default="composed")
    parser.add_argument("--composed-seed", type=int, default=6060, help="no choice was made on 6060")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = bench(args)
    print(json.dumps(report, indent=2) if args.json else markdown(report))


if __name__ == "__main__":
    main()
