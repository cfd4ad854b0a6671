"""``forethought collect``: record scripted-expert and play episodes into a parquet data set.

Examples::

    # 1-3 blocks, every task, 10 % noisy expert actions, a fifth of the episodes play
    forethought collect --env forethought/PushBlocks-v0 --episodes 200 --noise 0.1 \\
        --play-fraction 0.2 --seed 0 --out data/pushblocks.parquet

    # always two blocks; or any env with constructor arguments
    forethought collect --env forethought/PushBlocks-v0 --episodes 50 --n-blocks 2 --out data/pb2.parquet
    forethought collect --env forethought/Reacher-v5 --episodes 100 --noise 0.05 --out data/reacher.parquet \\
        --env-kwargs '{"reward_control_weight": 0.1}'

The file format is described in ``forethought.sim.dataset``; the file is written atomically, so
an interrupted run leaves nothing behind (and an existing file at ``--out`` untouched).

How episodes are made (all of it reproducible from ``--seed S``):

- **Env seed.** Episode ``i`` (0-based) resets the env with ``seed = S + i``. The env draws the
  start layout and, unless the env is told otherwise, the task (for PushBlocks: push a block to a
  region or next to another block, or reach a region or point).
- **Episode choices.** One ``numpy.random.default_rng(S)`` draws, up front and for all episodes,
  whether episode ``i`` is *play* (probability ``--play-fraction``) and, for PushBlocks without
  ``--n-blocks``, its number of blocks (uniform in 1..3). Noise and play waypoints of episode
  ``i`` come from ``default_rng([S, i])``, so one episode can be regenerated on its own.
- **Expert episodes** (``source = "expert"``) run ``make_expert(env_id)`` with epsilon-noise:
  ``a = clip(expert(obs, task) + N(0, sigma^2), low, high)`` with
  ``sigma = EPS * (high - low) / 2`` per action dimension, i.e. ``--noise`` is the noise std as a
  fraction of half the action range (0.1 on PushBlocks' +-0.27 m box is 2.7 cm). The noisy
  action is executed and stored as ``action``; the expert's own action in the state reached is
  stored as ``expert_action``. Imitation trains on the latter, as DART does (Laskey et al.
  2017): the noise makes the data visit off-course states, the labels say how to recover.
- **Disturbances** (``--disturb P``): each expert episode, with probability ``P``, hands the
  executed action to a play segment (see below) for 4-12 steps, starting at a step drawn in
  0..40, while ``expert_action`` keeps recording the expert's choice. Small noise never knocks a
  block the wrong way or leaves the pusher on the far side of it; these segments do, and the
  labels show the recovery (the scripted expert re-plans from any state). Their draws come from
  ``default_rng([S, i, 1])``, so ``--disturb 0`` leaves every other draw as it was.
- **Play episodes** (``source = "play"``) ignore the task: the action follows random waypoints in
  the action box, moving linearly to each over 3-12 steps and then holding it for 0-4 steps, so
  the data covers free motion, contacts and states no expert visits. On PushBlocks the first
  waypoint is the pusher's own position and half the waypoints go through a block (its centre
  plus an overshoot of 3-8 cm), so many play episodes push blocks around.
- **Shoves** (``--shove P``): each play episode, with probability ``P`` (drawn from
  ``default_rng([S, i, 2])``), shoves: half its segments drive a block into its nearest neighbour
  (a waypoint 5-8 cm behind the first block on the line between the two, then one 2-8 cm beyond
  the second), so block-on-block contacts, rare otherwise, fill the data. ``--shove 0`` leaves
  every other draw as it was.
- **Grazes** (``--graze P``): each play episode, with probability ``P`` (drawn from
  ``default_rng([S, i, 3])``), grazes: half its segments that do not shove pass a block sideways,
  from a waypoint 5-10 cm before it to one 5-10 cm beyond, on a line of random heading whose
  distance from the block's centre is drawn within 1.5 cm (``GRAZE_BAND``) of touching
  (``scene.BLOCK_HALF + scene.PUSHER_RADIUS``), so near misses and glancing contacts sit side by side
  in the data: the contact boundary a world model must learn not to imagine pushes across (issue
  #18). The band holds for the commanded line: the way to its first waypoint is not steered around
  the block (some grazes start with a push), the pusher lags its target by a few centimetres at
  speed, and near the table's edge the clip to the action box moves the line. ``--graze 0`` leaves
  every other draw as it was.
- Episodes end when the env terminates (PushBlocks: task achieved) or truncates (its time limit,
  or ``--max-steps``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

import forethought.sim.envs  # noqa: F401  (registers the forethought/* envs)
from forethought.sim import PUSH_BLOCKS_ID, REACHER_ID, scene, task_env_id
from forethought.sim.dataset import Episode, write_dataset
from forethought.cli_args import help_from_docstring, json_object, run_writer
from forethought.sim.experts import make_expert

# The tables below are keyed by ``task_env_id``: an env with another's tasks uses its entries.
N_BLOCKS_RANGE: dict[str, tuple[int, int]] = {PUSH_BLOCKS_ID: (1, len(scene.BLOCK_NAMES))}
"""Envs whose ``reset(options={"n_blocks": k})`` picks the number of blocks, with the range drawn from."""

OBS_LABELS: dict[str, tuple[str, ...]] = {
    PUSH_BLOCKS_ID: scene.OBS_LABELS,
    REACHER_ID: (
        "cos_q0", "cos_q1", "sin_q0", "sin_q1", "goal_x", "goal_y",
        "dq0", "dq1", "tip_minus_goal_x", "tip_minus_goal_y",
    ),
}
"""Names of the observation entries, stored in the data set's metadata (an env may also expose ``obs_labels``)."""


