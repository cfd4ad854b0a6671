"""Recorded PushBlocks episodes for the ``surprise``, ``physics`` and ``monitor`` sections of
``bench/world_model.py``: play episodes, exact replays from a saved simulator state, and the
perturbations (teleport, recolour, physics shifts)."""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import mujoco
import numpy as np

from forethought.models.world_model.modeling_world_model import LatentWorldModel
from forethought.sim import PUSH_BLOCKS_ID
from forethought.sim.collect import PlayPolicy
from forethought.sim.wrappers import BodyMassScale, GeomFrictionScale
from wm_common import make_env

SIM_STATE = mujoco.mjtState.mjSTATE_INTEGRATION
"""What ``play_episode`` records before every step: enough to replay a step exactly (``replay``)."""


def play_episode(model: LatentWorldModel, seed: int, length: int, wrap: Callable[[gym.Env], gym.Env] | None,
                 event: Callable[[Any], None] | None, event_at: int,
                 sim_states: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Observations ``[length + 1, ...]`` and actions of one play episode (3 blocks); ``wrap`` perturbs
    physics, ``event`` acts at step ``event_at``; the simulator state before every step is appended to
    ``sim_states`` if given."""
    pixels = model.config.obs_type == "pixels"
    env = make_env(pixels, n_blocks=3)
    if wrap is not None:
        env = wrap(env)
    obs, _ = env.reset(seed=seed)
    base = env.unwrapped
    play = PlayPolicy(PUSH_BLOCKS_ID, base.action_space.low.astype(float), base.action_space.high.astype(float),
                      np.random.default_rng([seed, 7]))
    play.reset(obs)
    return run_episode(env, obs, play.act, length, event, event_at, pixels, sim_states)


def run_episode(env: gym.Env, obs: np.ndarray, act: Callable[[np.ndarray], Any], length: int,
                event: Callable[[Any], None] | None, event_at: int | None, pixels: bool,
                sim_states: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Step a reset ``env`` ``length`` times with ``act(obs)`` (unwrapped: past the task's own success),
    ``event`` acting after step ``event_at``; the observations (or renders) ``[length + 1, ...]`` and
    actions. Closes ``env``."""
    base = env.unwrapped
    xs = [base.render() if pixels else obs]
    actions = []
    for t in range(length):
        a = np.asarray(act(obs), np.float32)
        if sim_states is not None:
            sim_states.append(_sim_state(base))
        obs, *_ = base.step(a)
        if event is not None and t + 1 == event_at:
            event(base)
            mujoco.mj_forward(base.model, base.data)
            obs = base._get_obs()
        actions.append(a)
        xs.append(base.render() if pixels else obs)
    env.close()
    return np.stack(xs), np.stack(actions)


def _sim_state(base: Any) -> np.ndarray:
    state = np.empty(mujoco.mj_stateSize(base.model, SIM_STATE))
    mujoco.mj_getState(base.model, base.data, state, SIM_STATE)
    return state


def replay(env: gym.Env, state: np.ndarray, actions: np.ndarray, pixels: bool) -> tuple[Any, np.ndarray]:
    """The observation (or render) and state after ``actions`` from the simulator ``state``, in ``env``'s physics."""
    base = env.unwrapped
    mujoco.mj_setState(base.model, base.data, state, SIM_STATE)
    for a in actions:
        obs, *_ = base.step(a)
    return (base.render() if pixels else obs), obs


def teleport(base: Any) -> None:
    """Move the red block 12 cm towards the table centre along x and y (a mid-episode event)."""
    q = base._block_qpos["red_block"]
    xy = base.data.qpos[q[:2]]
    base.data.qpos[q[:2]] = np.clip(xy + np.where(xy > 0, -0.12, 0.12), -0.25, 0.25)


def recolour(base: Any) -> None:
    """Paint the red block yellow (a mid-episode event only pixels can see)."""
    base.model.geom_rgba[base._block_geom["red_block"]] = (0.95, 0.85, 0.1, 1.0)


PHYSICS_SHIFTS: dict[str, Callable[[gym.Env], gym.Env]] = {"mass x3": lambda e: BodyMassScale(e, 3.0),
                                                             "friction x0.2": lambda e: GeomFrictionScale(e, 0.2)}
"""The physics perturbations (wrappers of the nominal env) of the surprise and physics sections."""
