"""Held-out k-step prediction error of the dynamics ensemble, against copy-last (issue #4).

For every step ``t`` of the held-out episodes the ensemble predicts ``s[t+1 .. t+16]`` from
``s[t-1], s[t]`` and the recorded actions ``a[t .. t+15]``, in one pass; the table gives the RMSE
per coordinate of the ensemble mean at horizons 1, 4, 8 and 16 (PushBlocks: pusher xy and the xy
of present blocks, in metres; Reacher: fingertip minus goal xy), next to copy-last
(``s_hat[t+k] = s[t]``). It also times one ``rollout`` of 64 chunks (median of 20 calls). For
PushBlocks it adds the blocks' predicted against real 16-step displacement where they really move,
split out for blocks shoved by another block (``metrics.block_motion``): the contacts a tidy push
must foresee. Several ``--model`` folders are compared on the same episodes.

``--shift`` compares the model before and after ``forethought adapt`` on episodes of the changed
env (``forethought/PushBlocksShifted-v0``); ``--nominal`` adds the adapted model's error on the
nominal env, to show what adaptation costs there.

Usage::

    python bench/dynamics.py --model models/pretrained/dynamics-pushblocks --data data/dyn/pushblocks-val.parquet
    python bench/dynamics.py --model models/pretrained/dynamics-pushblocks runs/dynamics-relational --data data/dyn/val3.parquet
    python bench/dynamics.py --model models/pretrained/dynamics-reacher --data data/dyn/reacher-val.parquet
    python bench/dynamics.py --shift --model models/pretrained/dynamics-pushblocks \\
        --adapted runs/dynamics-shifted --data data/dyn/shifted-val.parquet \\
        --nominal data/dyn/pushblocks-val.parquet

The held-out data sets are collected with a seed far from the training seeds (see the model
READMEs for the exact commands).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from forethought.models.dynamics import DynamicsEnsemble
from forethought.models.dynamics.metrics import HORIZONS, block_motion, kstep_errors
from forethought.sim import PUSH_BLOCKS_ID, task_env_id
from forethought.sim.dataset import Dataset

ROLLOUT_SAMPLES = 64
ROLLOUT_CALLS = 20


def machine() -> str:
    """CPU, core count, torch threads and the load averages (as ``uptime`` prints them)."""
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus, torch {torch.__version__} "
            f"with {torch.get_num_threads()} threads, load average {load}").replace("  ", " ")


def rollout_ms(model: DynamicsEnsemble, ds: Dataset) -> float:
    """Median wall time (ms) of ``rollout`` for ``ROLLOUT_SAMPLES`` chunks of the full horizon."""
    w = ds.windows(model.n_obs_steps, model.max_horizon, future=1, index=list(range(ROLLOUT_SAMPLES)))
    state, actions = torch.from_numpy(w.obs_history[0]), torch.from_numpy(w.actions)
    model.rollout(state, actions)  # warm-up
    times = []
    for _ in range(ROLLOUT_CALLS):
        t0 = time.perf_counter()
        model.rollout(state, actions)
        times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def table(rows: list[tuple[str, str, dict[int, float]]]) -> str:
    """Markdown table: one row per (metric, predictor), one column per horizon."""
    head = "| metric | predictor | " + " | ".join(f"k={k}" for k in HORIZONS) + " |"
    rule = "|---|---|" + "---:|" * len(HORIZONS)
    body = [f"| {m} | {p} | " + " | ".join(f"{v[k]:.4f}" for k in HORIZONS) + " |" for m, p, v in rows]
    return "\n".join([head, rule, *body])


def rows_of(errors: dict[str, Any], label: str, baseline: bool) -> list[tuple[str, str, dict[int, float]]]:
    rows = []
    for metric in errors["model"]:
        if baseline:
            rows.append((metric, "copy-last", errors["copy_last"][metric]))
        rows.append((metric, label, errors["model"][metric]))
    return rows


def motion_table(motions: dict[str, dict[str, dict[str, float]]]) -> str:
    """Markdown table: one row per model, the moved / shoved / still columns of ``block_motion``."""
    head = ("| model | moved: windows | pred/real | recall | error (m) | shoved: windows | pred/real | recall "
            "| error (m) | still: windows | false alarms |")
    rule = "|---|" + "---:|" * 10
    body = []
    for name, m in motions.items():
        cells = [f"{m[c]['windows']} | {m[c]['ratio']:.2f} | {m[c]['recall']:.2f} | {m[c]['error_m']:.4f}"
                 for c in ("moved", "shoved")]
        body.append(f"| {name} | {cells[0]} | {cells[1]} | {m['still']['windows']} | {m['still']['false_alarm']:.3f} |")
    return "\n".join([head, rule, *body])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, nargs="+", required=True, help="dynamics model directories")
    parser.add_argument("--data", type=Path, required=True, help="held-out episodes (.parquet)")
    parser.add_argument("--shift", action="store_true", help="before/after adaptation on a changed env")
    parser.add_argument("--adapted", type=Path, help="--shift: the model written by `forethought adapt`")
    parser.add_argument("--nominal", type=Path, help="--shift: held-out nominal-env episodes (forgetting check)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    if args.shift and (args.adapted is None or len(args.model) != 1):
        parser.error("--shift needs one --model and --adapted DIR")
    torch.set_num_threads(args.threads)
    command = shlex.join(["python", "bench/dynamics.py", *(sys.argv[1:] if argv is None else argv)])
    ds = Dataset.load(args.data)
    result: dict[str, Any] = {"command": command, "machine": machine(), "data": str(args.data),
                              "episodes": ds.num_episodes, "models": {}}

    if args.shift:
        model = DynamicsEnsemble.from_pretrained(args.model[0])
        errors = kstep_errors(model, ds)
        adapted = DynamicsEnsemble.from_pretrained(args.adapted)
        result["models"][str(args.model[0])] = {"errors": errors}
        result["adapted"] = str(args.adapted)
        result["adapted_errors"] = kstep_errors(adapted, ds)
        rows = rows_of(errors, "before adapt", True)
        rows += rows_of(result["adapted_errors"], "after adapt", False)
        rows.sort(key=lambda r: list(errors["model"]).index(r[0]))
        title = f"Dynamics change: k-step RMSE on {ds.num_episodes} held-out episodes of {ds.metadata.get('env_id')}"
        if args.nominal is not None:
            nominal = Dataset.load(args.nominal)
            result["nominal_errors"] = {"before": kstep_errors(model, nominal), "after": kstep_errors(adapted, nominal)}
            extra = rows_of(result["nominal_errors"]["before"], "before adapt (nominal env)", True)
            extra += rows_of(result["nominal_errors"]["after"], "after adapt (nominal env)", False)
            extra.sort(key=lambda r: list(errors["model"]).index(r[0]))
            rows += extra
        print(f"### {title}\n\n{table(rows)}")
    else:
        rows, motions, timing = [], {}, []
        for i, path in enumerate(args.model):
            model = DynamicsEnsemble.from_pretrained(path)
            errors = kstep_errors(model, ds)
            entry = result["models"][str(path)] = {"errors": errors, "rollout_ms": rollout_ms(model, ds)}
            rows += rows_of(errors, f"{path.name} (K={model.ensemble_size})", i == 0)
            timing.append(f"{path.name}: {entry['rollout_ms']:.2f} ms")
            if task_env_id(model.config.env_id) == PUSH_BLOCKS_ID:
                motions[path.name] = entry["block_motion"] = block_motion(model, ds)
        rows.sort(key=lambda r: list(errors["model"]).index(r[0]))
        print(f"### k-step RMSE on {ds.num_episodes} held-out episodes of {ds.metadata.get('env_id')}\n")
        print(table(rows))
        n = errors["count"]
        print("\nscored windows per horizon: " + "; ".join(f"{m}: " + ", ".join(str(n[m][k]) for k in HORIZONS)
                                                          for m in n))
        print(f"rollout of {ROLLOUT_SAMPLES} chunks x {model.max_horizon} steps, all members "
              f"(median of {ROLLOUT_CALLS}): " + "; ".join(timing))
        if motions:
            print(f"\n### Block motion {model.max_horizon} steps ahead: predicted (ensemble mean) vs real\n")
            print(motion_table(motions))
    print(f"\ncommand: `{command}`\nmachine: {result['machine']}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
