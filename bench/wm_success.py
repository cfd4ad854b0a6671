"""The ``success`` section of ``bench/world_model.py``: PushBlocks reach and 1-block push with a goal
observation ``GOAL_STEPS`` expert steps ahead (the LeWM protocol), against random actions.

The planner is latent CEM (300 samples, 30 elites, ``iterations``, 5 blocks) with one of two
samplers (``SAMPLERS``): ``waypoint``, the default (``action_sampler.WaypointSampler``: smooth block
deltas around the pusher, drawn from the training data's step distribution), or ``box``, LeWM's
per-step samples over the whole action box (the sampler before issue #18). ``perfect=True`` runs
the same planner with candidates rolled out in a simulator copy and encoded by the model
(``wm_planning.SimLatentCEM``): the ceiling a perfect model would reach under the same cost.

Seeds: episodes use seeds ``first_seed, first_seed + 1, ...`` (skipping those whose goal is within
``MIN_MOVE`` of the start). Seeds from 0 are the reported (test) seeds; choices are made on dev
seeds from ``DEV_FIRST_SEED``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from forethought.models.world_model.action_sampler import PARAM_BOX, PUSHBLOCKS_STEP_QUANTILES, WaypointSampler
from forethought.models.world_model.latent_planner import LatentCEM, LatentPlanPolicy
from forethought.models.world_model.modeling_world_model import LatentWorldModel
from forethought.models.world_model.probe import LinearProbe
from forethought.sim import PUSH_BLOCKS_ID, scene
from forethought.sim.experts import make_expert
from forethought.sim.push_blocks import sample_task
from wm_common import fmt, make_env, wilson

GOAL_STEPS = 25
"""Expert steps from the reset to the goal observation."""
BUDGET = 50
"""Env steps the planner gets to reach the goal."""
HORIZON = 5
"""Plan horizon in action blocks (25 env steps)."""
TOL = 0.02
"""Success tolerance (m) on the pusher (reach) or block (push) position."""
MIN_MOVE = 0.03
"""Seeds whose goal position is within this distance (m) of the start are skipped."""
SAMPLERS = ("waypoint", "box")
"""The latent planner's candidate sampler: smooth block deltas (default) or LeWM's per-step box samples."""
DEV_FIRST_SEED = 100
"""Dev seeds (tuning) start here; the reported seeds start at 0."""


def goal_episode(env: gym.Env, seed: int, skill: str, pixels: bool) -> tuple[Any, Any, dict, np.ndarray, float]:
    """Reset, run the expert ``GOAL_STEPS`` steps; return (start obs, goal obs, task, goal xy, moved)."""
    rng = np.random.default_rng(seed)
    task = sample_task(rng, scene.BLOCK_NAMES[:1], skills=(skill,))
    obs, _ = env.reset(seed=seed, options={"task": task, "n_blocks": 1})
    expert = make_expert(PUSH_BLOCKS_ID)
    expert.reset()
    for _ in range(GOAL_STEPS):
        obs, _, term, _, _ = env.step(expert.act(obs, task))
        if term:
            break
    goal = env.unwrapped.render() if pixels else obs.copy()
    goal_xy = _tracked_xy(obs, skill)
    start_obs, _ = env.reset(seed=seed, options={"task": task, "n_blocks": 1})
    moved = float(np.linalg.norm(goal_xy - _tracked_xy(start_obs, skill)))
    start = env.unwrapped.render() if pixels else start_obs
    return start, goal, task, goal_xy, moved


def _tracked_xy(obs: np.ndarray, skill: str) -> np.ndarray:
    return np.asarray(obs[scene.PUSHER_POS] if skill == "reach" else scene.block_xy(obs, "red_block"), float)


class RandomPolicy:
    """Baseline: uniform random actions in the box, ignoring the goal."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        pass

    def set_goal_observation(self, goal: Any) -> None:
        pass

    def act(self, obs: Any) -> np.ndarray:
        return self.rng.uniform(-scene.WORKSPACE_HALF, scene.WORKSPACE_HALF, 2).astype(np.float32)


