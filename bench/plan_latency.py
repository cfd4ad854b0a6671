"""Plan latency of one-step commands: prompt-prefix KV reuse off ("before") against on ("after"), per mode.

The shipped pair (SmolLM2-135M-Instruct + the shipped LoRA, the shipped draft), greedy under the
plan grammar. For each mode two planners are loaded side by side, reuse off and on, and each command
is planned by both in turn (order alternating), so the two see the same machine load. Latency is
``Planner.plan`` wall time, end to end (prompt, prefill, decoding, grounding). The first pass
warms up and fills the prefix cache; ``--runs`` further passes are timed. Threads: ``--threads``
(default 1: the machine is shared) torch threads for ar and sd, 1 in the target and 1 in the draft
process for ssd. Also checks that both planners emit the same tokens.

    .venv/bin/python bench/plan_latency.py [--prompts 10] [--runs 3] [--threads 1] [--modes ar sd ssd] [--json]
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
from forethought.llm_planner.planning.planner import DEFAULT_ADAPTER, DEFAULT_DRAFT, DEFAULT_TARGET, Planner
from forethought.llm_planner.training.lora import load_config
from forethought.runtime import apply_defaults


def one_step_commands(n: int) -> list[tuple[str, str]]:
    """The first ``n`` held-out generated commands whose plan has exactly one step."""
    rows = [r for r in commands.load("heldout") if len(r["plan"]["steps"]) == 1]
    if len(rows) < n:
        raise ValueError(f"--prompts {n}: only {len(rows)} one-step held-out commands")
    return [(r["command"], r["scene"]) for r in rows[:n]]


def percentile(xs: list[float], q: float) -> float:
    """The ``q``-quantile of ``xs`` (linear interpolation)."""
    return float(torch.quantile(torch.tensor(xs, dtype=torch.float64), q))


def bench(args: argparse.Namespace) -> dict[str, Any]:
    items = one_step_commands(args.prompts)
    tok = load_tokenizer(DEFAULT_TARGET)
    target = ModelSpec(path=DEFAULT_TARGET, adapter=DEFAULT_ADAPTER).load()
    style = load_config(DEFAULT_ADAPTER).prompt_style
    rows = []
    for mode in args.modes:
        torch.set_num_threads(1 if mode == "ssd" else args.threads)
        planners = {}
        for reuse in (False, True):
            config = EngineConfig(mode=mode, lookahead=args.lookahead, prefix_cache=reuse)
            draft = None if mode == "ar" else ModelSpec(path=DEFAULT_DRAFT)
            planners[reuse] = Planner(tok, Engine(target, config, draft=draft, target_tokenizer=tok), prompt_style=style)
        lat: dict[bool, list[float]] = {False: [], True: []}
        prefill: dict[bool, list[int]] = {False: [], True: []}
        same = True
        for run in range(args.runs + 1):
            for i, (command, scene) in enumerate(items):
                order = (False, True) if (run + i) % 2 == 0 else (True, False)
                out = {}
                for reuse in order:
                    t0 = time.perf_counter()
                    out[reuse] = planners[reuse].plan(command, scene)
                    if run > 0:
                        lat[reuse].append(1e3 * (time.perf_counter() - t0))
                        prefill[reuse].append(out[reuse].stats["prefill_tokens"])
                same &= out[False].tokens == out[True].tokens
        for p in planners.values():
            p.close()
        for reuse in (False, True):
            rows.append({"mode": mode, "prefix_reuse": reuse, "p50_ms": statistics.median(lat[reuse]),
                         "p90_ms": percentile(lat[reuse], 0.9), "prefill_tokens": statistics.mean(prefill[reuse])})
        rows[-1]["p50_ratio"] = rows[-2]["p50_ms"] / rows[-1]["p50_ms"]
        rows[-1]["same_tokens"] = same
        print(f"{mode}: p50 {rows[-2]['p50_ms']:.0f} -> {rows[-1]['p50_ms']:.0f} ms, same tokens {same}", file=sys.stderr, flush=True)
    return {"machine": platform.processor() or platform.machine(), "prompts": len(items), "runs": args.runs,
            "k": args.lookahead, "threads": args.threads, "results": rows}


def markdown(report: dict[str, Any]) -> str:
    lines = ["| mode | prefix KV reuse | p50 ms | p90 ms | prefill tokens / plan | p50 before / after | same tokens |", "|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        ratio = f"{r['p50_ratio']:.2f}×" if "p50_ratio" in r else "–"
        same = str(r["same_tokens"]) if "same_tokens" in r else "–"
        lines.append(f"| {r['mode']} | {'on' if r['prefix_reuse'] else 'off'} | {r['p50_ms']:.0f} | {r['p90_ms']:.0f} | "
                     f"{r['prefill_tokens']:.1f} | {ratio} | {same} |")
    lines.append(f"\n{report['prompts']} one-step held-out commands × {report['runs']} timed runs, K={report['k']}, "
                 f"{report['threads']} torch thread(s) for ar/sd, 1 + 1 (draft process) for ssd; {report['machine']}")
    return "\n".join(lines)


def main() -> None:
    apply_defaults()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for ar and sd (ssd: 1 + 1 in the draft process)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--k", dest="lookahead", type=int, default=4)
    parser.add_argument("--modes", nargs="+", default=["ar", "sd", "ssd"], choices=["ar", "sd", "ssd"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = bench(args)
    print(json.dumps(report, indent=2) if args.json else markdown(report))


if __name__ == "__main__":
    main()
