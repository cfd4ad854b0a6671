"""The ``physics`` section of ``bench/world_model.py``: why the physics shifts are hard to flag, from a
simulator counterfactual of every step (``physics_signal``)."""

from __future__ import annotations

import numpy as np
import torch

from forethought.models.world_model.modeling_world_model import LatentWorldModel
from forethought.models.world_model.probe import encode_all
from forethought.models.world_model.surprise import predict_targets
from forethought.sim import scene
from wm_common import auroc, fmt, make_env
from wm_episodes import PHYSICS_SHIFTS, play_episode, replay

BLOCK_XY = [slice(scene.block_slice(b).start + 1, scene.block_slice(b).start + 3) for b in scene.BLOCK_NAMES]
OBSERVABLE_M = 1e-3
"""A step's physics shift is observable when some block ends over 1 mm from where the other physics puts it."""


@torch.inference_mode()
def physics_signal(model: LatentWorldModel, episodes: int, length: int = 60) -> dict[str, dict[str, float]]:
    """How large a physics shift's effect is in latent space, against the model's own 1-step error.

    For every step ``t`` of the surprise section's episodes (clean and shifted, seeds ``0 ..``), the
    simulator is reset to its exact state one block earlier and the block's recorded actions are
    replayed under the *other* physics: the counterfactual outcome. Steps where some block ends
    over ``OBSERVABLE_M`` from the counterfactual are *observable* (the shift moves a block
    measurably there; yaw and the pusher's velocity are not compared). Reported per shift: the
    share of observable steps; the 1-step surprise AUROC with both classes restricted to observable
    steps; the paired test (same context and actions: how often the surprise of the outcome under
    shifted physics exceeds that of the outcome under nominal physics); and, on observable steps,
    the median shift signal ``||z_shifted - z_nominal||^2 / D`` next to the median model error
    ``||z_hat - z_nominal||^2 / D``.
    """
    pixels, fs = model.config.obs_type == "pixels", model.config.frameskip
    nominal = make_env(pixels, n_blocks=3)
    out: dict[str, dict[str, float]] = {}
    for name, wrap in PHYSICS_SHIFTS.items():
        shifted = wrap(make_env(pixels, n_blocks=3))
        for env in (nominal, shifted):
            env.reset(seed=0)
        acc: dict[str, dict[str, list[np.ndarray]]] = {}
        for kind, own_wrap, own, other in (("clean", None, nominal, shifted), ("shifted", wrap, shifted, nominal)):
            rows = acc[kind] = {"surprise": [], "counterfactual": [], "signal": [], "observable": []}
            for seed in range(episodes):
                states: list[np.ndarray] = []
                x, actions = play_episode(model, seed, length, own_wrap, None, 0, states)
                targets = np.arange(fs, length + 1)
                cf = [replay(other, states[t - fs], actions[t - fs:t], pixels) for t in targets]
                real = [replay(own, states[t - fs], actions[t - fs:t], pixels) for t in targets]
                if not np.array_equal(np.stack([r[0] for r in real]), x[targets]):
                    raise RuntimeError("replaying a recorded block did not reproduce the episode: the counterfactual "
                                       "would not be comparable")
                z = encode_all(model, model.processor.check_obs(x))
                z_cf = encode_all(model, model.processor.check_obs(np.stack([c[0] for c in cf])))
                blocks = model.processor.normalize_actions(torch.as_tensor(actions))
                pred = predict_targets(model, z, blocks, targets, 1)
                cf_obs, real_obs = np.stack([c[1] for c in cf]), np.stack([r[1] for r in real])
                moved = np.max([np.linalg.norm(cf_obs[:, sl] - real_obs[:, sl], axis=1) for sl in BLOCK_XY], axis=0)
                rows["surprise"].append((pred - z[targets]).square().mean(-1).numpy())
                rows["counterfactual"].append((pred - z_cf).square().mean(-1).numpy())
                rows["signal"].append((z_cf - z[targets]).square().mean(-1).numpy())
                rows["observable"].append(moved > OBSERVABLE_M)
        flat = {k: {f: np.concatenate(v) for f, v in r.items()} for k, r in acc.items()}
        c, s = flat["clean"], flat["shifted"]
        oc, os_ = c["observable"], s["observable"]
        # paired: the outcome under shifted physics vs under nominal physics, same context and actions;
        # neg is also the model's error on the nominal outcome
        pos = np.concatenate([c["counterfactual"][oc], s["surprise"][os_]])
        neg = np.concatenate([c["surprise"][oc], s["counterfactual"][os_]])
        out[name] = {"observable_share": float(np.mean(np.concatenate([oc, os_]))),
                     "auroc_observable": auroc(s["surprise"][os_], c["surprise"][oc]),
                     "auroc_all": auroc(s["surprise"], c["surprise"]),
                     "paired_shifted_higher": float(np.mean(pos > neg)),
                     "median_signal": float(np.median(np.concatenate([c["signal"][oc], s["signal"][os_]]))),
                     "median_model_error": float(np.median(neg)), "steps": int(len(oc) + len(os_))}
        shifted.close()
    nominal.close()
    return out



def report(res: dict[str, dict]) -> None:
    """Print the section's markdown table (``res``: ``physics_signal`` per model)."""
    print(f"## Physics shifts: observable steps and signal vs model error (1-step, > {OBSERVABLE_M * 1e3:.0f} mm)\n")
    print("| model | shift | observable steps | AUROC all steps | AUROC observable steps | paired: shifted outcome "
          "more surprising | median shift signal / D | median model error / D | error / signal |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k, r in res.items():
        for name, v in r.items():
            print(f"| {k} | {name} | {fmt(100 * v['observable_share'], 0)}% of {v['steps']} | "
                  f"{fmt(v['auroc_all'])} | {fmt(v['auroc_observable'])} | {fmt(100 * v['paired_shifted_higher'], 0)}% | "
                  f"{fmt(v['median_signal'], 4)} | {fmt(v['median_model_error'], 4)} | "
                  f"{fmt(v['median_model_error'] / v['median_signal'], 0)}x |")
    print()
