"""D-MPC numbers: success and replan latency of the planners, and the keep-out (new reward) experiment.

1. **Success and latency** (``--experiments push1 push2 reach reacher``): PushBlocks 1-block
   push, 2-block push (incl. "next to" targets), 1-block reach, and Reacher-v5, over ``--seeds``
   (default 0-49; PushBlocks tasks drawn from the seed as ``forethought eval --skill`` does), one
   row per ``--rows`` entry:
   ``proposer`` (the diffusion proposer alone, executing m of 16), ``cem`` (plain CEM on the
   learned dynamics), ``ssr`` (D-MPC), ``mppi`` (D-MPC + MPPI), ``oracle`` (SSR rolled out in a
   copy of the simulator). Every planner gets the same number of rollouts per replan,
   ``--samples`` N: SSR N proposals; MPPI N/2 proposals + 1 round of N/2; CEM 4 rounds of N/4.
   Rows ``ssr-wm`` and ``mppi-wm`` (not run by default) plan through the SIGReg state world model
   read back through its linear probe (``world_model.latent_dynamics``) instead of the ensemble.
   Replan latency is the wall time of one planning call (the proposer's: one ``propose``).
2. **Keep-out** (``--experiments keepout``): PushBlocks 1-block reach with a disc of radius
   ``--keepout-radius`` centred on the straight path from the pusher's start to the target
   (episodes whose path is at least ``4 * radius`` long, the first N such seeds from 0): the
   rate of episodes in which the pusher's centre enters the disc, and success, for the proposer
   alone (unchanged) against D-MPC whose objective gains the keep-out term (no retraining); half
   of D-MPC's proposals are goal-free there (``--keepout-goal-fraction``), since goal-conditioned
   ones all take the straight path.

3. **Dynamics change** (``--experiments shift``): issue #4's adaptation protocol on the 1-block
   push with D-MPC SSR. (1) Evaluate in the nominal env and in ``forethought/PushBlocksShifted-v0``
   (block mass x3, friction x0.3, pusher gear x0.4) with the shipped models; (2) collect
   ``--shift-episodes`` (<= 20) episodes in the changed env; (3) ``forethought adapt`` the
   dynamics on them (proposer and objective frozen); (4) evaluate again. The share of lost
   success recovered is ``(after - before) / (nominal - before)``. Controls on the same data:
   dynamics trained from scratch, and the proposer re-cloned (fine-tuned) with the shipped
   dynamics. Every step runs the ``forethought`` command it prints, in ``--workdir``;
   ``--shift-kwargs`` changes the shift (e.g. ``'{"gear_scale": 0.1, "mass_scale": 5.0}'``).

Load averages before and after are printed: other jobs on a shared machine inflate latencies.

    MUJOCO_GL=egl nice -n 10 .venv/bin/python bench/dmpc.py --experiments push1 keepout \\
        [--rows proposer cem ssr mppi oracle] [--seeds 0-49] [--samples 64] [--inference-steps 5] \\
        [--action-steps 8] [--threads 1] [--json results.json]
    MUJOCO_GL=egl .venv/bin/python bench/dmpc.py --experiments shift --workdir runs/shift
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

import gymnasium as gym
import numpy as np
import torch

import forethought.sim.envs  # noqa: F401  (registers the forethought/* envs)
from forethought.models.control.objectives import KeepOut
from forethought.models.control.policy import DMPCPolicy
from forethought.models.evaluation import (
    PolicySpec,
    ProposerPolicy,
    evaluate,
    parse_seeds,
    task_for_seed,
    wilson_interval,
)
from forethought.runtime import apply_defaults
from forethought.sim import PUSH_BLOCKS_ID, REACHER_ID, SHIFTED_ID, scene

EXPERIMENTS: dict[str, tuple[str, str, dict[str, Any], list[str] | None]] = {
    # name: (label, env, env kwargs, skills)
    "push1": ("PushBlocks 1-block push", PUSH_BLOCKS_ID, {"n_blocks": 1}, ["push"]),
    "push2": ("PushBlocks 2-block push", PUSH_BLOCKS_ID, {"n_blocks": 2}, ["push"]),
    "reach": ("PushBlocks 1-block reach", PUSH_BLOCKS_ID, {"n_blocks": 1}, ["reach"]),
    "reacher": ("Reacher-v5", REACHER_ID, {}, None),
}
ROWS = ("proposer", "cem", "ssr", "mppi", "oracle", "ssr-wm", "mppi-wm")
ROW_LABELS = {"proposer": "proposer alone", "cem": "CEM, learned dynamics", "ssr": "D-MPC SSR",
              "mppi": "D-MPC + MPPI", "oracle": "oracle (SSR in a MuJoCo copy)",
              "ssr-wm": "D-MPC SSR, latent world model + probe as dynamics",
              "mppi-wm": "D-MPC + MPPI, latent world model + probe as dynamics"}
DEFAULT_ROWS = ROWS[:5]


class TimedProposer(ProposerPolicy):
    """The proposer alone, timing the steps that sample a new chunk (its replans)."""

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__(spec)
        self.replan_ms: list[float] = []

    def act(self, obs: np.ndarray) -> np.ndarray:
        replans = not self.proposer._action_queue
        t0 = time.perf_counter()
        action = super().act(obs)
        if replans:
            self.replan_ms.append((time.perf_counter() - t0) * 1e3)
        return action


def budget(row: str, samples: int) -> dict[str, str]:
    """``--policy-option`` settings giving every planner ``samples`` rollouts per replan."""
    if row == "mppi":
        return {"samples": str(samples // 2), "iterations": "1", "elites": str(max(2, samples // 8))}
    if row == "cem":
        return {"samples": str(samples // 4), "iterations": "4", "elites": str(max(2, samples // 16))}
    return {"samples": str(samples)}


def make_policy(row: str, env_id: str, args: argparse.Namespace, options: dict[str, str] | None = None) -> Any:
    which = "reacher" if env_id == REACHER_ID else "pushblocks"
    proposer, dynamics = getattr(args, f"{which}_proposer"), getattr(args, f"{which}_dynamics")
    flag = f"--{which}-dynamics"
    if row.endswith("-wm"):
        row, dynamics, flag = row[:-3], args.pushblocks_world_model, "--pushblocks-world-model"
    probe = gym.make(env_id)
    dims = int(probe.observation_space.shape[0]), int(probe.action_space.shape[0])
    probe.close()
    spec = PolicySpec(model=proposer, env_id=env_id, observation_dim=dims[0], action_dim=dims[1],
                      num_inference_steps=args.inference_steps, action_steps=args.action_steps,
                      options={**budget(row, args.samples), **(options or {})},
                      planner=row, dynamics=None if row in ("oracle", "proposer") else str(dynamics))
    if row == "proposer":
        spec.options = {}
        return TimedProposer(spec)
    if row != "oracle" and not Path(dynamics).is_dir():
        raise FileNotFoundError(f"no dynamics checkpoint at {dynamics}: pass {flag} DIR")
    return DMPCPolicy(spec)


def summary(row: str, successes: int, n: int, steps: float, replan_ms: list[float], **extra: Any) -> dict[str, Any]:
    lo, hi = wilson_interval(successes, n)
    return {"row": row, "successes": successes, "episodes": n, "success_rate": successes / n, "ci_low": lo,
            "ci_high": hi, "mean_steps": steps, "replans": len(replan_ms),
            "replan_ms_median": float(np.median(replan_ms)) if replan_ms else None,
            "replan_ms_p90": float(np.percentile(replan_ms, 90)) if replan_ms else None, **extra}


def success_table(name: str, args: argparse.Namespace, seeds: list[int]) -> list[dict[str, Any]]:
    label, env_id, kwargs, skills = EXPERIMENTS[name]
    rows = []
    for row in args.rows:
        t0 = time.perf_counter()
        policy = make_policy(row, env_id, args)
        report = evaluate(policy, env_id, seeds, policy_name=row, env_kwargs=kwargs, skills=skills)
        rows.append(summary(row, report.successes, report.episodes, report.mean_steps,
                            list(policy.replan_ms), wall_s=time.perf_counter() - t0))
        print(f"{label}: {row} {report.successes}/{report.episodes}", file=sys.stderr, flush=True)
    return rows


def keepout_episodes(seeds_needed: int, radius: float) -> list[tuple[int, dict[str, Any], KeepOut]]:
    """The first ``seeds_needed`` seeds (from 0) whose straight pusher path is at least ``4 * radius`` long,
    with their reach task and a disc of ``radius`` on the path's midpoint."""
    env = gym.make(PUSH_BLOCKS_ID, n_blocks=1)
    out = []
    seed = 0
    while len(out) < seeds_needed:
        task = task_for_seed(env, seed, ["reach"], None)
        obs, _ = env.reset(seed=seed, options={"task": task})
        start, goal = obs[scene.PUSHER_POS].astype(np.float64), scene.target_xy(task, obs)
        if np.linalg.norm(goal - start) >= 4 * radius:
            mid = (start + goal) / 2
            out.append((seed, task, KeepOut("circle", (float(mid[0]), float(mid[1])), (radius,))))
        seed += 1
    env.close()
    return out


