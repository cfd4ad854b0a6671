"""The ``success`` section of ``bench/world_model.py``: PushBlocks reach and 1-block push with a goal
observation ``GOAL_STEPS`` expert steps ahead (the LeWM protocol), against random actions."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from forethought.models.world_model.latent_planner import LatentCEM, LatentPlanPolicy
from forethought.models.world_model.modeling_world_model import LatentWorldModel
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


def success(model: LatentWorldModel | None, skill: str, seeds: int, iterations: int, execute_blocks: int) -> dict:
    """Success rate with a goal observation 25 expert steps ahead (see ``bench/world_model.py``'s docstring);
    ``model=None`` runs the random-action baseline on the same seeds."""
    pixels = model is not None and model.config.obs_type == "pixels"
    env = make_env(pixels)
    if model is None:
        policy: Any = RandomPolicy(0)
    else:
        planner = LatentCEM(model, iterations=iterations, horizon=HORIZON, terminal_only=execute_blocks == HORIZON)
        policy = LatentPlanPolicy(planner, execute_blocks=execute_blocks)
    wins, used, skipped, final_d = 0, [], 0, []
    seed = 0
    while len(used) < seeds:
        start, goal, task, goal_xy, moved = goal_episode(env, seed, skill, pixels)
        seed += 1
        if moved < MIN_MOVE:
            skipped += 1
            continue
        used.append(seed - 1)
        policy.reset()
        policy.set_goal_observation(goal)
        x, best = start, np.inf
        for _ in range(BUDGET):
            obs, *_ = env.unwrapped.step(policy.act(x))  # unwrapped: keep going after the env's own task succeeds
            x = env.unwrapped.render() if pixels else obs
            best = min(best, float(np.linalg.norm(_tracked_xy(obs, skill) - goal_xy)))
            if best <= TOL:
                break
        wins += best <= TOL
        final_d.append(best)
    env.close()
    lo, hi = wilson(wins, seeds)
    return {"success": wins / seeds, "wilson95": [lo, hi], "episodes": seeds, "seeds": used, "skipped": skipped,
            "median_best_distance_m": float(np.median(final_d)), "iterations": iterations,
            "execute_blocks": execute_blocks}



def report(res: dict[str, dict]) -> None:
    """Print the section's markdown table (``res``: ``success`` per model and task)."""
    print(f"## Success, goal observation {GOAL_STEPS} steps ahead, budget {BUDGET}, tolerance {TOL} m\n")
    print("| model, task | success | Wilson 95% | median best distance (m) | skipped seeds |\n|---|---|---|---|---|")
    for k, r in res.items():
        print(f"| {k} | {fmt(r['success'])} | {fmt(r['wilson95'][0])}-{fmt(r['wilson95'][1])} | "
              f"{fmt(r['median_best_distance_m'], 3)} | {r['skipped']} |")
    print()
