"""The ``surprise`` section of ``bench/world_model.py``: per-step surprise AUROC and spike ratio of the
1-step and windowed monitors, in latent space and as the probe's positions, for a teleport, physics
shifts and a colour change, and the correlation of
the latent-noise rollout spread with the true k-step error."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from forethought.models.world_model.modeling_world_model import LatentWorldModel
from forethought.models.world_model.probe import LinearProbe
from forethought.models.world_model.surprise import SURPRISE_SPACES, rollout_spread, surprise_trace
from forethought.sim.dataset import Dataset
from wm_common import auroc, fmt, held_out_windows, spearman
from wm_episodes import PHYSICS_SHIFTS, play_episode, recolour, teleport

SURPRISE_SETTINGS: tuple[tuple[int, int], ...] = ((1, 1), (1, 10), (2, 1), (2, 10), (4, 1), (4, 10), (4, 20), (8, 1),
                                                  (8, 10))
"""``(horizon blocks, window steps)`` of the surprise monitor tried; (1, 1) is LeWM's 1-step surprise."""


def _shift_aurocs(model: LatentWorldModel, seeds: range, length: int, event_at: int,
                  probe: LinearProbe | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """Per-step AUROC (and spike ratio) of every ``SURPRISE_SETTINGS`` entry, for every perturbation,
    against unperturbed episodes with the same seeds and play policy; per space (``SURPRISE_SPACES``: latent,
    and with ``probe`` positions)."""
    fs = model.config.frameskip
    events: dict[str, tuple[Any, Any]] = {"teleport": (None, teleport),
                                          **{name: (wrap, None) for name, wrap in PHYSICS_SHIFTS.items()}}
    if model.config.obs_type == "pixels":
        events["colour change"] = (None, recolour)
    clean = [play_episode(model, s, length, None, None, 0) for s in seeds]
    runs = {name: [play_episode(model, s, length, wrap, event, event_at) for s in seeds]
            for name, (wrap, event) in events.items()}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for space in SURPRISE_SPACES[:1 + (probe is not None)]:
        rows = out[space] = {}
        space_probe = probe if space == "positions" else None
        for horizon, window in SURPRISE_SETTINGS:
            first = horizon * fs
            trace = lambda ep: surprise_trace(model, ep[0], ep[1], horizon, window, space_probe)  # noqa: E731
            neg_traces = [trace(ep) for ep in clean]
            neg = np.concatenate([t[first:] for t in neg_traces])
            row: dict[str, Any] = {"clean_median": float(np.median(neg))}
            for name, eps in runs.items():
                traces = [trace(ep) for ep in eps]
                if name in PHYSICS_SHIFTS:
                    pos = np.concatenate([t[first:] for t in traces])
                    row[name] = {"auroc_step": auroc(pos, neg),
                                 "spike_ratio": float(np.median(pos) / row["clean_median"]),
                                 "auroc_episode": auroc([np.mean(t[first:]) for t in traces],
                                                        [np.mean(t[first:]) for t in neg_traces])}
                else:  # the steps whose score depends on the event (and has a value)
                    at = max(event_at, first)
                    pos = np.concatenate([t[at:event_at + horizon * fs + window - 1] for t in traces])
                    spike = np.mean([t[at] for t in traces]) / row["clean_median"]
                    row[name] = {"auroc_step": auroc(pos, neg), "spike_ratio": float(spike)}
            rows[f"h{horizon} w{window}"] = row
    return out


def surprise(model: LatentWorldModel, episodes: int, length: int = 60, event_at: int = 30,
             probe: LinearProbe | None = None) -> dict:
    """Per-step surprise AUROC and spike ratio for each perturbation and monitor setting
    (``bench/world_model.py``'s docstring), in latent space and, with the model's ``probe``, as positions.

    The windowed setting reported is the one with the best mean physics-shift AUROC on separate
    tuning seeds (``1000 ..``); the reported numbers come from seeds ``0 .. episodes - 1``.
    """
    tune = _shift_aurocs(model, range(1000, 1000 + episodes), length, event_at, probe)
    test = _shift_aurocs(model, range(episodes), length, event_at, probe)
    out: dict[str, Any] = {"episodes": episodes, "length": length, "event_at": event_at}
    for space, rows in tune.items():
        physics = {k: float(np.mean([v[s]["auroc_step"] for s in PHYSICS_SHIFTS])) for k, v in rows.items()}
        out[space] = {"settings": test[space], "chosen": max(physics, key=physics.get), "tune_physics_auroc": physics,
                      "tune_teleport_auroc": {k: v["teleport"]["auroc_step"] for k, v in rows.items()}}
    return out


@torch.inference_mode()
def spread_vs_error(model: LatentWorldModel, ds: Dataset, frames: np.ndarray | None, n: int, seed: int,
                    k: int = 5) -> dict:
    """Spearman correlation of the K = 8, sigma = 0.05 latent-noise rollout spread with the true error."""
    z, blocks = held_out_windows(model, ds, frames, k, n, seed)  # [n, k+1, D], [n, k, block_dim]
    err = (model.rollout_latent(z[:, :1], blocks) - z[:, 1:]).square().mean(-1)  # [n, k]
    spread = rollout_spread(model, z[:, :1], blocks, 8, 0.05, torch.Generator().manual_seed(seed))
    return {"spearman_pooled": spearman(spread.flatten().numpy(), err.flatten().numpy()),
            "spearman_at_k": [spearman(spread[:, j].numpy(), err[:, j].numpy()) for j in range(k)], "windows": len(z)}


def report(res: dict[str, dict], spread: dict[str, dict]) -> None:
    """Print the section's markdown table (``res``: ``surprise`` per model; ``spread``: ``spread_vs_error``)."""
    print("## Surprise: per-step AUROC (spike ratio)\n")
    print("| model | monitor (horizon blocks, window steps) | teleport | mass x3 | friction x0.2 | colour change |")
    print("|---|---|---|---|---|---|")
    for k, by_space in res.items():
        for space in SURPRISE_SPACES:
            if space not in by_space:
                continue
            r = by_space[space]
            for setting in dict.fromkeys(("h1 w1", r["chosen"])):
                row = r["settings"][setting]
                cells = [f"{fmt(row[e]['auroc_step'])} ({fmt(row[e]['spike_ratio'], 1)}x)" if e in row
                         else "n/a (no colour in state)"
                         for e in ("teleport", "mass x3", "friction x0.2", "colour change")]
                label = "1-step" if setting == "h1 w1" else f"{setting}, chosen on tuning seeds"
                label += ", latent (LeWM)" if space == "latent" else ", probed positions"
                print(f"| {k} | {label} | " + " | ".join(cells) + " |")
    print("\nRollout-spread vs true k-step error, Spearman (k = 1..5): " + "; ".join(
        f"{k} " + ", ".join(fmt(v) for v in r["spearman_at_k"]) for k, r in spread.items()) + "\n")
