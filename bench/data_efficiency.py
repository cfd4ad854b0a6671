"""Data efficiency of the dynamics: D-MPC push success against the number of demonstrations.

Issue #4's sweep, after Kim et al. 2025 (pre-training under limited data: ensembles with much
heavier weight decay than the single-model default are more data-efficient). For each N in
``--demos`` (default 25 50 100 200), the first N 1-block push demonstrations of one collection
(scripted expert with DART noise 0.1, seed 300000; never the shipped models' data) train:

- ``single``: one member (K = 1) at the preset's weight decay (1e-2);
- ``ensemble wd W``: the K = 5 ensemble at each ``--ensemble-wd`` W (default 0.1 and 1.0).

Each is scored in closed loop: D-MPC SSR with the shipped proposer (64 proposals, DDIM 5,
m = 8) on the 1-block push, seeds ``--seeds`` (default 0-49), Wilson 95% intervals. The shipped
proposer is the same in every row, so the rows differ only in the dynamics. Every training runs
the ``forethought train dynamics`` command it prints, in ``--workdir`` (reused when present).

    MUJOCO_GL=egl .venv/bin/python bench/data_efficiency.py --workdir runs/data-efficiency [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

import forethought.sim.envs  # noqa: F401  (registers the envs)
from forethought.models.control.policy import DMPCPolicy
from forethought.models.evaluation import PolicySpec, evaluate, parse_seeds
from forethought.runtime import apply_defaults
from forethought.sim import PUSH_BLOCKS_ID, scene
from forethought.sim.dataset import Dataset, write_dataset


def run(cmd: list[str]) -> None:
    print("$ " + shlex.join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def demo_subsets(work: Path, sizes: list[int]) -> dict[int, Path]:
    """``N -> parquet`` of the first N push demonstrations of one 1-block collection."""
    pool = work / "demos-pool.parquet"
    if not pool.exists():
        run(["forethought", "collect", "--env", PUSH_BLOCKS_ID, "--n-blocks", "1", "--episodes", str(3 * max(sizes)),
             "--noise", "0.1", "--seed", "300000", "--out", str(pool)])
    ds = Dataset.load(pool)
    push = [e for e in range(ds.num_episodes) if ds.tasks[ds.task_index[ds.episode_start[e]]]["skill"] == "push"]
    if len(push) < max(sizes):
        raise SystemExit(f"{pool} holds only {len(push)} push demonstrations; need {max(sizes)}")
    out = {}
    for n in sizes:
        path = work / f"demos-{n}.parquet"
        if not path.exists():
            write_dataset(path, [ds.episode(e) for e in push[:n]], {**ds.metadata, "subset_of": str(pool),
                                                                   "subset": f"first {n} push episodes"})
        out[n] = path
    return out


def train_cases(args: argparse.Namespace) -> list[tuple[str, dict[str, str]]]:
    """(label, extra ``forethought train dynamics`` flags) per model variant."""
    cases = [("single", {"--ensemble-size": "1"})]
    cases += [(f"ensemble wd {wd:g}", {"--ensemble-size": "5", "--weight-decay": f"{wd:g}"}) for wd in args.ensemble_wd]
    return cases


def evaluate_dmpc(args: argparse.Namespace, dynamics: Path, seeds: list[int]) -> dict[str, Any]:
    spec = PolicySpec(model=args.proposer, env_id=PUSH_BLOCKS_ID, observation_dim=scene.OBS_DIM,
                      action_dim=scene.ACTION_DIM, num_inference_steps=args.inference_steps, action_steps=8,
                      options={"samples": str(args.samples)}, planner="ssr", dynamics=str(dynamics))
    report = evaluate(DMPCPolicy(spec), PUSH_BLOCKS_ID, seeds, policy_name="ssr", env_kwargs={"n_blocks": 1},
                      skills=["push"])
    return {"successes": report.successes, "episodes": report.episodes, "success_rate": report.success_rate,
            "ci_low": report.ci_low, "ci_high": report.ci_high, "mean_steps": report.mean_steps}


def main() -> None:
    apply_defaults()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demos", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--ensemble-wd", type=float, nargs="+", default=[0.1, 1.0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps per model (default 2000)")
    parser.add_argument("--proposer", type=Path, default=Path("models/pretrained/proposer-pushblocks"))
    parser.add_argument("--seeds", default="0-49")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--inference-steps", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("runs/data-efficiency"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = parse_seeds(args.seeds)
    args.workdir.mkdir(parents=True, exist_ok=True)
    t0, load_before = time.perf_counter(), [round(v, 2) for v in os.getloadavg()]
    subsets = demo_subsets(args.workdir, args.demos)
    rows = []
    for n, data in subsets.items():
        for label, flags in train_cases(args):
            out = args.workdir / f"dynamics-{n}-{label.replace(' ', '-')}"
            if not out.exists():
                run(["forethought", "train", "dynamics", "--data", str(data), "--config", "pushblocks", "--out", str(out),
                     "--sources", "expert", "--steps", str(args.steps), "--threads", str(args.threads),
                     *[x for kv in flags.items() for x in kv]])
            diag = json.loads((out / "diagnostics.json").read_text())
            row = {"demos": n, "model": label, **evaluate_dmpc(args, out, seeds),
                   "heldout_block_rmse_k16": diag["model"].get("block_xy", {}).get("16")}
            rows.append(row)
            print(f"N={n} {label}: {row['successes']}/{row['episodes']}", file=sys.stderr, flush=True)
    results = {"command": shlex.join(["bench/data_efficiency.py", *sys.argv[1:]]),
               "machine": f"{platform.machine()} {os.cpu_count()} cpus", "torch": torch.__version__,
               "threads": args.threads, "seeds": args.seeds, "steps": args.steps, "rows": rows,
               "load_before": load_before, "load_after": [round(v, 2) for v in os.getloadavg()],
               "wall_s": time.perf_counter() - t0}
    print(f"Command: `{results['command']}`; {results['machine']}, torch {results['torch']}, "
          f"{args.threads} thread(s); load {load_before} -> {results['load_after']}; wall {results['wall_s']:.0f} s\n")
    print("| demos | dynamics | D-MPC SSR push success | 95% CI | held-out block RMSE k=16 (m) |")
    print("|---|---|---|---|---|")
    for r in rows:
        rmse = "–" if r["heldout_block_rmse_k16"] is None else f"{r['heldout_block_rmse_k16']:.4f}"
        print(f"| {r['demos']} | {r['model']} | {r['successes']}/{r['episodes']} = {r['success_rate']:.2f} | "
              f"{r['ci_low']:.2f}-{r['ci_high']:.2f} | {rmse} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
