"""Held-out k-step prediction error of a dynamics ensemble against the copy-last baseline."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from forethought.models.dynamics.modeling_dynamics import DynamicsEnsemble
from forethought.sim import PUSH_BLOCKS_ID, REACHER_ID, scene, task_env_id
from forethought.sim.dataset import Dataset

HORIZONS: tuple[int, ...] = (1, 4, 8, 16)


def _pushblocks_groups() -> dict[str, list[tuple[int, int, int | None]]]:
    blocks = [(s.start + 1, s.start + 2, s.start) for s in (scene.block_slice(b) for b in scene.BLOCK_NAMES)]
    return {"pusher_xy": [(0, 1, None)], "block_xy": blocks}


ERROR_GROUPS: dict[str, dict[str, list[tuple[int, int, int | None]]]] = {
    PUSH_BLOCKS_ID: _pushblocks_groups(),
    REACHER_ID: {"tip_xy": [(8, 9, None)]},  # fingertip minus goal, so the fingertip's own error
}
"""Training env id -> metric name -> ``(x, y, presence flag or None)`` per object: the xy pairs
scored. Other envs score every state entry (``state``)."""


@torch.inference_mode()
def kstep_errors(
    model: DynamicsEnsemble,
    ds: Dataset,
    sources: Sequence[str] | None = None,
    episodes: Sequence[int] | None = None,
    horizons: Sequence[int] = HORIZONS,
    batch_size: int = 4096,
) -> dict[str, dict[str, dict[int, float]]]:
    """RMSE per coordinate (env units) of the ensemble mean and of copy-last, at each horizon.

    Every step of the selected episodes anchors a window; step ``k`` is scored where
    ``s[t+k]`` exists. An object's xy is scored only while it is present.

    Returns:
        ``{"model": {metric: {k: rmse}}, "copy_last": {...}, "count": {metric: {k: n}}}``.
    """
    groups = ERROR_GROUPS.get(task_env_id(model.config.env_id) or "")  # the model's state layout
    if groups is None:
        groups = {"state": [(i, i, None) for i in range(ds.obs_dim)]}
    F = model.max_horizon
    if max(horizons) > F:
        raise ValueError(f"horizons {list(horizons)} exceed the model's rollout horizon {F}")
    w = ds.windows(model.n_obs_steps, F, future=F, sources=sources, episodes=episodes)
    sums = {kind: {g: np.zeros(F) for g in groups} for kind in ("model", "copy_last")}
    counts = {g: np.zeros(F) for g in groups}
    device = model.fixed.device
    for i in range(0, len(w), batch_size):
        obs = torch.from_numpy(w.obs_history[i : i + batch_size]).to(device)  # [B, o, S]
        act = torch.from_numpy(w.actions[i : i + batch_size]).to(device)  # [B, F, A]
        pred = model.imagine(obs[None], act[None]).mean(0).cpu().numpy()  # [B, F, S]
        true = w.future_states[i : i + batch_size]  # [B, F, S]
        valid = w.future_valid[i : i + batch_size]  # [B, F]
        last = w.obs_history[i : i + batch_size, -1:, :]  # [B, 1, S]
        for g, pairs in groups.items():
            for x, y, flag in pairs:
                mask = valid if flag is None else valid & (last[:, :, flag] > 0.5)
                for kind, guess in (("model", pred), ("copy_last", np.broadcast_to(last, true.shape))):
                    err = (guess[..., [x, y]] - true[..., [x, y]]) ** 2  # [B, F, 2]
                    sums[kind][g] += (err.mean(-1) * mask).sum(0)
                counts[g] += mask.sum(0)
    out: dict[str, dict[str, dict[int, float]]] = {"count": {g: {k: int(counts[g][k - 1]) for k in horizons}
                                                             for g in groups}}
    for kind in ("model", "copy_last"):
        out[kind] = {g: {k: float(np.sqrt(sums[kind][g][k - 1] / max(counts[g][k - 1], 1))) for k in horizons}
                     for g in groups}
    return out
