"""The ``ablation`` section of ``bench/world_model.py``: collapse diagnostics and reach/push success of
the state model trained with SIGReg against the one trained without a regulariser."""

from __future__ import annotations

import numpy as np
import torch

from forethought.models.world_model.modeling_world_model import LatentWorldModel
from forethought.models.world_model.probe import encode_all
from forethought.models.world_model.sigreg import collapse_diagnostics
from forethought.sim.dataset import Dataset
from wm_common import fmt
from wm_success import HORIZON, success


@torch.inference_mode()
def collapse(model: LatentWorldModel, ds: Dataset, n: int, seed: int) -> dict:
    """Collapse diagnostics of ``n`` states drawn at random from all episodes (close to i.i.d.)."""
    rows = np.random.default_rng(seed).permutation(len(ds.states))[:n]
    return collapse_diagnostics(encode_all(model, torch.from_numpy(np.array(ds.states[rows]))))


def ablation(sigreg: LatentWorldModel, noreg: LatentWorldModel, ds: Dataset, seeds: int, iterations: int,
             seed: int) -> dict[str, dict]:
    """``collapse`` on 1024 states and ``success`` at both skills, for each of the two state models."""
    out = {}
    for k, m in (("SIGReg (lambda 0.09)", sigreg), ("no regulariser", noreg)):
        row = collapse(m, ds, 1024, seed)
        row.update({f"success {s}": success(m, s, seeds, iterations, HORIZON) for s in ("reach", "push")})
        out[k] = row
    return out


def report(res: dict[str, dict]) -> None:
    """Print the section's markdown table (``res``: ``ablation``)."""
    print("## Ablation: SIGReg vs no regulariser (state model)\n")
    print("| model | SIGReg (floor 1.05) | effective rank / 32 | std min | top-1 var | reach | push |")
    print("|---|---|---|---|---|---|---|")
    for k, r in res.items():
        print(f"| {k} | {fmt(r['sigreg'])} | {fmt(r['effective_rank'], 1)} | {fmt(r['std_min'], 3)} | "
              f"{fmt(r['top1_variance'])} | {fmt(r['success reach']['success'])} | "
              f"{fmt(r['success push']['success'])} |")
    print()