# --------------------------------------------------------------------------------------------
# Play: random smooth exploration


def _pushblocks_play_start(obs: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(obs[scene.PUSHER_POS], np.float64), low, high)


def _pushblocks_play_waypoint(
    obs: np.ndarray, rng: np.random.Generator, low: np.ndarray, high: np.ndarray
) -> np.ndarray | None:
    """Half the time, a point beyond a present block (so the pusher runs into it); else ``None``."""
    present = scene.present_blocks(obs)
    if not present or rng.random() < 0.5:
        return None
    b = present[int(rng.integers(len(present)))]
    xy = np.asarray(scene.block_xy(obs, b), np.float64)
    pusher = np.asarray(obs[scene.PUSHER_POS], np.float64)
    direction = xy - pusher
    norm = float(np.linalg.norm(direction))
    direction = direction / norm if norm > 1e-6 else rng.normal(size=2) / np.sqrt(2)
    return np.clip(xy + direction * rng.uniform(0.03, 0.08), low, high)


def _pushblocks_shove_path(
    obs: np.ndarray, rng: np.random.Generator, low: np.ndarray, high: np.ndarray
) -> list[np.ndarray] | None:
    """Waypoints that drive a present block into its nearest neighbour: behind the first block on
    the line between the two, then beyond the second; ``None`` with fewer than two blocks."""
    present = scene.present_blocks(obs)
    if len(present) < 2:
        return None
    first = present[int(rng.integers(len(present)))]
    a = np.asarray(scene.block_xy(obs, first), np.float64)
    b = min((np.asarray(scene.block_xy(obs, o), np.float64) for o in present if o != first),
            key=lambda xy: float(np.linalg.norm(xy - a)))
    u = (b - a) / max(float(np.linalg.norm(b - a)), 1e-6)
    return [np.clip(a - u * rng.uniform(0.05, 0.08), low, high), np.clip(b + u * rng.uniform(0.02, 0.08), low, high)]


GRAZE_BAND = 0.015
"""Half-width (m) of the band of a graze's offsets from a block's centre around the touching distance."""


def _pushblocks_graze_path(
    obs: np.ndarray, rng: np.random.Generator, low: np.ndarray, high: np.ndarray
) -> list[np.ndarray] | None:
    """Waypoints that pass a present block sideways: 5-10 cm before it, then 5-10 cm beyond, on a line of
    random heading at a distance from its centre within ``GRAZE_BAND`` of touching; ``None`` without blocks."""
    present = scene.present_blocks(obs)
    if not present:
        return None
    xy = np.asarray(scene.block_xy(obs, present[int(rng.integers(len(present)))]), np.float64)
    heading = rng.uniform(0.0, 2.0 * np.pi)
    u = np.array([np.cos(heading), np.sin(heading)])
    side = np.array([-u[1], u[0]]) * rng.choice([-1.0, 1.0])
    offset = scene.BLOCK_HALF + scene.PUSHER_RADIUS + rng.uniform(-GRAZE_BAND, GRAZE_BAND)
    return [np.clip(xy + side * offset - u * rng.uniform(0.05, 0.10), low, high),
            np.clip(xy + side * offset + u * rng.uniform(0.05, 0.10), low, high)]


