"""Held-out prediction quality of a dynamics ensemble: k-step error against copy-last, and how far
it predicts blocks to move when they really move (pushed by the pusher, or shoved by another block)."""

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


MOVED_M = 0.02
"""A block "moved" in a window when it ends this far (m) from where it started."""
STILL_M = 0.005
"""A block stayed "still" when it ends within this distance (m)."""
SHOVE_CLEARANCE_M = 0.05
"""A moved block was "shoved" (by another block) when the pusher stayed this far (m) from it all window long."""
PREDICTED_MOVE_M = 0.01
"""A prediction "sees" a move when it moves the block this far (m)."""


@torch.inference_mode()
def block_motion(model: DynamicsEnsemble, ds: Dataset, horizon: int | None = None,
                 batch_size: int = 4096) -> dict[str, dict[str, float]]:
    """Predicted against real displacement of PushBlocks blocks ``horizon`` steps ahead (default the
    model's ``max_horizon``), from every step of ``ds`` with a whole window ahead.

    Returns per class of (window, present block): ``moved`` (really moved > ``MOVED_M``),
    ``shoved`` (moved while the pusher stayed > ``SHOVE_CLEARANCE_M`` away: another block pushed
    it) and ``still`` (moved < ``STILL_M``): the count ``windows``; for the moving classes the
    median ``ratio`` predicted / real displacement (ensemble mean), the ``recall`` (share predicted
    to move > ``PREDICTED_MOVE_M``) and the median absolute error ``error_m``; for ``still`` the
    ``false_alarm`` share (predicted to move > ``PREDICTED_MOVE_M``).
    """
    if task_env_id(model.config.env_id) != PUSH_BLOCKS_ID:
        raise ValueError(f"block_motion scores PushBlocks models, not {model.config.env_id!r}")
    F = horizon or model.max_horizon
    w = ds.windows(model.n_obs_steps, F, future=F)
    full = w.future_valid.all(-1)
    real, pred, clear = [], [], []
    device = model.fixed.device
    for i in range(0, len(w), batch_size):
        keep = full[i : i + batch_size]
        obs = w.obs_history[i : i + batch_size][keep]  # [B, o, S]
        future = w.future_states[i : i + batch_size][keep]  # [B, F, S]
        guess = model.imagine(torch.from_numpy(obs).to(device)[None],
                              torch.from_numpy(w.actions[i : i + batch_size][keep]).to(device)[None])
        end = guess.mean(0)[:, -1].cpu().numpy()  # [B, S]
        track = np.concatenate([obs[:, -1:], future], axis=1)  # [B, F + 1, S]
        for b in scene.BLOCK_NAMES:
            sl = scene.block_slice(b)
            xy = slice(sl.start + 1, sl.start + 3)
            here = obs[:, -1, sl.start] > 0.5
            start = obs[:, -1, xy]
            real.append(np.linalg.norm(future[:, -1, xy] - start, axis=-1)[here])
            pred.append(np.linalg.norm(end[:, xy] - start, axis=-1)[here])
            gap = np.linalg.norm(track[..., scene.PUSHER_POS] - track[..., xy], axis=-1).min(-1)
            clear.append((gap > SHOVE_CLEARANCE_M)[here])
    r, p, c = np.concatenate(real), np.concatenate(pred), np.concatenate(clear)
    out: dict[str, dict[str, float]] = {}
    for name, sel in (("moved", r > MOVED_M), ("shoved", (r > MOVED_M) & c)):
        n = int(sel.sum())
        out[name] = {"windows": n,
                     "ratio": float(np.median(p[sel] / r[sel])) if n else float("nan"),
                     "recall": float(np.mean(p[sel] > PREDICTED_MOVE_M)) if n else float("nan"),
                     "error_m": float(np.median(np.abs(p[sel] - r[sel]))) if n else float("nan")}
    still = r < STILL_M
    out["still"] = {"windows": int(still.sum()), "false_alarm": float(np.mean(p[still] > PREDICTED_MOVE_M))}
    return out
