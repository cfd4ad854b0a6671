"""Regenerate ``tests/artifacts/reference_outputs.safetensors``: outputs of every shipped model on fixed inputs.

``tests/test_reference_outputs.py`` loads each shipped folder in ``models/pretrained/`` and checks
that it still produces these tensors (to 1e-6): a refactor of the configuration, persistence or
modelling code must not change what the shipped weights compute. The stored file was written by
the code as it was before the models were given one shape (commit 38a090b).

Regenerate only when a change of outputs is intended (new weights, a new sampler), and say so in
the commit message::

    MUJOCO_GL=egl .venv/bin/python scripts/reference_outputs.py --out tests/artifacts/reference_outputs.safetensors

Tensors (one thread, float32, CPU):
    proposer-pushblocks/actions   ``[8, 16, 2]``  DDIM-5 samples from the state of seed 3 (3 blocks), goal: push
    proposer-pushblocks-fast/actions ``[8, 16, 2]`` the one-step student's samples, same state and goal
    proposer-reacher/actions      ``[8, 16, 2]``  DDIM-10 samples from Reacher-v5's state of seed 3
    dynamics-pushblocks/states    ``[5, 8, 16, 16]`` the pushblocks proposals rolled out by the ensemble
    dynamics-reacher/states       ``[5, 8, 16, 10]`` the reacher proposals rolled out by the ensemble
    wm-pushblocks-state/z         ``[1, 8, 3, 32]``  latent rollout of the pushblocks proposals (15 of 16 steps)
    wm-pushblocks-pixels/z        ``[1, 8, 3, 64]``  the same from a fixed random image history
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from safetensors.torch import save_file

PRETRAINED = Path(__file__).resolve().parents[1] / "models" / "pretrained"
PUSH_GOAL = {"skill": "push", "object": "green_block", "target": "top_right"}


def reference_outputs() -> dict[str, torch.Tensor]:
    """Every reference tensor, computed from the shipped folders (see the module docstring)."""
    import forethought.sim.envs  # noqa: F401  (registers the envs)
    from forethought.models import DiffusionProposer
    from forethought.models.dynamics import DynamicsEnsemble
    from forethought.models.world_model import LatentWorldModel

    torch.set_num_threads(1)
    out: dict[str, torch.Tensor] = {}
    actions: dict[str, torch.Tensor] = {}
    states: dict[str, np.ndarray] = {}
    for name, env_id, kwargs, goal, steps in (
        ("pushblocks", "forethought/PushBlocks-v0", {"n_blocks": 3}, PUSH_GOAL, 5),
        ("reacher", "forethought/Reacher-v5", {}, None, 10),
    ):
        env = gym.make(env_id, **kwargs)
        obs, _ = env.reset(seed=3, options={"task": goal} if goal else None)
        env.close()
        states[name] = np.asarray(obs, dtype=np.float32)
        proposer = DiffusionProposer.from_pretrained(PRETRAINED / f"proposer-{name}")
        history = np.stack([states[name]] * proposer.config.n_obs_steps)
        generator = torch.Generator().manual_seed(0)
        actions[name] = proposer.propose(history, 8, goal, generator=generator, num_inference_steps=steps)
        out[f"proposer-{name}/actions"] = actions[name]
        dynamics = DynamicsEnsemble.from_pretrained(PRETRAINED / f"dynamics-{name}")
        out[f"dynamics-{name}/states"] = dynamics.rollout(states[name], actions[name])
    student = DiffusionProposer.from_pretrained(PRETRAINED / "proposer-pushblocks-fast")
    history = np.stack([states["pushblocks"]] * student.config.n_obs_steps)
    out["proposer-pushblocks-fast/actions"] = student.propose(history, 8, PUSH_GOAL,
                                                              generator=torch.Generator().manual_seed(0))
    for kind in ("state", "pixels"):
        model = LatentWorldModel.from_pretrained(PRETRAINED / f"wm-pushblocks-{kind}")
        c = model.config
        if kind == "state":
            obs = np.stack([states["pushblocks"]] * c.history)
        else:
            obs = np.random.default_rng(0).integers(0, 256, size=(c.history, *c.obs_shape), dtype=np.uint8)
        n_steps = (actions["pushblocks"].shape[1] // c.frameskip) * c.frameskip
        with torch.inference_mode():
            out[f"wm-pushblocks-{kind}/z"] = model.rollout(obs, actions["pushblocks"][:, :n_steps])
    return {k: v.detach().cpu().float().contiguous() for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(reference_outputs(), str(args.out), metadata={"source": "scripts/reference_outputs.py"})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