# env id -> shove path sampler (``--shove``) and graze path sampler (``--graze``)
SHOVE_HOOKS: dict[str, Callable[..., list[np.ndarray] | None]] = {PUSH_BLOCKS_ID: _pushblocks_shove_path}
GRAZE_HOOKS: dict[str, Callable[..., list[np.ndarray] | None]] = {PUSH_BLOCKS_ID: _pushblocks_graze_path}

# env id -> (first waypoint from the reset observation, optional env-specific waypoint sampler)
PLAY_HOOKS: dict[str, tuple[Callable[..., np.ndarray], Callable[..., np.ndarray | None]]] = {
    PUSH_BLOCKS_ID: (_pushblocks_play_start, _pushblocks_play_waypoint),
}


class PlayPolicy:
    """Random smooth exploration in a Box action space.

    Moves linearly from the current waypoint to a new one over ``move_steps`` steps, then holds it
    for ``hold_steps``; waypoints are uniform in the box unless the env has a hook in
    ``PLAY_HOOKS``. With ``shove`` (envs in ``SHOVE_HOOKS``), half the new segments start a shove
    path (module docstring, "Shoves") instead; with ``graze`` (envs in ``GRAZE_HOOKS``), half of
    those that do not shove start a graze path ("Grazes").
    """

    def __init__(
        self,
        env_id: str,
        low: np.ndarray,
        high: np.ndarray,
        rng: np.random.Generator,
        move_steps: tuple[int, int] = (3, 12),
        hold_steps: tuple[int, int] = (0, 4),
        shove: bool = False,
        graze: bool = False,
    ) -> None:
        self.low, self.high = np.asarray(low, np.float64), np.asarray(high, np.float64)
        self._shove_fn = SHOVE_HOOKS.get(task_env_id(env_id)) if shove else None
        self._graze_fn = GRAZE_HOOKS.get(task_env_id(env_id)) if graze else None
        self._path: list[np.ndarray] = []  # the rest of a shove or graze path
        self.rng = rng
        self.move_steps, self.hold_steps = move_steps, hold_steps
        self._start_fn, self._waypoint_fn = PLAY_HOOKS.get(task_env_id(env_id), (None, None))
        self._plan: list[np.ndarray] = []
        self._last: np.ndarray | None = None

    def reset(self, obs: np.ndarray) -> None:
        self._plan, self._path = [], []
        if self._start_fn is not None:
            self._last = self._start_fn(obs, self.low, self.high)
        else:
            self._last = self.rng.uniform(self.low, self.high)

    def _new_segment(self, obs: np.ndarray) -> None:
        if self._shove_fn is not None and not self._path and self.rng.random() < 0.5:
            self._path = self._shove_fn(obs, self.rng, self.low, self.high) or []
        if self._graze_fn is not None and not self._path and self.rng.random() < 0.5:
            self._path = self._graze_fn(obs, self.rng, self.low, self.high) or []
        if self._path:
            target = self._path.pop(0)
        else:
            target = self._waypoint_fn(obs, self.rng, self.low, self.high) if self._waypoint_fn else None
        if target is None:
            target = self.rng.uniform(self.low, self.high)
        n = int(self.rng.integers(self.move_steps[0], self.move_steps[1] + 1))
        h = int(self.rng.integers(self.hold_steps[0], self.hold_steps[1] + 1))
        fractions = np.arange(1, n + 1) / n
        self._plan = [self._last + f * (target - self._last) for f in fractions] + [target] * h

    def act(self, obs: np.ndarray, task: Mapping[str, Any] | None = None) -> np.ndarray:
        if self._last is None:
            self.reset(obs)
        if not self._plan:
            self._new_segment(obs)
        self._last = self._plan.pop(0)
        return self._last.copy()