def keepout_table(args: argparse.Namespace, n: int) -> dict[str, Any]:
    episodes = keepout_episodes(n, args.keepout_radius)
    zone_option = {"keepout_weight": str(args.keepout_weight), "goal_fraction": str(args.keepout_goal_fraction)}
    cases = [("proposer", "proposer", None)] + [(f"{r} + keep-out", r, zone_option) for r in args.keepout_rows]
    rows = []
    for label, row, options in cases:
        policy = make_policy(row, PUSH_BLOCKS_ID, args, options)
        env = gym.make(PUSH_BLOCKS_ID, n_blocks=1)
        if hasattr(policy, "bind_env"):
            policy.bind_env(env)
        successes = violations = 0
        steps: list[int] = []
        for seed, task, zone in episodes:
            obs, info = env.reset(seed=seed, options={"task": task})
            policy.reset(task, seed)
            if options is not None:
                policy.set_keepouts((zone,))
            violated, done, t = zone.contains(obs[scene.PUSHER_POS]), False, 0
            while not done:
                obs, _, terminated, truncated, info = env.step(policy.act(obs))
                violated |= zone.contains(obs[scene.PUSHER_POS])
                done, t = terminated or truncated, t + 1
            successes += bool(info["is_success"])
            violations += violated
            steps.append(t)
        env.close()
        lo, hi = wilson_interval(violations, len(episodes))
        rows.append(summary(label, successes, len(episodes), float(np.mean(steps)), list(policy.replan_ms),
                            violations=violations, violation_rate=violations / len(episodes),
                            violation_ci=[lo, hi]))
        print(f"keep-out: {label} {successes}/{len(episodes)}, {violations} violations", file=sys.stderr, flush=True)
    return {"seeds": [e[0] for e in episodes], "radius": args.keepout_radius, "rows": rows}


