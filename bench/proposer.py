"""Diffusion proposer numbers: policy success, ``propose`` latency, and goal-free proposal coverage.

1. **As a policy alone, goal-conditioned** (``select_action``, DDIM 10, executing 8 of the 16
   actions per chunk as configured and, for comparison, 2), over ``--seeds`` (default 0-49),
   with the scripted expert in the same run as reference:
   PushBlocks 1-block push, PushBlocks 1-block reach, Reacher-v5 (return against the stock
   threshold -3.75). Success rates carry a Wilson 95% interval.
2. **``propose`` latency**: median wall time of ``--calls`` calls (after 3 warm-up calls) for
   n = 64 and 16 samples at 10, 5 and 2 DDIM steps, at ``--threads`` threads, with the
   denoiser on torch and on onnxruntime (exported with ``forethought.models.proposer.onnx_denoiser``;
   the DDIM loop is the same diffusers scheduler); the one-sample policy call is the baseline
   in the same process. The 1-, 5- and 15-minute load averages before and after are recorded,
   because other jobs on a shared machine inflate the times.
3. **Proposal coverage without a goal**: from the start states of 1-3-block PushBlocks tasks
   (seeds as above), the fraction of 64 goal-free samples whose chunk endpoint ``a[F-1]`` lies
   within ``--tol`` m of the scripted expert's own ``a[F-1]`` for that task, and how often at
   least one does (what D-MPC's ranking needs). Goal-conditioned samples are the reference.

    MUJOCO_GL=egl .venv/bin/python bench/proposer.py \\
        --pushblocks models/pretrained/proposer-pushblocks --reacher models/pretrained/proposer-reacher \\
        [--seeds 0-49] [--threads 2] [--calls 20] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import forethought.sim.envs  # noqa: F401  (registers the forethought/* envs)
from forethought.models.evaluation import ExpertPolicy, PolicySpec, ProposerPolicy, evaluate, parse_seeds
from forethought.models.proposer.modeling_proposer import BACKENDS, DiffusionProposer
from forethought.models.proposer.onnx_denoiser import export_denoiser
from forethought.runtime import apply_defaults
from forethought.sim import PUSH_BLOCKS_ID, REACHER_ID
from forethought.sim.experts import make_expert
from forethought.sim.push_blocks import sample_task
from forethought.sim.scene import BLOCK_NAMES

REACHER_THRESHOLD = -3.75
POLICY_CASES: list[tuple[str, str, str | None, dict[str, Any], list[str] | None]] = [
    # (label, env, which model, env kwargs, skills)
    ("PushBlocks 1-block push", PUSH_BLOCKS_ID, "pushblocks", {"n_blocks": 1}, ["push"]),
    ("PushBlocks 1-block reach", PUSH_BLOCKS_ID, "pushblocks", {"n_blocks": 1}, ["reach"]),
    ("Reacher-v5 reach", REACHER_ID, "reacher", {}, None),
]


def policy_success(models: dict[str, Path], seeds: list[int], action_steps: list[int]) -> list[dict[str, Any]]:
    rows = []
    for label, env_id, which, kwargs, skills in POLICY_CASES:
        if which not in models:
            continue
        probe = gym.make(env_id, **kwargs)
        dims = int(probe.observation_space.shape[0]), int(probe.action_space.shape[0])
        probe.close()
        runs = [(f"proposer (executes {k} of 16)", ProposerPolicy, models[which], k) for k in action_steps]
        for name, cls, model, k in [*runs, ("expert", ExpertPolicy, None, None)]:
            spec = PolicySpec(model=model, env_id=env_id, observation_dim=dims[0], action_dim=dims[1], action_steps=k)
            report = evaluate(cls(spec), env_id, seeds, policy_name=name, env_kwargs=kwargs, skills=skills)
            row = {k: v for k, v in report.to_dict().items() if k != "per_episode"}
            rows.append({"case": label, **row})
    return rows


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages (as ``uptime`` prints them)."""
    return [round(v, 2) for v in os.getloadavg()]


def latency(model: Path, calls: int, threads: int) -> dict[str, Any]:
    """``propose`` wall time per (n, DDIM steps, backend), with the load average around the run."""
    proposer = DiffusionProposer.from_pretrained(model)
    with tempfile.TemporaryDirectory() as tmp:
        proposer.load_onnx(export_denoiser(proposer, Path(tmp) / "denoiser.onnx"), threads=threads)
    c = proposer.config
    history = np.zeros((c.n_obs_steps, c.obs_dim), np.float32)
    goal = {"skill": "push", "object": "red_block", "target": "left"} if c.use_goal and "push" in c.goal_skills else None
    load_before = load_average()
    rows = []
    for n in (64, 16, 1):
        for steps in (10, 5, 2):
            for backend in BACKENDS:
                for _ in range(3):
                    proposer.propose(history, n, goal=goal, num_inference_steps=steps, backend=backend)
                times = []
                for _ in range(calls):
                    t0 = time.perf_counter()
                    proposer.propose(history, n, goal=goal, num_inference_steps=steps, backend=backend)
                    times.append((time.perf_counter() - t0) * 1e3)
                rows.append({"n": n, "ddim_steps": steps, "backend": backend, "ms_median": statistics.median(times),
                             "ms_min": min(times), "calls": calls})
    return {"load_before": load_before, "load_after": load_average(), "rows": rows}


