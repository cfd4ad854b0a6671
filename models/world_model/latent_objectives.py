"""Objectives over imagined embeddings: a goal observation (LeWM), or a plan step read through the probe.

Both score the latents that ``LatentDynamics.rollout`` returns, ``z[..., K, D]`` (the embedding
after each of ``K`` action blocks), so the control planners search the world model with them as
they search the dynamics ensemble with ``TaskObjective``:

- ``GoalObjective``: ``||z_K - z_goal||^2`` on the final block (LeWM, which executes the whole
  plan), or the mean over blocks (``terminal_only=False``, which suits replanning every block: a
  terminal cost then never hurries);
- ``ProbeObjective``: a PushBlocks plan step (reach a point, push a block to a region) scored on
  the task state the linear probe reads out of each latent, so the latent planner serves the LLM
  planner's goals.

Example::

    objective = GoalObjective.from_observation(model, goal_obs)
    costs = objective.score(dynamics.rollout(dynamics.start(obs), blocks), blocks)   # [n]
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from forethought.models.control.objectives import Objective
from forethought.models.world_model.modeling_world_model import LatentWorldModel
from forethought.models.world_model.probe import LinearProbe
from forethought.sim import scene


class GoalObjective(Objective):
    """Squared distance of the imagined embeddings to a goal embedding ``z_goal[D]``.

    Args:
        z_goal: the goal observation's embedding.
        terminal_only: score the final block only (LeWM); ``False`` averages over the blocks.
    """

    def __init__(self, z_goal: Tensor, terminal_only: bool = True) -> None:
        super().__init__()
        self.z_goal, self.terminal_only = z_goal, terminal_only

    @classmethod
    def from_observation(cls, model: LatentWorldModel, goal: Any, terminal_only: bool = True) -> GoalObjective:
        """The objective of one goal observation ``goal[*obs_shape]`` (a rendered goal image or a goal state)."""
        z_goal = model.encode(model.processor.check_obs(goal, "goal"))
        if z_goal.dim() != 1:
            raise ValueError(f"goal must be one observation {list(model.config.obs_shape)}, got a batch")
        return cls(z_goal, terminal_only)

    def cost(self, states: Tensor, actions: Tensor) -> Tensor:
        """``[...]`` of latents ``states[..., K, D]`` (the actions are not scored)."""
        if self.terminal_only:
            return (states[..., -1, :] - self.z_goal).square().sum(-1)
        return (states - self.z_goal).square().sum(-1).mean(-1)


class ProbeObjective(Objective):
    """A PushBlocks plan step scored on the probed task state of each imagined latent.

    reach: distance of the probed pusher to the target, averaged over the blocks (so a replanning
    policy hurries); push: the probed block's distance to the target, at the final block plus
    averaged over the blocks, plus half the final pusher-to-block distance (to bring the pusher to
    the block).

    Args:
        probe: the model folder's ``LinearProbe`` (latent -> task state).
        task: the plan step, validated against the blocks present in ``obs``.
        obs: the current task state ``[S]`` (block presence and positions of block targets).
    """

    def __init__(self, probe: LinearProbe, task: Mapping[str, Any], obs: np.ndarray) -> None:
        super().__init__()
        step = scene.validate_step(task, scene.present_blocks(np.asarray(obs)))
        self.probe = probe
        self.target = torch.as_tensor(scene.target_xy(step, obs), dtype=torch.float32)
        start = scene.block_slice(step["object"]).start if step["skill"] == "push" else None
        self.block = None if start is None else slice(start + 1, start + 3)
        """The pushed block's ``(x, y)`` entries in the task state (``None``: reach)."""

    def cost(self, states: Tensor, actions: Tensor) -> Tensor:
        """``[...]`` of latents ``states[..., K, D]`` (the actions are not scored)."""
        s = self.probe(states)  # [..., K, S]
        target, pusher = self.target.to(s.device), s[..., scene.PUSHER_POS]
        if self.block is None:
            return (pusher - target).norm(dim=-1).mean(-1)
        block = s[..., self.block]
        return ((block[..., -1, :] - target).norm(dim=-1) + 0.5 * (pusher[..., -1, :] - block[..., -1, :]).norm(dim=-1)
                + (block - target).norm(dim=-1).mean(-1))