def run_forethought(argv: list[str], threads: int) -> None:
    """Run one ``forethought`` command (printed first), failing loudly."""
    cmd = ["forethought", *argv, *(["--threads", str(threads)] if argv[0] in ("train", "adapt") else [])]
    print("$ " + shlex.join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def shift_table(args: argparse.Namespace, seeds: list[int]) -> dict[str, Any]:
    """The dynamics-change protocol (module docstring, item 3)."""
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    data = work / "shifted.parquet"
    adapted, scratch, recloned = work / "dynamics-adapted", work / "dynamics-scratch", work / "proposer-recloned"
    change = json.loads(args.shift_kwargs)  # e.g. {"gear_scale": 0.1}: overrides the default change
    if not data.exists():
        run_forethought(["collect", "--env", SHIFTED_ID, "--episodes", str(args.shift_episodes), "--noise", "0.1",
                     "--play-fraction", "0.5", "--seed", "500", "--out", str(data),
                     *(["--env-kwargs", json.dumps(change)] if change else [])], args.threads)
    if not adapted.exists():
        run_forethought(["adapt", "--model", str(args.pushblocks_dynamics), "--data", str(data), "--out", str(adapted),
                     "--steps", str(args.adapt_steps), "--lr", str(args.adapt_lr)], args.threads)
    if not scratch.exists():
        run_forethought(["train", "dynamics", "--data", str(data), "--config", "pushblocks", "--out", str(scratch),
                     "--steps", str(args.scratch_steps)], args.threads)
    if not recloned.exists():
        run_forethought(["train", "proposer", "--data", str(data), "--config", "pushblocks", "--out", str(recloned),
                     "--init-from", str(args.pushblocks_proposer), "--steps", str(args.reclone_steps),
                     "--lr", "3e-4", "--warmup-steps", "20"], args.threads)
    cases = [  # label, env, row, proposer, dynamics
        ("nominal env, shipped models", PUSH_BLOCKS_ID, "ssr", None, None),
        ("changed env, shipped models (before)", SHIFTED_ID, "ssr", None, None),
        ("changed env, adapted dynamics (after)", SHIFTED_ID, "ssr", None, adapted),
        ("control: dynamics from scratch on the same data", SHIFTED_ID, "ssr", None, scratch),
        ("control: proposer re-cloned on the same data", SHIFTED_ID, "ssr", recloned, None),
        ("proposer alone, nominal env", PUSH_BLOCKS_ID, "proposer", None, None),
        ("proposer alone, changed env", SHIFTED_ID, "proposer", None, None),
    ]
    rows = []
    for label, env_id, row, proposer, dynamics in cases:
        case_args = argparse.Namespace(**{**vars(args), "pushblocks_proposer": proposer or args.pushblocks_proposer,
                                          "pushblocks_dynamics": dynamics or args.pushblocks_dynamics})
        policy = make_policy(row, PUSH_BLOCKS_ID, case_args)  # same task and observation; only the physics differ
        kwargs = {"n_blocks": 1, **(change if env_id == SHIFTED_ID else {})}
        report = evaluate(policy, env_id, seeds, policy_name=row, env_kwargs=kwargs, skills=["push"])
        rows.append(summary(row, report.successes, report.episodes, report.mean_steps, list(policy.replan_ms),
                            label=label))
        print(f"shift: {label} {report.successes}/{report.episodes}", file=sys.stderr, flush=True)
    nominal, before, after = (rows[i]["success_rate"] for i in range(3))
    lost = nominal - before
    return {"rows": rows, "workdir": str(work), "episodes": args.shift_episodes, "change": change,
            "recovered": (after - before) / lost if lost > 0 else None,
            "recovered_scratch": (rows[3]["success_rate"] - before) / lost if lost > 0 else None,
            "recovered_reclone": (rows[4]["success_rate"] - before) / lost if lost > 0 else None}


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def markdown(results: dict[str, Any]) -> str:
    out = [f"Command: `{results['command']}`", "",
           f"Machine: {results['machine']}; torch {results['torch']}, {results['threads']} thread(s); load average "
           f"(1/5/15 min) {results['load_before']} before, {results['load_after']} after; "
           f"wall {results['wall_s']:.0f} s.",
           f"Budget: {results['samples']} rollouts per replan, {results['inference_steps']} DDIM steps, "
           f"m = {results['action_steps']} actions executed per replan.", ""]
    for name, rows in results["tables"].items():
        out += [f"**{EXPERIMENTS[name][0]}** (seeds {results['seeds']})", "",
                "| row | success | 95% CI (Wilson) | mean steps | replan ms median | replan ms p90 |",
                "|---|---|---|---|---|---|"]
        for r in rows:
            med = "–" if r["replan_ms_median"] is None else f"{r['replan_ms_median']:.0f}"
            p90 = "–" if r["replan_ms_p90"] is None else f"{r['replan_ms_p90']:.0f}"
            out.append(f"| {ROW_LABELS[r['row']]} | {r['successes']}/{r['episodes']} = {r['success_rate']:.2f} | "
                       f"{r['ci_low']:.2f}-{r['ci_high']:.2f} | {r['mean_steps']:.1f} | {med} | {p90} |")
        out.append("")
    if results["keepout"]:
        k = results["keepout"]
        out += [f"**Keep-out** (PushBlocks 1-block reach, disc of radius {k['radius']} m on the straight path; "
                f"the first {len(k['seeds'])} qualifying seeds, {k['seeds'][0]}..{k['seeds'][-1]})", "",
                "| row | violations | 95% CI | success | 95% CI | replan ms median | p90 |",
                "|---|---|---|---|---|---|---|"]
        for r in k["rows"]:
            med = "–" if r["replan_ms_median"] is None else f"{r['replan_ms_median']:.0f}"
            p90 = "–" if r["replan_ms_p90"] is None else f"{r['replan_ms_p90']:.0f}"
            out.append(f"| {r['row']} | {r['violations']}/{r['episodes']} = {r['violation_rate']:.2f} | "
                       f"{r['violation_ci'][0]:.2f}-{r['violation_ci'][1]:.2f} | {r['successes']}/{r['episodes']} = "
                       f"{r['success_rate']:.2f} | {r['ci_low']:.2f}-{r['ci_high']:.2f} | {med} | {p90} |")
    if results.get("shift"):
        k = results["shift"]
        pct = {key: "–" if k[key] is None else f"{100 * k[key]:.0f}%"
               for key in ("recovered", "recovered_scratch", "recovered_reclone")}
        out += ["", f"**Dynamics change** {k['change'] or 'default'} (1-block push, seeds {results['seeds']}; "
                f"{k['episodes']} adaptation episodes in {k['workdir']})", "",
                "| case | success | 95% CI | mean steps | replan ms median |", "|---|---|---|---|---|"]
        for r in k["rows"]:
            med = "–" if r["replan_ms_median"] is None else f"{r['replan_ms_median']:.0f}"
            out.append(f"| {r['label']} | {r['successes']}/{r['episodes']} = {r['success_rate']:.2f} | "
                       f"{r['ci_low']:.2f}-{r['ci_high']:.2f} | {r['mean_steps']:.1f} | {med} |")
        out += ["", f"Lost success recovered: adapted dynamics {pct['recovered']}, dynamics from scratch "
                f"{pct['recovered_scratch']}, proposer re-cloned {pct['recovered_reclone']}."]
    return "\n".join(out)


def main() -> None:
    apply_defaults()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs="+", default=["push1", "keepout"], choices=[*EXPERIMENTS, "keepout", "shift"])
    parser.add_argument("--rows", nargs="+", default=list(DEFAULT_ROWS), choices=ROWS,
                        help="-wm rows plan through the SIGReg world model (--pushblocks-world-model) instead")
    parser.add_argument("--keepout-rows", nargs="+", default=["ssr"],
                        choices=("ssr", "mppi", "oracle", "ssr-wm", "mppi-wm"),
                        help="planners run with the keep-out objective (the proposer alone is always run)")
    parser.add_argument("--pushblocks-proposer", type=Path, default=Path("models/pretrained/proposer-pushblocks"))
    parser.add_argument("--pushblocks-dynamics", type=Path, default=Path("models/pretrained/dynamics-pushblocks"))
    parser.add_argument("--pushblocks-world-model", type=Path, default=Path("models/pretrained/wm-pushblocks-state"))
    parser.add_argument("--reacher-proposer", type=Path, default=Path("models/pretrained/proposer-reacher"))
    parser.add_argument("--reacher-dynamics", type=Path, default=Path("models/pretrained/dynamics-reacher"))
    parser.add_argument("--seeds", default="0-49")
    parser.add_argument("--samples", type=int, default=64, help="rollouts per replan, every planner (default 64)")
    parser.add_argument("--inference-steps", type=int, default=5, help="proposer DDIM steps (default 5)")
    parser.add_argument("--action-steps", type=int, default=8, help="actions executed per replan (default 8)")
    parser.add_argument("--keepout-radius", type=float, default=0.04, help="keep-out disc radius, m (default 0.04)")
    parser.add_argument("--keepout-weight", type=float, default=1.0, help="objective weight per step inside")
    parser.add_argument("--keepout-goal-fraction", type=float, default=0.5,
                        help="keep-out runs: share of goal-conditioned proposals, the rest goal-free (default 0.5)")
    parser.add_argument("--workdir", type=Path, default=Path("runs/shift"),
                        help="shift: where the adaptation data and models go (reused when present)")
    parser.add_argument("--shift-episodes", type=int, default=20, help="shift: episodes collected (default 20)")
    parser.add_argument("--shift-kwargs", default="{}", metavar="JSON",
                        help="shift: env kwargs of the changed env, e.g. '{\"gear_scale\": 0.1}' (default: its defaults)")
    parser.add_argument("--adapt-steps", type=int, default=200, help="shift: `forethought adapt --steps`")
    parser.add_argument("--adapt-lr", type=float, default=3e-5, help="shift: `forethought adapt --lr`")
    parser.add_argument("--scratch-steps", type=int, default=2000, help="shift: from-scratch dynamics steps")
    parser.add_argument("--reclone-steps", type=int, default=300, help="shift: proposer re-clone steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    if args.samples < 16:
        raise SystemExit("--samples must be at least 16 (CEM splits it into 4 rounds of samples / 4)")
    if "reacher" in args.experiments and any(r.endswith("-wm") for r in args.rows):
        raise SystemExit("rows ssr-wm and mppi-wm need a world model: there is none of Reacher-v5")
    torch.set_num_threads(args.threads)
    seeds = parse_seeds(args.seeds)
    t0 = time.perf_counter()
    results: dict[str, Any] = {
        "command": " ".join(shlex.quote(a) for a in ["bench/dmpc.py", *sys.argv[1:]]),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus".strip(),
        "torch": torch.__version__, "threads": args.threads, "seeds": args.seeds, "samples": args.samples,
        "inference_steps": args.inference_steps, "action_steps": args.action_steps, "load_before": load_average(),
        "tables": {name: success_table(name, args, seeds) for name in args.experiments
                   if name not in ("keepout", "shift")},
        "keepout": keepout_table(args, len(seeds)) if "keepout" in args.experiments else None,
        "shift": shift_table(args, seeds) if "shift" in args.experiments else None,
    }
    results.update(load_after=load_average(), wall_s=time.perf_counter() - t0)
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