def make_planner(model: LatentWorldModel, sampler: str, iterations: int, execute_blocks: int, samples: int = 300,
                 elites: int = 30, quantiles: Any = PUSHBLOCKS_STEP_QUANTILES, seed: int = 0, cost: str = "latent",
                 probe: LinearProbe | None = None, param_box: float = PARAM_BOX, warm_start: bool = False,
                 carry_plan: bool = False) -> LatentCEM:
    """The LeWM-protocol latent CEM with ``sampler`` (``SAMPLERS``; the waypoint sampler searching
    ``param_box`` prior stds) and goal ``cost`` (``GOAL_COSTS``); ``warm_start`` and ``carry_plan`` as
    ``LatentCEM``'s (off: LeWM's), shifting by ``execute_blocks``."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler {sampler!r} is not one of {list(SAMPLERS)}")
    waypoints = WaypointSampler.for_model(model, quantiles, param_box) if sampler == "waypoint" else None
    return LatentCEM(model, samples=samples, elites=elites, iterations=iterations, horizon=HORIZON,
                     terminal_only=execute_blocks == HORIZON, seed=seed, sampler=waypoints, goal_cost=cost,
                     probe=probe, warm_start=warm_start, shift_blocks=execute_blocks, carry_plan=carry_plan)


def success(model: LatentWorldModel | None, skill: str, seeds: int, iterations: int, execute_blocks: int,
            sampler: str = "waypoint", first_seed: int = 0, perfect: bool = False, samples: int = 300,
            elites: int = 30, quantiles: Any = PUSHBLOCKS_STEP_QUANTILES, cost: str = "latent",
            probe: LinearProbe | None = None, param_box: float = PARAM_BOX, warm_start: bool = False,
            carry_plan: bool = False) -> dict:
    """Success rate with a goal observation 25 expert steps ahead (see ``bench/world_model.py``'s docstring);
    ``model=None`` runs the random-action baseline on the same seeds; ``perfect`` rolls the planner's
    candidates out in a simulator copy (a state model's encoder scores them); ``cost``: how the goal
    is scored (``GOAL_COSTS``; ``"blocks"`` reads the blocks through ``probe``); ``warm_start`` and
    ``carry_plan``: ``make_planner``'s (learned model only)."""
    pixels = model is not None and model.config.obs_type == "pixels"
    if perfect and (model is None or pixels):
        raise ValueError("the perfect-model planner needs a state model (it encodes simulated states)")
    env = make_env(pixels)
    if model is None:
        policy: Any = RandomPolicy(0)
    else:
        if perfect and (warm_start or carry_plan):
            raise ValueError("warm_start and carry_plan are options of the learned model's planner")
        if perfect:
            from wm_planning import SimLatentCEM  # noqa: PLC0415  (wm_planning imports this module)
            planner: Any = SimLatentCEM(model, env, sampler, iterations, execute_blocks, samples, elites, quantiles,
                                        cost, probe, param_box)
        else:
            planner = make_planner(model, sampler, iterations, execute_blocks, samples, elites, quantiles, cost=cost,
                                   probe=probe, param_box=param_box, warm_start=warm_start, carry_plan=carry_plan)
        policy = LatentPlanPolicy(planner, execute_blocks=execute_blocks)
    wins, used, skipped, final_d = 0, [], 0, []
    seed = first_seed
    while len(used) < seeds:
        start, goal, task, goal_xy, moved = goal_episode(env, seed, skill, pixels)
        seed += 1
        if moved < MIN_MOVE:
            skipped += 1
            continue
        used.append(seed - 1)
        policy.reset()
        if model is not None:
            policy.planner.reset(seed - 1)
        policy.set_goal_observation(goal)
        x, best = start, np.inf
        pusher = np.asarray(env.unwrapped._get_obs()[scene.PUSHER_POS])
        for _ in range(BUDGET):
            action = policy.act(x) if model is None else policy.act(x, anchor=pusher)
            obs, *_ = env.unwrapped.step(action)  # unwrapped: keep going after the env's own task succeeds
            x, pusher = (env.unwrapped.render() if pixels else obs), np.asarray(obs[scene.PUSHER_POS])
            best = min(best, float(np.linalg.norm(_tracked_xy(obs, skill) - goal_xy)))
            if best <= TOL:
                break
        wins += best <= TOL
        final_d.append(best)
    env.close()
    lo, hi = wilson(wins, seeds)
    return {"success": wins / seeds, "wins": wins, "wilson95": [lo, hi], "episodes": seeds, "seeds": used,
            "skipped": skipped, "median_best_distance_m": float(np.median(final_d)), "iterations": iterations,
            "samples": samples, "elites": elites, "execute_blocks": execute_blocks, "sampler": sampler, "perfect": perfect,
            "cost": cost, "param_box": param_box, "warm_start": warm_start, "carry_plan": carry_plan,
            "best_distance_m": [float(d) for d in final_d]}


def report(res: dict[str, dict]) -> None:
    """Print the section's markdown table (``res``: ``success`` per model and task)."""
    print(f"## Success, goal observation {GOAL_STEPS} steps ahead, budget {BUDGET}, tolerance {TOL} m\n")
    print("| model, task | sampler | success | Wilson 95% | median best distance (m) | seeds (skipped) |\n"
          "|---|---|---|---|---|---|")
    for k, r in res.items():
        print(f"| {k} | {r.get('sampler', '')} | {r['wins']}/{r['episodes']} = {fmt(r['success'])} | "
              f"{fmt(r['wilson95'][0])}-{fmt(r['wilson95'][1])} | {fmt(r['median_best_distance_m'], 3)} | "
              f"{r['seeds'][0]}-{r['seeds'][-1]} ({r['skipped']}) |")
    print()
