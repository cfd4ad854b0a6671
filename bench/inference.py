"""Fast D-MPC (issue #17): replan latency and success of SSR for torch/onnxruntime and the one-step student.

Rows (all SSR, N = ``--samples`` 64 proposals, F = 16, the 5-member dynamics ensemble, m = 8):

| row | proposer | sampling | backend (proposer and dynamics) |
|---|---|---|---|
| ``torch-ddim10`` | ``--teacher`` | DDIM 10 | torch |
| ``torch-ddim5`` | ``--teacher`` | DDIM 5 | torch |
| ``onnx-ddim5`` | ``--teacher`` | DDIM 5 | onnxruntime |
| ``torch-student`` | ``--student`` | its 1 step | torch |
| ``onnx-student`` | ``--student`` | its 1 step | onnxruntime |

1. **Latency** (``--experiments latency``): every row plans on the same ``--histories`` real
   observation histories (3-block PushBlocks episodes, random tasks, a few random steps in). The
   rows take turns in blocks of ``--block`` replans, so that load on a shared machine hits all of
   them alike; the first replan of each block is not timed: it would pay for the previous row's
   thread pools winding down (torch's OpenMP threads spin after their parallel regions), which a
   controller running one configuration never does. ``--replans`` timed replans per row (rounded up
   to whole blocks) after one untimed round of blocks. Besides the whole replan
   (``Planner.plan``) it times the proposer's part (``Planner.proposals``) and the dynamics'
   part (``dynamics.rollout`` of the 64 chunks) on the same inputs, each separately.
2. **Success** (``--experiments push1 mixed3``): ``evaluate`` over ``--seeds`` for the 1-block
   push and for 3-block episodes with the env's own random tasks (push and reach, any block).

Threads: ``--threads`` torch threads, and as many onnxruntime intra-op threads. ``--option KEY=VALUE``
passes a D-MPC policy option to every row (e.g. the objective's ``disturbance_deadband``).

    MUJOCO_GL=egl .venv/bin/python bench/inference.py --experiments latency push1 mixed3 --seeds 1000-1049 \\
        --threads 2 --json runs/bench/inference.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import forethought.sim.envs  # noqa: F401  (registers the forethought/* envs)
from forethought.models.control.objectives import Objective
from forethought.models.control.planners import last_steps
from forethought.models.control.policy import DMPCPolicy
from forethought.models.evaluation import PolicySpec, evaluate, parse_seeds, task_for_seed, wilson_interval
from forethought.runtime import apply_defaults
from forethought.sim import PUSH_BLOCKS_ID, scene

ROWS: dict[str, tuple[str, int | None, str]] = {
    # name: (which proposer, DDIM steps (None: the model's own), backend)
    "torch-ddim10": ("teacher", 10, "torch"),
    "torch-ddim5": ("teacher", 5, "torch"),
    "onnx-ddim5": ("teacher", 5, "onnx"),
    "torch-student": ("student", None, "torch"),
    "onnx-student": ("student", None, "onnx"),
}
EXPERIMENTS: dict[str, tuple[str, dict[str, Any], list[str] | None]] = {
    "push1": ("PushBlocks 1-block push", {"n_blocks": 1}, ["push"]),
    "mixed3": ("PushBlocks 3-block mixed (env's random tasks)", {"n_blocks": 3}, None),
}


def parse_option(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> ``(KEY, VALUE)`` (``DMPCPolicy`` checks the key and parses the value)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def make_policy(row: str, args: argparse.Namespace) -> DMPCPolicy:
    which, steps, backend = ROWS[row]
    spec = PolicySpec(model=getattr(args, which), env_id=PUSH_BLOCKS_ID, observation_dim=16, action_dim=2,
                      num_inference_steps=steps, action_steps=args.action_steps, planner="ssr",
                      dynamics=str(args.dynamics),
                      options={**dict(args.option), "samples": str(args.samples), "backend": backend})
    return DMPCPolicy(spec)


def histories(n: int) -> list[tuple[np.ndarray, dict[str, Any]]]:
    """``n`` (history[2, 16], task) pairs from 3-block episodes (seeds 500..), 1-4 random steps in."""
    env = gym.make(PUSH_BLOCKS_ID, n_blocks=3)
    out = []
    for seed in range(500, 500 + n):
        task = task_for_seed(env, seed, ["push", "reach"], None)
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        prev = obs
        for _ in range(1 + seed % 4):
            prev, obs = obs, env.step(env.action_space.sample())[0]
        out.append((np.stack([prev, obs]).astype(np.float32), task))
    env.close()
    return out


def latency(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Median/p90 of whole replans and of the proposer's and the dynamics' parts, rows in turn by blocks."""
    cases = histories(args.histories)
    policies = {row: make_policy(row, args) for row in args.rows}
    objectives = [Objective.from_step(task, scene.present_blocks(h[-1]), env_id=PUSH_BLOCKS_ID) for h, task in cases]
    times: dict[str, dict[str, list[float]]] = {r: {"replan": [], "proposer": [], "dynamics": []} for r in args.rows}
    timed_per_block = args.block - 1
    blocks = 1 + -(-args.replans // timed_per_block)  # the first round of blocks warms up
    for b in range(blocks):
        for row, policy in policies.items():
            planner = policy.planner
            for j in range(args.block):
                i = b * args.block + j
                (hist, task), objective = cases[i % len(cases)], objectives[i % len(cases)]
                planner.reset(seed=i)
                t0 = time.perf_counter()
                planner.plan(hist, objective, goal=task)
                t1 = time.perf_counter()
                h = torch.from_numpy(hist)
                with torch.inference_mode():
                    chunks = planner.proposals(h, task)
                    t2 = time.perf_counter()
                    planner.dynamics.rollout(last_steps(h, planner.dynamics.n_obs_steps), chunks)
                    t3 = time.perf_counter()
                if b > 0 and j > 0:
                    for key, dt in (("replan", t1 - t0), ("proposer", t2 - t1), ("dynamics", t3 - t2)):
                        times[row][key].append(dt * 1e3)
    base = float(np.median(times["torch-ddim5"]["replan"])) if "torch-ddim5" in times else None
    rows = []
    for row, t in times.items():
        med = {k: float(np.median(v)) for k, v in t.items()}
        rows.append({"row": row, "replans": len(t["replan"]), "replan_ms_median": med["replan"],
                     "replan_ms_p90": float(np.percentile(t["replan"], 90)), "proposer_ms_median": med["proposer"],
                     "dynamics_ms_median": med["dynamics"],
                     "speedup_vs_torch_ddim5": base / med["replan"] if base else None})
        print(f"latency {row}: replan {med['replan']:.1f} ms (proposer {med['proposer']:.1f}, "
              f"dynamics {med['dynamics']:.1f})", file=sys.stderr, flush=True)
    return rows


def success(name: str, args: argparse.Namespace, seeds: list[int]) -> list[dict[str, Any]]:
    label, kwargs, skills = EXPERIMENTS[name]
    rows = []
    for row in args.rows:
        t0 = time.perf_counter()
        policy = make_policy(row, args)
        report = evaluate(policy, PUSH_BLOCKS_ID, seeds, policy_name=row, env_kwargs=kwargs, skills=skills)
        lo, hi = wilson_interval(report.successes, report.episodes)
        rows.append({"row": row, "successes": report.successes, "episodes": report.episodes,
                     "success_rate": report.successes / report.episodes, "ci_low": lo, "ci_high": hi,
                     "mean_steps": report.mean_steps, "replan_ms_median": float(np.median(policy.replan_ms)),
                     "wall_s": time.perf_counter() - t0})
        print(f"{label}: {row} {report.successes}/{report.episodes}", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    apply_defaults()
    root = Path(__file__).resolve().parents[1] / "models" / "pretrained"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs="+", default=["latency", "push1", "mixed3"],
                        choices=["latency", *EXPERIMENTS])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--teacher", type=Path, default=root / "proposer-pushblocks")
    parser.add_argument("--student", type=Path, default=root / "proposer-pushblocks-fast")
    parser.add_argument("--dynamics", type=Path, default=root / "dynamics-pushblocks")
    parser.add_argument("--seeds", default="1000-1049", help="success seeds (test seeds: never used to tune)")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--action-steps", type=int, default=8)
    parser.add_argument("--replans", type=int, default=60, help="timed replans per row")
    parser.add_argument("--block", type=int, default=6,
                        help="replans per row per turn; the first of each block is not timed (>= 2)")
    parser.add_argument("--histories", type=int, default=12, help="distinct observation histories to plan on")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--option", type=parse_option, action="append", default=[], metavar="KEY=VALUE",
                        help="a D-MPC policy option for every row (repeatable), e.g. disturbance_deadband=0.015")
    parser.add_argument("--json", type=Path, help="write the results here (refreshed after each experiment)")
    args = parser.parse_args(argv)
    if args.block < 2:
        parser.error("--block must be >= 2: the first replan of each block is not timed")
    if {"samples", "backend"} & {key for key, _ in args.option}:
        parser.error("--option cannot set samples or backend: --samples and the rows set them")
    torch.set_num_threads(args.threads)
    seeds = parse_seeds(args.seeds)
    result: dict[str, Any] = {
        "command": " ".join(["bench/inference.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "threads": args.threads, "load_before": os.getloadavg()},
        "seeds": args.seeds,
    }
    for name in args.experiments:
        result[name] = latency(args) if name == "latency" else success(name, args, seeds)
        result["machine"]["load_after"] = os.getloadavg()
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