class _Disturbance:
    """With probability ``p``, replaces the executed action by a play segment for 4-12 steps,
    starting at a step drawn in 0..40 (module docstring, "Disturbances")."""

    def __init__(self, env_id: str, low: np.ndarray, high: np.ndarray, rng: np.random.Generator, p: float) -> None:
        active = p > 0 and rng.random() < p
        self.start = int(rng.integers(0, 41)) if active else -1
        self.stop = self.start + int(rng.integers(4, 13)) if active else -1
        self.play = PlayPolicy(env_id, low, high, rng, move_steps=(3, 6), hold_steps=(0, 1)) if active else None
        self.t = 0

    def override(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        t, self.t = self.t, self.t + 1
        if self.play is None or not self.start <= t < self.stop:
            return action
        if t == self.start:
            self.play.reset(obs)
        return self.play.act(obs)


# --------------------------------------------------------------------------------------------
# Collection


def _command(env_id: str, episodes: int, noise: float, play_fraction: float, seed: int, out: Path,
             env_kwargs: Mapping[str, Any] | None, n_blocks: int | None, max_steps: int | None,
             disturb: float = 0.0, shove: float = 0.0, graze: float = 0.0) -> str:
    """The ``forethought collect`` command line that reproduces a call."""
    argv = ["forethought", "collect", "--env", env_id, "--episodes", str(episodes), "--noise", repr(float(noise)),
            "--play-fraction", repr(float(play_fraction)), "--seed", str(seed), "--out", str(out)]
    if disturb > 0:
        argv += ["--disturb", repr(float(disturb))]
    if shove > 0:
        argv += ["--shove", repr(float(shove))]
    if graze > 0:
        argv += ["--graze", repr(float(graze))]
    if n_blocks is not None:
        argv += ["--n-blocks", str(n_blocks)]
    if env_kwargs:
        argv += ["--env-kwargs", json.dumps(dict(env_kwargs), sort_keys=True)]
    if max_steps is not None:
        argv += ["--max-steps", str(max_steps)]
    return shlex.join(argv)


def _record_episode(
    env: gym.Env,
    obs: np.ndarray,
    policy: Callable[[np.ndarray, Mapping[str, Any]], tuple[np.ndarray, np.ndarray]],
    low: np.ndarray,
    high: np.ndarray,
    limit: int,
    source: str,
) -> Episode:
    """Step ``env`` from the reset observation ``obs`` until it terminates or truncates, or for
    ``limit`` steps (the last then marked truncated).

    ``policy(obs, task) -> (executed, label)``: the action sent to ``env.step`` and the noise-free
    action recorded as ``expert_action`` (DART labels); both are clipped to ``[low, high]``.
    """
    observations, actions, labels, rewards, terms, truncs, successes, tasks = [obs], [], [], [], [], [], [], []
    task: dict[str, Any] = {}
    dtype = env.action_space.dtype
    for t in range(limit):
        current = getattr(env.unwrapped, "task", None) or {}
        if current != task:  # keep one dict object per distinct task (cheap to encode)
            task = dict(current)
        executed, label = policy(obs, task)
        a = np.clip(executed, low, high).astype(dtype)
        obs, reward, terminated, truncated, info = env.step(a)
        observations.append(obs)
        actions.append(a)
        labels.append(np.clip(label, low, high))
        rewards.append(reward)
        terms.append(terminated)
        truncs.append(truncated or (t == limit - 1 and not terminated))
        successes.append(bool(info.get("is_success", False)))
        tasks.append(task)
        if terminated or truncated:
            break
    return Episode(
        observation=np.asarray(observations, np.float32),
        action=np.asarray(actions, np.float32),
        expert_action=np.asarray(labels, np.float32),
        reward=np.asarray(rewards, np.float32),
        terminated=terms,
        truncated=truncs,
        is_success=successes,
        task=tasks,
        source=source,
    )


def collect(
    env_id: str,
    episodes: int,
    noise: float,
    play_fraction: float,
    seed: int,
    out: str | Path,
    env_kwargs: Mapping[str, Any] | None = None,
    progress: bool = True,
    *,
    n_blocks: int | None = None,
    max_steps: int | None = None,
    disturb: float = 0.0,
    shove: float = 0.0,
    graze: float = 0.0,
) -> Path:
    """Record ``episodes`` episodes of ``env_id`` into the parquet file ``out`` and return its path.

    Args:
        env_id: a registered gymnasium id with a scripted expert (``forethought.sim.experts``).
        episodes: number of episodes (>= 1).
        noise: expert action noise std as a fraction of half the action range (>= 0).
        play_fraction: probability that an episode is play instead of expert (0..1).
        seed: episode ``i`` resets the env with ``seed + i``; see the module docstring.
        out: the ``.parquet`` file to write (atomically; parents are created).
        env_kwargs: keyword arguments for ``gymnasium.make``.
        progress: show a tqdm bar and print a summary.
        n_blocks: PushBlocks only: blocks per episode; ``None`` draws 1..3 per episode (unless
            ``env_kwargs`` fixes ``n_blocks``).
        max_steps: cut episodes after this many steps (marked truncated); default: the env's limit.
        disturb: probability that an expert episode gets one play-driven disturbance (0..1).
        shove: probability that a play episode shoves blocks into each other (0..1).
        graze: probability that a play episode passes blocks sideways, near touching (0..1).
    """
    if not isinstance(episodes, (int, np.integer)) or episodes < 1:
        raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite fraction >= 0 of half the action range, got {noise!r}")
    if not (0.0 <= play_fraction <= 1.0):
        raise ValueError(f"play_fraction must lie in [0, 1], got {play_fraction!r}")
    if not (0.0 <= disturb <= 1.0):
        raise ValueError(f"disturb must lie in [0, 1], got {disturb!r}")
    for name, p in (("shove", shove), ("graze", graze)):
        if not (0.0 <= p <= 1.0):
            raise ValueError(f"{name} must lie in [0, 1], got {p!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
    env_kwargs = dict(env_kwargs or {})
    out = Path(out)
    if out.suffix != ".parquet":
        raise ValueError(f"--out must name a .parquet file, got {str(out)!r}")

    # n_blocks: fixed, from env_kwargs, or drawn per episode
    n_range = N_BLOCKS_RANGE.get(task_env_id(env_id))
    if n_blocks is not None:
        if n_range is None:
            raise ValueError(f"--n-blocks applies to {sorted(N_BLOCKS_RANGE)} only, not {env_id!r}")
        if not n_range[0] <= n_blocks <= n_range[1]:
            raise ValueError(f"n_blocks must lie in {n_range[0]}..{n_range[1]}, got {n_blocks!r}")
        if "n_blocks" in env_kwargs and env_kwargs["n_blocks"] != n_blocks:
            raise ValueError(f"--n-blocks {n_blocks} contradicts env_kwargs n_blocks={env_kwargs['n_blocks']}")
    draw_n_blocks = n_range is not None and n_blocks is None and "n_blocks" not in env_kwargs

    # Episode-level choices, drawn up front so they do not depend on episode lengths.
    rng = np.random.default_rng(seed)
    is_play = rng.random(episodes) < play_fraction
    n_per_episode = rng.integers(n_range[0], n_range[1] + 1, size=episodes) if draw_n_blocks else None

    expert = make_expert(env_id) if not is_play.all() else None  # play-only needs no expert
    try:
        env = gym.make(env_id, **env_kwargs)
    except (gym.error.Error, TypeError) as e:
        raise ValueError(f"cannot make env {env_id!r} with env_kwargs {env_kwargs}: {e}") from e
    space = env.action_space
    limit = max_steps or (env.spec.max_episode_steps if env.spec else None)
    problem = None
    if not isinstance(space, gym.spaces.Box):
        problem = f"collect needs a Box action space, {env_id!r} has {space}"
    elif not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        problem = f"collect needs a bounded action space, {env_id!r} has {space}"
    elif limit is None:
        problem = f"{env_id!r} has no time limit: pass max_steps"
    if problem:
        env.close()
        raise ValueError(problem)
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    sigma = noise * (high - low) / 2.0

    recorded: list[Episode] = []
    t0 = time.perf_counter()
    bar = tqdm(total=episodes, desc=f"collect {env_id}", unit="ep", disable=not progress)
    try:
        for i in range(episodes):
            ep_rng = np.random.default_rng([seed, i])
            options: dict[str, Any] = {}
            if n_per_episode is not None:
                options["n_blocks"] = int(n_per_episode[i])
            elif n_blocks is not None:
                options["n_blocks"] = int(n_blocks)
            obs, info = env.reset(seed=int(seed + i), options=options or None)
            if is_play[i]:
                shoving = shove > 0 and np.random.default_rng([seed, i, 2]).random() < shove
                grazing = graze > 0 and np.random.default_rng([seed, i, 3]).random() < graze
                play = PlayPolicy(env_id, low, high, ep_rng, shove=shoving, graze=grazing)
                play.reset(obs)

                def policy(o: np.ndarray, task: Mapping[str, Any], play: PlayPolicy = play) -> tuple[np.ndarray, np.ndarray]:
                    a = play.act(o, task)
                    return a, a
            else:
                expert.reset()
                disturbance = _Disturbance(env_id, low, high, np.random.default_rng([seed, i, 1]), disturb)

                def policy(o: np.ndarray, task: Mapping[str, Any], rng: np.random.Generator = ep_rng,
                           disturbance: _Disturbance = disturbance) -> tuple[np.ndarray, np.ndarray]:
                    a = np.asarray(expert.act(o, task), np.float64)
                    executed = a + rng.normal(size=a.shape) * sigma if noise > 0 else a
                    return disturbance.override(o, executed), a

            recorded.append(_record_episode(env, obs, policy, low, high, limit, "play" if is_play[i] else "expert"))
            bar.update(1)
    finally:
        bar.close()
        env.close()
    elapsed = time.perf_counter() - t0

    steps = sum(len(e) for e in recorded)
    if draw_n_blocks:
        meta_n_blocks: int | list[int] | None = [n_range[0], n_range[1]]  # drawn per episode in this range
    elif n_range is not None:
        meta_n_blocks = n_blocks
        if meta_n_blocks is None:
            meta_n_blocks = env_kwargs.get("n_blocks", getattr(env.unwrapped, "n_blocks", None))
    else:
        meta_n_blocks = None
    expert_eps = [e for e in recorded if e.source == "expert"]
    stats = {
        "expert_episodes": len(expert_eps),
        "play_episodes": len(recorded) - len(expert_eps),
        "expert_success_rate": (sum(e.success for e in expert_eps) / len(expert_eps)) if expert_eps else None,
        "mean_episode_length": steps / len(recorded),
    }
    metadata = {
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "seed": int(seed),
        "noise": float(noise),
        "play_fraction": float(play_fraction),
        "disturb": float(disturb),
        "shove": float(shove),
        "graze": float(graze),
        "n_blocks": meta_n_blocks,
        "max_steps": int(limit),
        "obs_labels": list(getattr(env.unwrapped, "obs_labels", None) or OBS_LABELS.get(task_env_id(env_id)) or [])
        or None,
        "action_low": low.tolist(),
        "action_high": high.tolist(),
        "dt": float(getattr(env.unwrapped, "dt", 0.0)) or None,
        "stats": stats,
        "command": _command(env_id, episodes, noise, play_fraction, seed, out, env_kwargs, n_blocks, max_steps,
                            disturb, shove, graze),
        "forethought_version": _version(),
    }
    path = write_dataset(out, recorded, metadata)
    if progress:
        rate = stats["expert_success_rate"]
        print(
            f"wrote {path}: {len(recorded)} episodes "
            f"({stats['expert_episodes']} expert, {stats['play_episodes']} play), "
            f"{steps} steps, expert success rate "
            f"{'n/a' if rate is None else f'{100 * rate:.1f}%'}, {steps / elapsed:.0f} steps/s"
        )
    return path


def _version() -> str:
    from forethought import __version__

    return __version__


# --------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``forethought collect``."""
    parser.description, examples = help_from_docstring(__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = examples + "\n\ndetails: python -m pydoc forethought.sim.collect (format: forethought.sim.dataset)"
    parser.add_argument("--env", required=True, help="gymnasium env id, e.g. forethought/PushBlocks-v0")
    parser.add_argument("--episodes", type=int, required=True, help="number of episodes")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="expert action noise std, as a fraction of half the action range (default 0)")
    parser.add_argument("--play-fraction", type=float, default=0.0,
                        help="probability that an episode is random smooth play instead of expert (default 0)")
    parser.add_argument("--disturb", type=float, default=0.0,
                        help="probability that an expert episode gets a 4-12 step play disturbance, its labels "
                             "still the expert's (default 0)")
    parser.add_argument("--shove", type=float, default=0.0,
                        help="probability that a play episode drives blocks into each other (default 0)")
    parser.add_argument("--graze", type=float, default=0.0,
                        help="probability that a play episode passes blocks sideways within 1.5 cm of touching "
                             "(default 0)")
    parser.add_argument("--seed", type=int, default=0, help="episode i uses env seed SEED + i (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="output .parquet file (written atomically)")
    parser.add_argument("--n-blocks", type=int, default=None,
                        help="PushBlocks: blocks per episode, 1-3 (default: drawn per episode)")
    parser.add_argument("--env-kwargs", type=json_object, default=None, metavar="JSON",
                        help="keyword arguments for gymnasium.make, as a JSON object")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="cut episodes after this many steps (default: the env's time limit)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or summary")


def run(args: argparse.Namespace) -> int:
    """Run ``forethought collect``; exit status 0 on success, 2 on bad input, 130 on Ctrl-C."""
    code, _ = run_writer("collect", args.out, lambda: collect(
        args.env, args.episodes, args.noise, args.play_fraction, args.seed, args.out, env_kwargs=args.env_kwargs,
        progress=not args.no_progress, n_blocks=args.n_blocks, max_steps=args.max_steps, disturb=args.disturb,
        shove=args.shove, graze=args.graze,
    ))
    return code
