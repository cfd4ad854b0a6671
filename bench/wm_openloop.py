"""The ``openloop`` section of ``bench/world_model.py``: open-loop latent prediction error on held-out
episodes against copy-last and shuffled actions."""

from __future__ import annotations

import numpy as np
import torch

from forethought.models.world_model.modeling_world_model import LatentWorldModel
from forethought.sim.dataset import Dataset
from wm_common import fmt, held_out_windows


@torch.inference_mode()
def open_loop(model: LatentWorldModel, ds: Dataset, frames: np.ndarray | None, max_k: int, n: int, seed: int) -> dict:
    """Normalised k-step latent error for k = 1..max_k blocks: model, copy-last, shuffled actions."""
    z, blocks = held_out_windows(model, ds, frames, max_k, n, seed)  # [n, K+1, D], [n, K, block_dim]
    var = float(z.reshape(-1, z.shape[-1]).var(0).mean())
    pred = model.rollout_latent(z[:, :1], blocks)
    perm = torch.from_numpy(np.random.default_rng(seed + 1).permutation(len(z)))
    shuffled = model.rollout_latent(z[:, :1], blocks[perm])
    err = lambda p: ((p - z[:, 1:]).square().mean((0, 2)) / var).tolist()  # noqa: E731
    return {"k": list(range(1, max_k + 1)), "model": err(pred), "copy_last": err(z[:, :1].expand_as(pred)),
            "shuffled_actions": err(shuffled), "windows": len(z), "var_z": var}


def report(res: dict[str, dict]) -> None:
    """Print the section's markdown table (``res``: ``open_loop`` per model)."""
    print("## Open-loop latent error / Var(z), held-out episodes\n")
    print("| model | k | model | copy-last | shuffled actions |\n|---|---|---|---|---|")
    for k, r in res.items():
        for i in (0, 1, 4, 9, 19):
            print(f"| {k} | {r['k'][i]} | {fmt(r['model'][i], 3)} | {fmt(r['copy_last'][i], 3)} | "
                  f"{fmt(r['shuffled_actions'][i], 3)} |")
    print()
