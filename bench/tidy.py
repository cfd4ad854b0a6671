"""Tidy pushes (issue #16): does the controller move only what the command names, and do plans keep
what earlier steps achieved?

Single steps: 3-block PushBlocks, one push per seed, cycling objects and regions
(``single_step(seed)``), the env's 200-step limit. Metric per episode: the largest displacement of a
block the step does not name (``sim.plan_progress.disturbance``). Plans: the fixed 3-step plan
``PLAN`` on 3 blocks, one episode per seed, judged by ``sim.plan_progress.PlanProgress`` (as the
executive): success when every step holds at the end, a broken step re-issued at most twice.

Rows (``--rows``): ``expert``, ``ssr-today`` (D-MPC SSR, disturbance and edge terms off, as shipped before
#16), ``ssr`` (with the default disturbance and edge terms), ``mppi`` (with it), ``proposer`` (alone);
``plan-expert``, ``plan-today`` (SSR without the term and no re-issue: today's stack, whose
executive never looked back), ``plan-ssr-today`` (SSR without the term, re-issues on),
``plan-ssr``; ``replan``: the wall time of one SSR replan with and without the term, the two
timed alternately on the same observations (the first observation of each single-step seed). Each row's results are written (atomically)
to ``--json`` as soon as it finishes. ``--option KEY=VALUE`` adds a dmpc ``--policy-option`` to
every D-MPC row (for tuning on dev seeds); ``--dynamics oracle`` rolls the D-MPC rows out in the
simulator instead of the learned ensemble (the ceiling of any dynamics model); ``--today-dynamics
DIR`` gives the ``-today`` rows (and ``replan``'s baseline) another ensemble, e.g. the one shipped
before #16's relational ensemble (``runs/dynamics-flat``, see its model README).

    python bench/tidy.py --seeds 0-49 --plan-seeds 0-49 --threads 1 --json tidy.json
    python bench/tidy.py --rows replan --seeds 0-49 --threads 2 --today-dynamics runs/dynamics-flat --json replan.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import forethought.models.control.policy  # noqa: F401  (registers dmpc)
from forethought.cli_args import key_values
from forethought.files import atomic_path
from forethought.models.evaluation import (EpisodeResult, PolicySpec, build_policy, evaluate, parse_seeds,
                                           wilson_interval)
from forethought.runtime import pretrained_dir
from forethought.sim import PUSH_BLOCKS_ID, scene

PLAN = [{"skill": "push", "object": "red_block", "target": "left"},
        {"skill": "push", "object": "green_block", "target": "right"},
        {"skill": "push", "object": "blue_block", "target": "center"}]
ROWS = ("expert", "ssr-today", "ssr", "mppi", "proposer", "plan-expert", "plan-today", "plan-ssr-today", "plan-ssr",
        "replan")


def single_step(seed: int) -> dict[str, Any]:
    """The push of episode ``seed``: objects cycle every seed, regions every three."""
    return {"skill": "push", "object": scene.BLOCK_NAMES[seed % 3],
            "target": scene.REGION_NAMES[(seed // 3) % len(scene.REGION_NAMES)]}


def build(row: str, args: argparse.Namespace) -> Any:
    kind = "ssr-today" if row == "plan-today" else row.removeprefix("plan-")
    policy = {"expert": "expert", "proposer": "proposer"}.get(kind, "dmpc")
    options = dict(args.option) if policy == "dmpc" else {}
    if kind.endswith("-today"):
        options.update(disturbance_weight="0", edge_weight="0")
    if kind.startswith("mppi"):
        options.update(samples="32", iterations="1", elites="6")
    spec = PolicySpec(model=None if policy == "expert" else args.model,
                      env_id=PUSH_BLOCKS_ID, observation_dim=scene.OBS_DIM, action_dim=scene.ACTION_DIM,
                      num_inference_steps=None if policy == "expert" else args.inference_steps or None,
                      action_steps=None if policy == "expert" else args.action_steps, options=options,
                      planner=None if policy != "dmpc" else kind.split("-")[0],
                      dynamics=(args.today_dynamics or args.dynamics if kind.endswith("-today") else args.dynamics)
                      if policy == "dmpc" else None)
    return build_policy(policy, spec)


def summarise(results: list[EpisodeResult], replan_ms: list[float], wall_s: float) -> dict[str, Any]:
    k, n = sum(r.success for r in results), len(results)
    lo, hi = wilson_interval(k, n)
    moved = np.array([r.disturbance_m for r in results])
    return {"episodes": n, "successes": k, "success_rate": k / n, "ci_low": lo, "ci_high": hi,
            "disturbance_m_median": float(np.median(moved)), "disturbance_m_p90": float(np.percentile(moved, 90)),
            "displaced_over_2cm": float(np.mean(moved > 0.02)),
            "reissues": sum(r.reissues for r in results),
            "failures": [f"seed {r.seed}: {r.failure}" for r in results if r.failure],
            "replans": len(replan_ms),
            "replan_ms_median": float(np.median(replan_ms)) if replan_ms else None,
            "replan_ms_p90": float(np.percentile(replan_ms, 90)) if replan_ms else None,
            "wall_s": wall_s, "per_episode": [r.__dict__ for r in results]}


def replan_times(args: argparse.Namespace, repeats: int = 3) -> dict[str, Any]:
    """Median wall time (ms) of one SSR replan without (``today``: the term off, ``--today-dynamics``)
    and with (``tidy``) the term, timed alternately on the first observation of each single-step seed."""
    env = gym.make(PUSH_BLOCKS_ID, n_blocks=3)
    starts = [(env.reset(seed=s, options={"task": single_step(s)})[0], single_step(s)) for s in args.seeds]
    env.close()
    policies = {"today": build("ssr-today", args), "tidy": build("ssr", args)}
    times: dict[str, list[float]] = {name: [] for name in policies}
    for _ in range(repeats):
        for seed, (obs, task) in zip(args.seeds, starts):
            for name, policy in policies.items():
                policy.reset(task, seed)
                policy.act(obs)  # the first act plans
                times[name].append(policy.replan_ms[-1])
    today, tidy = float(np.median(times["today"])), float(np.median(times["tidy"]))
    return {"replans": len(times["tidy"]), "replan_ms_median_today": today, "replan_ms_median": tidy,
            "ratio": tidy / today}


def run_row(row: str, args: argparse.Namespace) -> dict[str, Any]:
    if row == "replan":
        return replan_times(args)
    policy = build(row, args)
    t0 = time.perf_counter()
    env_kwargs = {"n_blocks": 3}
    if row.startswith("plan-"):
        report = evaluate(policy, PUSH_BLOCKS_ID, args.plan_seeds, row, env_kwargs, plan=PLAN,
                          max_reissues=0 if row == "plan-today" else 2)
        results = report.per_episode
    else:
        results = [evaluate(policy, PUSH_BLOCKS_ID, [s], row, env_kwargs, task=single_step(s)).per_episode[0]
                   for s in args.seeds]
    return summarise(results, list(getattr(policy, "replan_ms", ())), time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-49"), help="single-step seeds")
    parser.add_argument("--plan-seeds", type=parse_seeds, default=parse_seeds("0-49"), help="3-step plan seeds")
    parser.add_argument("--model", type=Path, default=pretrained_dir() / "proposer-pushblocks",
                        help="the proposer of the D-MPC and proposer rows, e.g. the one-step student "
                        "models/pretrained/proposer-pushblocks-fast (with --inference-steps 0 --option backend=onnx)")
    parser.add_argument("--inference-steps", type=int, default=5, help="diffusion steps; 0: the model's default")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="dmpc --policy-option for every D-MPC row")
    parser.add_argument("--dynamics", default=str(pretrained_dir() / "dynamics-pushblocks"),
                        help="D-MPC rows' dynamics: a model directory or 'oracle' (the simulator: the ceiling)")
    parser.add_argument("--today-dynamics", help="the '-today' rows' dynamics (default: --dynamics), e.g. the "
                        "ensemble shipped before the change being measured")
    parser.add_argument("--action-steps", type=int, default=8, help="m: actions executed per plan (not the expert)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write all rows here (after each row)")
    args = parser.parse_args()
    args.option = key_values(args.option, "--option")
    torch.set_num_threads(args.threads)
    out: dict[str, Any] = {"seeds": args.seeds, "plan_seeds": args.plan_seeds, "plan": PLAN, "model": str(args.model),
                           "inference_steps": args.inference_steps, "options": args.option, "rows": {}}
    print("| row | success (95% CI) | displaced median | displaced p90 | > 2 cm | replan ms median | re-issues |")
    print("|---|---|---|---|---|---|---|")
    for row in args.rows:
        r = run_row(row, args)
        out["rows"][row] = r
        if args.json is not None:
            with atomic_path(args.json) as tmp:
                Path(tmp).write_text(json.dumps(out, indent=1))
        if row == "replan":
            print(f"| replan (SSR, same observations, alternating) | today {r['replan_ms_median_today']:.1f} ms | "
                  f"with the term {r['replan_ms_median']:.1f} ms | ratio {r['ratio']:.2f} | | | |", flush=True)
            continue
        replan = "-" if r["replan_ms_median"] is None else f"{r['replan_ms_median']:.0f}"
        print(f"| {row} | {r['successes']}/{r['episodes']} ({r['ci_low']:.2f}-{r['ci_high']:.2f}) | "
              f"{r['disturbance_m_median'] * 100:.1f} cm | {r['disturbance_m_p90'] * 100:.1f} cm | "
              f"{r['displaced_over_2cm']:.0%} | {replan} | {r['reissues']} |", flush=True)


if __name__ == "__main__":
    main()
