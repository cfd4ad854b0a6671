"""Training sequences for the world model, and the pixel frames of a recorded data set.

Data sets (``forethought.sim.dataset``) store task states, not images. ``render_frames`` replays
every episode in the env from its recorded seed and actions and renders the top-down camera at
each state, checking on the way that the replay reproduces the recorded states, so the pixel
model trains on frames that match the data set exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

import forethought.sim.envs  # noqa: F401  (registers the forethought/* envs)
from forethought.sim import PUSH_BLOCKS_ID, scene
from forethought.sim.dataset import Dataset

REPLAY_ATOL = 1e-4
"""A replayed state may differ from the recorded one by this much (m, rad, m/s) before replay is refused."""


@dataclass(frozen=True)
class Sequences:
    """Sub-trajectories of ``T`` frames, ``frameskip`` env steps apart, never crossing an episode.

    Attributes:
        rows: ``int64[B, T]``: indices into ``Dataset.states`` (and into ``render_frames``' output).
        actions: ``float32[B, T-1, frameskip, A]``: block ``j`` leads from frame ``j`` to ``j + 1``.
        episode_index: ``int64[B]``.
    """

    rows: np.ndarray
    actions: np.ndarray
    episode_index: np.ndarray

    def __len__(self) -> int:
        return int(self.rows.shape[0])


def make_sequences(
    ds: Dataset,
    frameskip: int,
    num_frames: int,
    sources: Iterable[str] | None = None,
    episodes: Sequence[int] | None = None,
) -> Sequences:
    """Every ``num_frames``-frame sub-trajectory (one per start step) of the selected episodes."""
    if frameskip < 1 or num_frames < 2:
        raise ValueError(f"frameskip must be >= 1 and num_frames >= 2, got {frameskip}, {num_frames}")
    rows = ds.anchors(sources, episodes)  # candidate start steps
    e = ds.episode_index[rows].astype(np.int64)
    start = ds.episode_start[e]
    t = rows - start
    span = frameskip * (num_frames - 1)
    keep = t + span <= ds.episode_lengths[e]  # the last frame is at most the final state s_T
    rows, e, start, t = rows[keep], e[keep], start[keep], t[keep]
    frame_t = t[:, None] + frameskip * np.arange(num_frames)[None]  # [B, T] step of each frame
    state_rows = start[:, None] + e[:, None] + frame_t
    action_t = frame_t[:, :-1, None] + np.arange(frameskip)[None, None]  # [B, T-1, frameskip]
    actions = ds.action[start[:, None, None] + action_t]
    return Sequences(rows=state_rows.astype(np.int64), actions=actions.astype(np.float32), episode_index=e)


def render_frames(ds: Dataset, image_size: int = 64, progress: bool = True) -> np.ndarray:
    """``uint8[N + E, image_size, image_size, 3]``: the top-down render of every state in ``ds.states``.

    Episode ``i`` is replayed with ``reset(seed=metadata seed + i)`` (and its number of blocks,
    read from the presence flags) and its recorded actions. Raises ``ValueError`` if the data set
    lacks what a replay needs or the replay drifts from the recorded states by more than
    ``REPLAY_ATOL``.
    """
    meta = ds.metadata
    env_id, seed = meta.get("env_id"), meta.get("seed")
    if env_id is None or seed is None:
        raise ValueError(f"{ds.path}: metadata lacks env_id/seed, so its episodes cannot be replayed for rendering; "
                         "record the data with `forethought collect`")
    kwargs = dict(meta.get("env_kwargs") or {})
    env = gym.make(env_id, render_mode="rgb_array", width=image_size, height=image_size, **kwargs).unwrapped
    frames = np.empty((len(ds.states), image_size, image_size, 3), np.uint8)
    try:
        for i in tqdm(range(ds.num_episodes), desc="render frames", unit="ep", disable=not progress):
            a, b = int(ds.episode_start[i]), int(ds.episode_start[i + 1])
            states = ds.states[a + i: b + i + 1]
            options = {}
            if env_id == PUSH_BLOCKS_ID:
                options["n_blocks"] = len(scene.present_blocks(states[0]))
            obs, _ = env.reset(seed=int(seed) + i, options=options or None)
            frames[a + i] = env.render()
            for k, action in enumerate(ds.action[a:b]):
                _check_replay(obs, states[k], i, k, ds)
                obs, *_ = env.step(action)
                frames[a + i + k + 1] = env.render()
            _check_replay(obs, states[-1], i, b - a, ds)
    finally:
        env.close()
    return frames


def _check_replay(obs: np.ndarray, recorded: np.ndarray, episode: int, step: int, ds: Dataset) -> None:
    err = float(np.max(np.abs(np.asarray(obs, np.float64) - recorded)))
    if err > REPLAY_ATOL:
        raise ValueError(f"{ds.path}: replaying episode {episode} drifts from the recorded state at step {step} "
                         f"(max error {err:.2e} > {REPLAY_ATOL}); the data set was not recorded by this env version "
                         "with `forethought collect`, so its frames cannot be rendered")
