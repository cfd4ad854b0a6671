"""Planning diagnostics of the latent world model (issue #18): is a push failure the sampler's or the model's?

``python bench/wm_planning.py --only planning-diagnostics`` measures, on the LeWM-protocol 1-block
push (``wm_success``: goal observation 25 expert steps ahead, 50-step budget, 2 cm), with the
state model:

- ``success``: planner sampler (``box``: LeWM's per-step samples over the action box; ``waypoint``:
  smooth block steps drawn from the data's step distribution) x goal cost (``latent``: LeWM's
  ``||z_K - z_goal||^2``; ``blocks``: the distance of the blocks the probe reads out of ``z_K`` to
  where it reads them in ``z_goal``) x model (``learned``: the world
  model, ``--seeds`` episodes at ``--samples`` x ``--iterations`` (300 x 10); ``perfect``: the same planner with every
  candidate rolled out in a simulator copy and encoded by the model, ``SimLatentCEM``), Wilson 95%
  intervals. The perfect rows are the ceiling, measured in the same run; they cost a MuJoCo
  rollout per candidate, so they run fewer episodes (``--perfect-seeds``) at a smaller budget
  (``--perfect-samples`` x ``--perfect-iterations``, default 100 x 5). LeWM executes each 5-block
  plan whole (``--execute-blocks 5``, the default); ``--execute-blocks 1`` replans after every block
  (receding horizon, the plan-step controller's way), the goal cost then averaged over the blocks;
- ``diagnostics``, from each episode's start state, per sampler and cost:
  - predicted vs realised cost of the chosen plan: the model's terminal cost of the plan it picks,
    and the cost of the state the simulator reaches with it (encoded), plus the real block-to-goal
    distance;
  - ranking: Spearman correlation between the model's and the simulator's costs over the
    planner's first-round candidates (``--candidates`` of them);
  - the expert plan: the model's cost of the expert's own 25 actions (which reach the goal) against
    that of the planner's choice (share of seeds where the model prefers its choice), and the
    block displacement the model predicts for the expert's actions (through the probe) against
    the real one;
  - passes: straight passes of the block from the pusher's position (``pass_by_chunks``: lines at
    -1.5 to +1.5 cm from touching, ``collect --graze``'s band, 25 steps): of those that miss
    it in the simulator, the block move the model predicts (a phantom push above 1 cm, the failure
    that leaves the planner idle beside the block), and of those that touch it, predicted against
    real.

The learned rows' planner can be changed for dev sweeps: ``--samples``/``--elites``/``--iterations`` (the
budget), ``--warm-start`` and ``--carry-plan`` (``LatentCEM``'s options); each row records every
episode's best block-goal distance (``best_distance_m``). ``--diagnostic-seeds 0`` skips the diagnostics.

Seeds: reported seeds start at 0 (``--first-seed``); tune on dev seeds (``--first-seed 100``).
``--quick`` (3 seeds, tiny budgets) is a smoke test. At the defaults the section took 3 min 50 s on
one core of a 2-core Xeon (2026-12-05).

Usage::

    OMP_NUM_THREADS=1 python bench/wm_planning.py --only planning-diagnostics --json wm-planning.json
    OMP_NUM_THREADS=1 python bench/wm_planning.py --quick
    OMP_NUM_THREADS=1 python bench/wm_planning.py --state-model models/pretrained/wm-pushblocks-state runs/NEW --samplers waypoint
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from forethought.models.control.oracle import OracleDynamics  # noqa: E402
from forethought.models.control.planners import CEMPlanner, PlannerConfig  # noqa: E402
from forethought.models.world_model.action_sampler import (  # noqa: E402
    PARAM_BOX, PUSHBLOCKS_STEP_QUANTILES, WaypointDynamics, WaypointSampler)
from forethought.models.world_model.latent_objectives import GOAL_COSTS, goal_objective  # noqa: E402
from forethought.models.world_model.modeling_world_model import LatentWorldModel  # noqa: E402
from forethought.models.world_model.probe import LinearProbe  # noqa: E402
from forethought.sim import PUSH_BLOCKS_ID, scene  # noqa: E402
from forethought.sim.experts import make_expert  # noqa: E402
from forethought.sim.push_blocks import sample_task  # noqa: E402

import wm_success  # noqa: E402
from wm_common import PRETRAINED, cpu_name, fmt, make_env, spearman  # noqa: E402

SECTIONS = ("planning-diagnostics",)


class SimLatent:
    """``Dynamics`` of a perfect model in the world model's latent space: ``rollout(obs[1, S], actions[n, F, A])``
    rolls the env-unit actions out in a copy of the live simulator (``OracleDynamics``) and encodes the
    state at each block end -> ``z[1, n, F // frameskip, D]``."""

    n_obs_steps = 1

    def __init__(self, model: LatentWorldModel, env: gym.Env, horizon: int) -> None:
        self.model, self.fs, self.horizon = model, model.config.frameskip, horizon
        self.oracle = OracleDynamics(horizon)
        self.oracle.bind(env)

    @torch.inference_mode()
    def rollout(self, state: Any, actions: Tensor) -> Tensor:
        states = self.oracle.rollout(state, actions)[0]  # [n, F, S]
        return self.model.encode(states[:, self.fs - 1 :: self.fs]).unsqueeze(0)


class SimLatentCEM:
    """``LatentCEM``'s search (same config, sampler and cost) over ``SimLatent``: the perfect-model planner.

    ``plan(obs, goal=..., anchor=...)`` and ``reset(seed)`` as ``LatentCEM``; ``obs`` must be the
    bound env's current state.
    """

    def __init__(self, model: LatentWorldModel, env: gym.Env, sampler: str, iterations: int, execute_blocks: int,
                 samples: int, elites: int, quantiles: Any = PUSHBLOCKS_STEP_QUANTILES, cost: str = "latent",
                 probe: LinearProbe | None = None, param_box: float = PARAM_BOX) -> None:
        c = model.config
        self.model, self.horizon, self.cost, self.probe = model, wm_success.HORIZON, cost, probe
        self.terminal_only = execute_blocks == self.horizon
        self.sim = SimLatent(model, env, self.horizon * c.frameskip)
        waypoints = WaypointSampler.for_model(model, quantiles, param_box) if sampler == "waypoint" else None
        config = PlannerConfig(samples=samples, elites=elites, iterations=iterations, horizon=self.horizon if waypoints
                               else self.horizon * c.frameskip, init_std=1.0 / waypoints.param_box if waypoints else 1.0,
                               min_std=0.05, carry_elites=False, returns="best" if waypoints else "mean",
                               warm_start=False)
        if waypoints:
            self.dynamics: Any = WaypointDynamics(self.sim, waypoints, None, self.horizon)
            low, high = waypoints.box()
        else:
            self.dynamics = self.sim
            low, high = np.asarray(c.action_low, np.float32), np.asarray(c.action_high, np.float32)
        self.planner = CEMPlanner(self.dynamics, low, high, config)

    def reset(self, seed: int) -> None:
        self.planner.reset(seed)

    def plan(self, obs: Any, goal: Any = None, anchor: Any = None) -> np.ndarray:
        objective = goal_objective(self.model, goal, self.cost, self.probe, self.terminal_only)
        if isinstance(self.dynamics, WaypointDynamics):
            self.dynamics.anchor = np.asarray(anchor if anchor is not None else obs[scene.PUSHER_POS], np.float32)
        chunk = self.planner.plan(np.asarray(obs, np.float32)[None], objective)
        if isinstance(self.dynamics, WaypointDynamics):
            return self.dynamics.actions(torch.from_numpy(chunk)[None])[0].numpy()
        return chunk


def expert_actions(env: gym.Env, seed: int) -> np.ndarray:
    """The scripted expert's first ``GOAL_STEPS`` actions ``[T, A]`` on ``wm_success``'s push episode ``seed``."""
    task = sample_task(np.random.default_rng(seed), scene.BLOCK_NAMES[:1], skills=("push",))
    obs, _ = env.reset(seed=seed, options={"task": task, "n_blocks": 1})
    expert = make_expert(PUSH_BLOCKS_ID)
    expert.reset()
    out = []
    for _ in range(wm_success.GOAL_STEPS):
        a = expert.act(obs, task)
        out.append(a)
        obs, _, term, _, _ = env.step(a)
        if term:
            break
    out += [out[-1]] * (wm_success.GOAL_STEPS - len(out))  # hold the last target after an early success
    return np.asarray(out, np.float32)


def first_candidates(planner: Any, n: int, anchor: np.ndarray, generator: torch.Generator) -> Tensor:
    """``n`` env-unit chunks ``[n, F, A]`` from a latent planner's first-round distribution."""
    c = planner.model.config
    if planner.sampler is None:
        z = (torch.randn(n, planner.horizon * c.frameskip, c.action_dim, generator=generator)).clamp(-1, 1)
        return planner.model.processor.unnormalize_actions(z)
    box = planner.sampler.param_box
    p = torch.randn(n, planner.horizon, c.action_dim, generator=generator).clamp(-box, box)
    return planner.sampler.actions(p, anchor)


PASS_CLEAR = 0.001
"""A pass whose real block displacement stays below this (m) missed the block."""
PHANTOM_MOVE = 0.01
"""A missed pass the model predicts moving the block further than this (m) is a phantom push."""
PASS_OFFSETS = np.linspace(-0.015, 0.015, 7)
"""Pass-by lines' distances from the block's centre, relative to touching (m; ``collect``'s graze band)."""


def pass_by_chunks(start: np.ndarray, steps: int) -> np.ndarray:
    """Straight passes of the red block from the pusher's position in ``start``: ``[2 * len(PASS_OFFSETS),
    steps, A]`` env-unit chunks, each on a line passing the block's centre at ``touch + offset`` on either
    side and running 8 cm beyond it; none when the pusher is within 1 cm of the widest pass's offset."""
    pusher = np.asarray(start[scene.PUSHER_POS], np.float64)
    xy = np.asarray(scene.block_xy(start, "red_block"), np.float64)
    d = float(np.linalg.norm(xy - pusher))
    offsets = scene.BLOCK_HALF + scene.PUSHER_RADIUS + PASS_OFFSETS
    if d < offsets.max() + 0.01:
        return np.zeros((0, steps, 2), np.float32)
    base = np.arctan2(*(xy - pusher)[::-1])
    out = []
    for offset in offsets:
        for sign in (-1.0, 1.0):
            heading = base + sign * np.arcsin(offset / d)
            u = np.array([np.cos(heading), np.sin(heading)])
            end = pusher + u * (np.sqrt(d * d - offset * offset) + 0.08)
            out.append(pusher + np.linspace(1.0 / steps, 1.0, steps)[:, None] * (end - pusher))
    lim = scene.WORKSPACE_HALF
    return np.clip(np.asarray(out), -lim, lim).astype(np.float32)


@torch.inference_mode()
def diagnostics(model: LatentWorldModel, probe: LinearProbe, seeds: int, first_seed: int, iterations: int,
                candidates: int, plans: list[tuple[str, str]], param_box: float = PARAM_BOX) -> dict[str, Any]:
    """Per (sampler, cost) in ``plans``: predicted vs realised cost of the chosen first plan (the planner at
    300 x ``iterations``), model/simulator ranking Spearman over first-round candidates, the expert plan's
    score; then the expert's and the passes' block moves (``pass_by_chunks``); over ``seeds`` push episodes."""
    env = make_env(False)
    sim = SimLatent(model, env, wm_success.HORIZON * model.config.frameskip)
    fs = model.config.frameskip
    block = scene.block_slice("red_block")
    bxy = slice(block.start + 1, block.start + 3)
    rows: dict[str, dict[str, list[float]]] = {_key(*p): {} for p in plans}
    expert_rows: dict[str, list[float]] = {}
    passes: dict[str, list[float]] = {"pred": [], "real": []}
    seed, used = first_seed, []
    while len(used) < seeds:
        start, goal, _, goal_xy, moved = wm_success.goal_episode(env, seed, "push", False)
        seed += 1
        if moved < wm_success.MIN_MOVE:
            continue
        used.append(seed - 1)
        expert = torch.from_numpy(expert_actions(env, seed - 1))[None]  # [1, T, A]
        env.reset(seed=seed - 1, options={"task": _task(seed - 1), "n_blocks": 1})  # back to the start state
        assert np.allclose(env.unwrapped._get_obs(), start, atol=1e-6)
        anchor = np.asarray(start[scene.PUSHER_POS], np.float32)
        for name, cost in plans:
            objective = goal_objective(model, goal, cost, probe)
            planner = wm_success.make_planner(model, name, iterations, wm_success.HORIZON, seed=seed - 1, cost=cost,
                                              probe=probe, param_box=param_box)
            chosen = torch.from_numpy(planner.plan(start, goal=goal))[None]  # [1, T, A]
            g = torch.Generator().manual_seed(seed - 1)
            cands = torch.cat([chosen, expert, first_candidates(planner, candidates, anchor, g)])  # [2 + n, T, A]
            state = planner.latent.start(start)
            z_model = planner.latent.rollout(state, model.action_blocks(cands))[0]  # [2 + n, K, D]
            model_cost = objective.cost(z_model, cands).numpy()
            sim_states = sim.oracle.rollout(start, cands)[0]  # [2 + n, T, S]
            sim_cost = objective.cost(model.encode(sim_states[:, fs - 1::fs]), cands).numpy()
            r = rows[_key(name, cost)]
            block_to_goal = float(np.linalg.norm(sim_states[0, -1, bxy].numpy() - goal_xy))
            for key, value in (("pred_cost", model_cost[0]), ("real_cost", sim_cost[0]),
                               ("real_block_to_goal_m", block_to_goal),
                               ("spearman", spearman(model_cost[2:], sim_cost[2:])),
                               ("expert_pred_cost", model_cost[1]), ("expert_real_cost", sim_cost[1]),
                               ("model_prefers_choice", float(model_cost[0] < model_cost[1])),
                               ("step_m_median", float(np.median(np.linalg.norm(np.diff(
                                   np.concatenate([np.broadcast_to(anchor, (len(cands) - 2, 1, 2)),
                                                   cands[2:].numpy()], 1), axis=1), axis=-1))))):
                r.setdefault(key, []).append(float(value))
            if (name, cost) == plans[0]:  # the expert's rollout and the passes do not depend on the planner
                chunks = torch.from_numpy(pass_by_chunks(start, wm_success.HORIZON * fs))
                if len(chunks):
                    z_pass = planner.latent.rollout(state, model.action_blocks(chunks))[0, :, -1]  # [p, D]
                    pred = (probe(z_pass) - probe(state[-1, :-1]))[:, bxy].norm(dim=-1)
                    real = (sim.oracle.rollout(start, chunks)[0, :, -1, bxy] - torch.as_tensor(start[bxy])).norm(dim=-1)
                    passes["pred"] += pred.tolist()
                    passes["real"] += real.tolist()
                pred_block = (probe(z_model[1, -1]) - probe(state[-1, :-1]))[bxy].numpy()
                real_block = (sim_states[1, -1, bxy] - torch.as_tensor(start[bxy])).numpy()
                expert_rows.setdefault("pred_block_move_m", []).append(float(np.linalg.norm(pred_block)))
                expert_rows.setdefault("real_block_move_m", []).append(float(np.linalg.norm(real_block)))
    env.close()
    out: dict[str, Any] = {"seeds": used}
    for key, r in rows.items():
        out[key] = {k: float(np.median(v)) for k, v in r.items()}
        out[key]["model_prefers_choice"] = float(np.mean(r["model_prefers_choice"]))
    out["expert"] = {k: float(np.median(v)) for k, v in expert_rows.items()}
    pred, real = np.asarray(passes["pred"]), np.asarray(passes["real"])
    clear = real < PASS_CLEAR
    out["passes"] = {"passes": int(len(real)), "clear": int(clear.sum()),
                     "clear_pred_move_m": float(np.median(pred[clear])) if clear.any() else None,
                     "clear_phantom_share": float(np.mean(pred[clear] > PHANTOM_MOVE)) if clear.any() else None,
                     "contact_pred_move_m": float(np.median(pred[~clear])) if (~clear).any() else None,
                     "contact_real_move_m": float(np.median(real[~clear])) if (~clear).any() else None}
    return out


def _key(sampler: str, cost: str) -> str:
    return f"{sampler}, {cost}"


def _task(seed: int) -> dict:
    return sample_task(np.random.default_rng(seed), scene.BLOCK_NAMES[:1], skills=("push",))


def planning_diagnostics(model: LatentWorldModel, probe: LinearProbe, seeds: int, perfect_seeds: int,
                         diagnostic_seeds: int, first_seed: int, iterations: int, perfect_samples: int,
                         perfect_iterations: int, candidates: int, samplers: list[str], costs: list[str],
                         execute_blocks: int = wm_success.HORIZON, param_box: float = PARAM_BOX,
                         warm_start: bool = False, carry_plan: bool = False, samples: int = 300,
                         elites: int = 30) -> dict[str, Any]:
    """The section: success of sampler x cost x model (replanning every ``execute_blocks``; the learned
    model's planner with ``warm_start`` / ``carry_plan``), then ``diagnostics`` (none for ``diagnostic_seeds=0``)."""
    plans = [(name, cost) for name in samplers for cost in costs]
    res: dict[str, Any] = {"success": {}}
    for name, cost in plans:
        for kind, n, kwargs in (("learned", seeds, {"iterations": iterations, "warm_start": warm_start,
                                                    "carry_plan": carry_plan, "samples": samples, "elites": elites}),
                                ("perfect", perfect_seeds, {"iterations": perfect_iterations, "perfect": True,
                                                            "samples": perfect_samples,
                                                            "elites": max(1, perfect_samples // 10)})):
            if n == 0:
                continue  # --perfect-seeds 0: no ceiling rows
            t0 = time.perf_counter()
            row = wm_success.success(model, "push", n, execute_blocks=execute_blocks, sampler=name,
                                     first_seed=first_seed, cost=cost, probe=probe, param_box=param_box, **kwargs)
            res["success"][f"{kind}, {_key(name, cost)}"] = {**row, "wall_s": time.perf_counter() - t0}
    if diagnostic_seeds:
        res["diagnostics"] = diagnostics(model, probe, diagnostic_seeds, first_seed, iterations, candidates, plans,
                                         param_box)
    return res


def report(res: dict[str, Any]) -> None:
    """Print the section's markdown tables."""
    print("## Planning diagnostics, LeWM-protocol 1-block push (state model)\n")
    print("| model, sampler, cost | budget | success | Wilson 95% | median best distance (m) | seeds | wall s |\n"
          "|---|---|---|---|---|---|---|")
    for k, r in res["success"].items():
        box = f", box {r['param_box']:g}" if r["sampler"] == "waypoint" else ""
        box += "".join(f", {k.replace('_', ' ')}" for k in ("warm_start", "carry_plan") if r.get(k))
        print(f"| {k} | {r['samples']}x{r['iterations']}, replan every {r['execute_blocks']}{box} | "
              f"{r['wins']}/{r['episodes']} = {fmt(r['success'])} | "
              f"{fmt(r['wilson95'][0])}-{fmt(r['wilson95'][1])} | {fmt(r['median_best_distance_m'], 3)} | "
              f"{r['seeds'][0]}-{r['seeds'][-1]} | {r['wall_s']:.0f} |")
    if "diagnostics" not in res:
        return
    d = res["diagnostics"]
    print(f"\nFirst plan from each start state (medians over seeds {d['seeds'][0]}-{d['seeds'][-1]}; costs in the "
          "row's own units: squared latent distance, or metres):\n")
    print("| sampler, cost | step m (median) | chosen plan: predicted cost | realised cost | realised block-goal m | "
          "Spearman model vs sim | expert: predicted cost | expert: realised cost | model prefers its choice |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for key, r in d.items():
        if key in ("seeds", "expert", "passes"):
            continue
        print(f"| {key} | {fmt(r['step_m_median'], 3)} | {fmt(r['pred_cost'], 3)} | {fmt(r['real_cost'], 3)} | "
              f"{fmt(r['real_block_to_goal_m'], 3)} | {fmt(r['spearman'])} | {fmt(r['expert_pred_cost'], 3)} | "
              f"{fmt(r['expert_real_cost'], 3)} | {fmt(r['model_prefers_choice'])} |")
    e = d["expert"]
    print(f"\nExpert's 25 actions: predicted block move {fmt(e['pred_block_move_m'], 3)} m (probe), "
          f"real {fmt(e['real_block_move_m'], 3)} m (medians).\n")
    p = d["passes"]

    def show(key: str, digits: int = 2) -> str:
        return "–" if p[key] is None else fmt(p[key], digits)

    print(f"Passes of the block (touching distance {PASS_OFFSETS[0] * 100:+.1f} to {PASS_OFFSETS[-1] * 100:+.1f} cm): "
          f"{p['clear']} of {p['passes']} miss it in the simulator; for those the model predicts a median block "
          f"move of {show('clear_pred_move_m', 3)} m, over {PHANTOM_MOVE * 100:g} cm (a phantom push) in "
          f"{show('clear_phantom_share')} of them; passes that touch it: predicted "
          f"{show('contact_pred_move_m', 3)} m, real {show('contact_real_move_m', 3)} m (medians).\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    ap.add_argument("--state-model", type=Path, nargs="+", default=[PRETRAINED / "wm-pushblocks-state"],
                    help="state world-model folders, each measured in turn (the first is the baseline)")
    ap.add_argument("--seeds", type=int, default=50, help="push episodes per learned-model row (default 50)")
    ap.add_argument("--perfect-seeds", type=int, default=20, help="push episodes per perfect-model row (default 20)")
    ap.add_argument("--diagnostic-seeds", type=int, default=20, help="episodes of the diagnostics (default 20)")
    ap.add_argument("--first-seed", type=int, default=0, help="0: reported seeds; 100: dev seeds")
    ap.add_argument("--iterations", type=int, default=10, help="CEM iterations of the learned rows (default 10)")
    ap.add_argument("--samples", type=int, default=300,
                    help="CEM samples of the learned success rows (default 300; the diagnostics keep 300)")
    ap.add_argument("--elites", type=int, default=30,
                    help="CEM elites of the learned success rows (default 30; the diagnostics keep 30)")
    ap.add_argument("--perfect-samples", type=int, default=100)
    ap.add_argument("--perfect-iterations", type=int, default=5)
    ap.add_argument("--candidates", type=int, default=300, help="first-round candidates ranked (default 300)")
    ap.add_argument("--samplers", nargs="+", choices=wm_success.SAMPLERS, default=list(wm_success.SAMPLERS))
    ap.add_argument("--costs", nargs="+", choices=GOAL_COSTS, default=list(GOAL_COSTS),
                    help="goal costs: latent distance (LeWM), the probed blocks' distance, and/or that plus the "
                         "push shaping")
    ap.add_argument("--execute-blocks", type=int, default=wm_success.HORIZON,
                    help="blocks run before replanning in the success rows: 5, LeWM's (the whole plan, scored on "
                         "its final block), or fewer (receding horizon, scored on every block)")
    ap.add_argument("--param-box", type=float, default=PARAM_BOX,
                    help="the waypoint sampler's parameter box in prior stds (default 3; the plan-step policy's is "
                         "1, eval_policy.WAYPOINT_PARAM_BOX)")
    ap.add_argument("--warm-start", action="store_true",
                    help="the learned rows' CEM starts from the previous plan's mean, shifted (LatentCEM's warm_start)")
    ap.add_argument("--carry-plan", action="store_true",
                    help="the learned rows' previous plan, shifted, is a candidate of the next (LatentCEM's carry_plan; "
                         "waypoint sampler)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 3 seeds, tiny budgets")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.carry_plan and "box" in args.samplers:
        ap.error("--carry-plan shifts waypoint parameters: pass --samplers waypoint")
    if args.quick:
        args.seeds = args.perfect_seeds = args.diagnostic_seeds = 3
        args.iterations, args.perfect_samples, args.perfect_iterations, args.candidates = 3, 20, 2, 40
    torch.set_num_threads(args.threads)
    res: dict[str, Any] = {"machine": f"{cpu_name()}, {args.threads} torch threads, load {os.getloadavg()[0]:.1f}",
                           "command": "python bench/wm_planning.py " + " ".join(argv or sys.argv[1:])}
    print(f"# Latent planning diagnostics\n\nMachine: {res['machine']}; command: `{res['command']}`\n")
    if "planning-diagnostics" in args.only:
        res["planning-diagnostics"] = {}
        for path in args.state_model:
            model = LatentWorldModel.from_pretrained(path)
            probe = LinearProbe.load(path, model.config.embed_dim, model.config.obs_dim)
            print(f"### {path}\n")
            res["planning-diagnostics"][str(path)] = planning_diagnostics(
                model, probe, args.seeds, args.perfect_seeds, args.diagnostic_seeds, args.first_seed,
                args.iterations, args.perfect_samples, args.perfect_iterations, args.candidates, args.samplers,
                args.costs, args.execute_blocks, args.param_box, args.warm_start, args.carry_plan, args.samples,
                args.elites)
            report(res["planning-diagnostics"][str(path)])
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