def expert_chunk(env: gym.Env, expert: Any, obs: np.ndarray, task: dict[str, Any], horizon: int) -> np.ndarray:
    """The expert's own next ``horizon`` actions ``[F, A]`` from the current state (edge-padded)."""
    expert.reset()
    actions = []
    for _ in range(horizon):
        a = np.asarray(expert.act(obs, task), np.float32)
        actions.append(a)
        obs, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            break
    actions += [actions[-1]] * (horizon - len(actions))
    return np.stack(actions)


def coverage(model: Path, seeds: list[int], tol: float, n: int = 64) -> list[dict[str, Any]]:
    proposer = DiffusionProposer.from_pretrained(model)
    expert = make_expert(PUSH_BLOCKS_ID)
    env = gym.make(PUSH_BLOCKS_ID)
    stats: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        n_blocks = int(rng.integers(1, 4))
        task = sample_task(rng, BLOCK_NAMES[:n_blocks])
        obs, _ = env.reset(seed=seed, options={"task": task, "n_blocks": n_blocks})
        history = np.stack([obs, obs])
        target = expert_chunk(env, expert, obs, task, proposer.config.horizon)[-1]
        for mode, goal in (("no goal", None), ("goal", task)):
            a = proposer.propose(history, n, goal=goal, generator=torch.Generator().manual_seed(seed))
            hit = np.linalg.norm(a[:, -1].numpy() - target, axis=-1) <= tol
            stats.setdefault((task["skill"], mode), []).append((float(hit.mean()), bool(hit.any())))
    env.close()
    return [
        {"skill": skill, "mode": mode, "states": len(v), "fraction_within_tol": float(np.mean([f for f, _ in v])),
         "any_within_tol": float(np.mean([a for _, a in v])), "tol_m": tol, "samples": n}
        for (skill, mode), v in sorted(stats.items())
    ]


def markdown(results: dict[str, Any]) -> str:
    out = [f"Machine: {results['machine']}; torch {results['torch']}, {results['threads']} threads; "
           f"load average at start {results['load_at_start']}.", ""]
    if results["policy"]:
        out += ["| case | policy | success | 95% CI | mean return | mean steps | step ms (median / mean) |",
                "|---|---|---|---|---|---|---|"]
        for r in results["policy"]:
            out.append(f"| {r['case']} | {r['policy']} | {r['successes']}/{r['episodes']} = {r['success_rate']:.2f} | "
                       f"{r['ci_low']:.2f}-{r['ci_high']:.2f} | {r['mean_return']:.2f} | {r['mean_steps']:.1f} | "
                       f"{r['step_ms_median']:.2f} / {r['step_ms_mean']:.2f} |")
        out.append(f"\nReacher-v5 threshold: {REACHER_THRESHOLD}.\n")
    if results["latency"]:
        lat = results["latency"]
        med = {(r["n"], r["ddim_steps"], r["backend"]): r for r in lat["rows"]}
        out += ["| n | DDIM steps | torch ms (median / min) | onnxruntime ms (median / min) | torch / onnxruntime |",
                "|---|---|---|---|---|"]
        for (n, steps, backend), r in med.items():
            if backend == "torch":
                o = med[(n, steps, "onnx")]
                out.append(f"| {n} | {steps} | {r['ms_median']:.1f} / {r['ms_min']:.1f} | "
                           f"{o['ms_median']:.1f} / {o['ms_min']:.1f} | {r['ms_median'] / o['ms_median']:.2f}x |")
        out.append(f"\nLoad average (1/5/15 min) {lat['load_before']} before, {lat['load_after']} after; "
                   f"median of {lat['rows'][0]['calls']} calls.\n")
    if results["coverage"]:
        out += ["| skill | proposals | start states | fraction of 64 within tol | states with >= 1 within tol |",
                "|---|---|---|---|---|"]
        out += [f"| {r['skill']} | {r['mode']} | {r['states']} | {r['fraction_within_tol']:.2f} | "
                f"{r['any_within_tol']:.2f} |" for r in results["coverage"]]
        out.append(f"\nTolerance {results['coverage'][0]['tol_m']} m on the chunk endpoint a[F-1] (target pusher position).")
    return "\n".join(out)


def main() -> None:
    apply_defaults()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushblocks", type=Path, default=Path("models/pretrained/proposer-pushblocks"))
    parser.add_argument("--reacher", type=Path, default=Path("models/pretrained/proposer-reacher"))
    parser.add_argument("--models", nargs="+", choices=("pushblocks", "reacher"), default=["pushblocks", "reacher"],
                        help="which of the two models to measure (default both)")
    parser.add_argument("--seeds", default="0-49")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--action-steps", type=int, nargs="+", default=[8, 2],
                        help="policy runs: actions executed per chunk (default 8, the config's, and 2)")
    parser.add_argument("--tol", type=float, default=0.05, help="coverage tolerance (m)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("policy", "latency", "coverage"))
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = parse_seeds(args.seeds)
    models = {k: p for k, p in (("pushblocks", args.pushblocks), ("reacher", args.reacher)) if k in args.models}
    results = {
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus".strip(),
        "torch": torch.__version__, "threads": args.threads, "seeds": args.seeds,
        "policy": [] if "policy" in args.skip else policy_success(models, seeds, args.action_steps),
        "load_at_start": load_average(),
        "latency": {} if "latency" in args.skip or "pushblocks" not in models
        else latency(models["pushblocks"], args.calls, args.threads),
        "coverage": [] if "coverage" in args.skip or "pushblocks" not in models else coverage(models["pushblocks"], seeds, args.tol),
    }
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
