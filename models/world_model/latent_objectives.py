"""Objectives over imagined embeddings: a goal observation (LeWM), or a plan step read through the probe.

Both score the latents that ``LatentDynamics.rollout`` returns, ``z[..., K, D]`` (the embedding
after each of ``K`` action blocks), so the control planners search the world model with them as
they search the dynamics ensemble with ``TaskObjective``:

- ``GoalObjective``: ``||z_K - z_goal||^2`` on the final block (LeWM, which executes the whole
  plan), or the mean over blocks (``terminal_only=False``, which suits replanning every block: a
  terminal cost then never hurries);
- ``BlockGoalObjective``: the same goal observation scored on the blocks only: the distance of each
  block the probe reads out of the imagined latent to where it reads it in the goal's latent (the
  pusher's pose, which the latent distance also weighs, does not matter for a push; issue #18);
  with ``shaping_weight`` (goal cost ``"push"``) plus the plan-step push objective's shaping: the
  pusher's distance to the pushing position behind each block, on the line from its goal;
- ``ProbeObjective``: a PushBlocks plan step (reach a point, push a block to a region) scored by
  D-MPC's own objective on the task state the linear probe reads out of each latent, so the latent
  planner serves the LLM planner's goals.

Example::

    objective = goal_objective(model, goal_obs)              # or goal_objective(model, goal_obs, "blocks", probe)
    costs = objective.score(dynamics.rollout(dynamics.start(obs), blocks), blocks)   # [n]
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from forethought.models.control.objectives import SHAPING_WEIGHT, Objective, pushing_gap
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


class BlockGoalObjective(Objective):
    """Summed distance (m) of the probed blocks to their probed positions in a goal latent, final block.

    Args:
        probe: the model folder's ``LinearProbe`` (latent -> PushBlocks task state).
        z_goal: the goal observation's embedding ``[D]``; the blocks scored are those the probe reads
            as present in it (presence flag above one half).
        terminal_only: score the final block only (LeWM's whole-plan execution); ``False`` averages
            over the blocks.
        shaping_weight: weight of the probed pusher's distance (m, mean over the ``K`` block ends,
            summed over the blocks) to the pushing position behind each probed block, away from its
            goal (``objectives.pushing_gap``, the plan-step shaping's rule); 0: none.
    """

    def __init__(self, probe: LinearProbe, z_goal: Tensor, terminal_only: bool = True,
                 shaping_weight: float = 0.0) -> None:
        super().__init__()
        goal = probe(z_goal.detach())
        present = [i for i in scene.PRESENCE_FLAGS if float(goal[i]) > 0.5]
        if not present:
            raise ValueError("the probe reads no block in the goal observation: a block goal needs one")
        self.probe, self.terminal_only, self.shaping_weight = probe, terminal_only, float(shaping_weight)
        self.xy = torch.tensor([[i + 1, i + 2] for i in present])  # [blocks, 2] task-state entries
        self.goal_xy = goal[self.xy]  # [blocks, 2]

    def cost(self, states: Tensor, actions: Tensor) -> Tensor:
        """``[...]`` of latents ``states[..., K, D]`` (the actions are not scored)."""
        s = self.probe(states)  # [..., K, S]
        xy = s[..., self.xy]  # [..., K, blocks, 2]
        goal_xy = self.goal_xy.to(xy.device)
        d = (xy - goal_xy).norm(dim=-1).sum(-1)  # [..., K]
        cost = d[..., -1] if self.terminal_only else d.mean(-1)
        if self.shaping_weight == 0:
            return cost
        gap = pushing_gap(s[..., None, scene.PUSHER_POS], xy, goal_xy)  # [..., K, blocks]
        return cost + self.shaping_weight * gap.mean(-2).sum(-1)


GOAL_COSTS: tuple[str, ...] = ("latent", "blocks", "push")
"""How a goal observation is scored: LeWM's latent distance (``GoalObjective``), the probed blocks'
distance (``BlockGoalObjective``), or that plus the plan-step objective's push shaping
(``objectives.SHAPING_WEIGHT``)."""


def goal_objective(model: LatentWorldModel, goal: Any, cost: str = "latent", probe: LinearProbe | None = None,
                   terminal_only: bool = True) -> Objective:
    """The objective of goal observation ``goal[*obs_shape]`` under ``cost`` (``GOAL_COSTS``; ``"blocks"``
    and ``"push"`` need the model's ``probe``)."""
    if cost not in GOAL_COSTS:
        raise ValueError(f"goal cost {cost!r} is not one of {list(GOAL_COSTS)}")
    objective = GoalObjective.from_observation(model, goal, terminal_only)
    if cost == "latent":
        return objective
    if probe is None:
        raise ValueError(f"the {cost} goal cost reads block positions through the probe: load the model folder's "
                         "probe.safetensors")
    return BlockGoalObjective(probe, objective.z_goal, terminal_only, SHAPING_WEIGHT if cost == "push" else 0.0)


class ProbeObjective(Objective):
    """A plan step's objective (the one D-MPC plans with, ``Objective.from_step``) on the probed task
    state of each imagined latent.

    The probed states are corrected by the probe's error at the current state (``LinearProbe.corrected``,
    as ``ProbedLatentDynamics`` reads its rollouts) and keep the current state's presence flags; the
    step's ``TaskObjective`` then scores the ``K`` block ends as it scores the ensemble's steps, without
    the disturbance term: the world model's imagined bystanders drift by centimetres while the pusher
    moves far from them (4 cm for an 11 cm reach), so the term would forbid moving at all.

    An ensemble (``LatentEnsembleDynamics``) passes one probe per member: member ``m``'s latents
    ``states[m]`` are read by ``probe[m]`` from its own embedding ``z_obs[m]``, and ``score`` takes the
    members' mean cost plus ``beta`` times their std.

    Args:
        probe: the model folder's ``LinearProbe`` (latent -> task state), or one per ensemble member.
        task: the plan step, validated against the blocks present in ``obs``.
        obs: the current task state ``[S]``.
        z_obs: the embedding of ``obs`` ``[D]``, or each member's ``[M, D]``.
        beta: pessimism, the weight of the members' cost std (``Objective``).
        margin: how far inside the success boundary the step aims (m, ``TaskObjective``); ``None``: its default.
    """

    def __init__(self, probe: LinearProbe | Sequence[LinearProbe], task: Mapping[str, Any], obs: np.ndarray,
                 z_obs: Tensor, beta: float = 0.0, margin: float | None = None) -> None:
        super().__init__(beta)
        obs = np.asarray(obs, np.float32)
        self.probes = [probe] if isinstance(probe, LinearProbe) else list(probe)
        self.z_obs = z_obs.detach().reshape(len(self.probes), -1)  # [M, D]
        self.obs = torch.from_numpy(obs)
        terms = {} if margin is None else {"margin": margin}
        self.task = Objective.from_step(task, scene.present_blocks(obs), disturbance_weight=0.0, **terms)
        self.task.observe(obs)

    def cost(self, states: Tensor, actions: Tensor) -> Tensor:
        """``[...]`` of latents ``states[..., K, D]``, or an ensemble's ``states[M, ..., K, D]`` (the
        actions are not scored)."""
        if len(self.probes) == 1:
            s = self.probes[0].corrected(states, self.obs, self.z_obs[0])  # [..., K, S]
        else:
            if states.shape[0] != len(self.probes):
                raise ValueError(f"states of {states.shape[0]} members for {len(self.probes)} probes")
            s = torch.stack([p.corrected(z, self.obs, z0) for p, z, z0 in zip(self.probes, states, self.z_obs)])
        flags = list(scene.PRESENCE_FLAGS)
        s[..., flags] = self.obs[flags].to(s.device)
        return self.task.cost(s, actions)
