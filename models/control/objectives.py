"""Costs of imagined futures, built from a plan step: ``Objective.from_step(step, scene)``.

An ``Objective`` maps imagined ``states[..., F, S]`` and their ``actions[..., F, A]`` (the
dynamics' units) to a cost ``[...]`` (lower is better), vectorised in torch over any leading dims
(ensemble members, samples). ``score`` turns an ensemble's ``states[K, n, F, S]`` into one number
per candidate, ``mean_k + beta * std_k`` of the members' costs (MOPO-style pessimism); every
planner scores with it. The world model's latent costs (a goal embedding, the probe's plan-step
cost) are objectives too, over embeddings ``z[..., K, D]``: ``world_model.latent_objectives``.

``TaskObjective`` (PushBlocks, Reacher-v5) sums weighted terms, all in metres (or metres per step):

- **task distance** ``d_t``: PushBlocks push: the block to the target region's rectangle shrunk by
  ``margin`` (0 well inside), or its centre distance to block Y beyond ``ADJACENT_DIST - margin``
  ("next to Y"); reach: the pusher to a region (shrunk) or a point; Reacher-v5: fingertip to target.
  Cost ``running_weight * mean_t d_t + terminal_weight * d_F``: the running part makes a replanning
  controller hurry, the terminal part says where the chunk must end.
- **approach shaping** (push only): ``shaping_weight * mean_t`` distance of the pusher to the point
  behind the block on the line from the target, so chunks that bring the pusher into position
  score better than ones that wander.
- **keep-out zones** (optional): ``keepout_weight`` per step a body (the pusher, the pushed blocks,
  the Reacher fingertip) is inside a ``KeepOut`` zone, plus ``keepout_weight * depth / 0.01 m``.
- **action energy** (optional): ``energy_weight * mean_t |a[t] - a[t-1]|^2``, the size of each
  change of command.
- **disturbance** (PushBlocks, on by default): ``disturbance_weight * sum_b max_t
  max(|xy_b[t] - xy_b[origin]| - disturbance_deadband, 0)`` over every present block ``b`` the step
  does not name (``plan_progress.named_blocks``): the imagined displacement of the blocks the
  command leaves alone, from where they are when planning (``observe(obs)``, which the D-MPC
  policy calls before every replan; without it, the first imagined step). The dead-band absorbs
  model noise. Scored per ensemble member, so with ``beta > 0`` chunks whose predicted contact
  with another block is uncertain (members disagree) pay for the spread too. When the only way
  on is through another block, the term would stall the task forever: after
  ``disturbance_patience`` observed replans in which the step's distance did not shrink by
  ``PROGRESS_M``, the weight halves at every further such replan, and it doubles back at every
  replan in which the task progresses (restored step by step, so that a push that had to go
  through another block is not stopped again half-way by the full weight).
- **edge** (PushBlocks push, on by default): ``edge_weight * max_t max(|x|, |y| of the pushed block)
  - EDGE_LIMIT``, beyond 0: a block pushed further out than ``EDGE_LIMIT`` cannot be pushed back,
  because the pusher (clamped to the workspace) no longer fits between it and the table's edge.
  Near a corner or side region a chunk that overshoots the region into that band dead-ends the
  step; the term makes the planner aim for the part of the region it can still correct.

Example::

    objective = Objective.from_step({"skill": "push", "object": "red_block", "target": "left"},
                                    scene.scene_description(("red_block",)))
    costs = objective.score(dynamics.rollout(obs_history, actions), actions)   # [n]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from forethought.sim import PUSH_BLOCKS_ID, REACHER_ID, scene, task_env_id
from forethought.sim.plan_progress import named_blocks

KEEPOUT_DEPTH_SCALE = 0.01
"""Penetration (m) that costs as much again as being inside a keep-out zone at all."""
DISTURBANCE_WEIGHT = 30.0
"""Default weight of the disturbance term (cost per metre a block the step does not name moves);
chosen with ``DISTURBANCE_DEADBAND`` on dev seeds 100-129 of ``bench/tidy.py`` (BENCHMARKS.md)."""
DISTURBANCE_PATIENCE = 3
"""Default number of replans without progress before the disturbance weight starts halving (chosen on
dev seeds, BENCHMARKS.md)."""
PROGRESS_M = 0.005
"""A replan counts as progress for the disturbance term's patience when the step's distance shrank this much (m)."""
EDGE_LIMIT = scene.WORKSPACE_HALF - scene.BLOCK_HALF - scene.PUSHER_RADIUS
"""|x| or |y| (m) of a block centre beyond which the pusher cannot get between the block and the table's edge."""
EDGE_WEIGHT = 10.0
"""Default weight of the edge term (cost per metre a pushed block is imagined beyond ``EDGE_LIMIT``);
chosen on dev seeds 100-199 and 5000-5199 of ``bench/tidy.py`` (BENCHMARKS.md)."""
SHAPING_WEIGHT = 0.3
"""Default weight of the approach shaping (push only)."""
PUSH_OFFSET = scene.BLOCK_HALF + scene.PUSHER_RADIUS + 0.005
"""Distance (m) of the pushing position behind a block from its centre: the pusher touching it, plus 5 mm."""
DISTURBANCE_DEADBAND = 0.01
"""Default dead-band (m) of the disturbance term: smaller imagined displacements cost nothing (the
shipped relational ensemble imagines a few mm of motion for blocks nothing touches; the flat one
before it imagined more, and needed 1.5 cm)."""


@dataclass(frozen=True)
class KeepOut:
    """A zone the controlled bodies must not enter: a circle (``size = (radius,)``) or an
    axis-aligned rectangle (``size = (half_x, half_y)``), in the table (or Reacher world) frame."""

    kind: str
    center: tuple[float, float]
    size: tuple[float, ...]

    def __post_init__(self) -> None:
        want = {"circle": 1, "rect": 2}
        if self.kind not in want:
            raise ValueError(f"keep-out kind must be 'circle' or 'rect', got {self.kind!r}")
        if len(self.center) != 2 or len(self.size) != want[self.kind] or min(self.size) <= 0:
            raise ValueError(f"a {self.kind} keep-out needs center (x, y) and {want[self.kind]} positive size "
                             f"value(s), got center {self.center} and size {self.size}")

    @classmethod
    def parse(cls, text: str) -> KeepOut:
        """``"circle:x,y,r"`` or ``"rect:x,y,hx,hy"`` (metres)."""
        kind, _, rest = text.partition(":")
        try:
            values = [float(v) for v in rest.split(",")]
        except ValueError:
            raise ValueError(f"keep-out {text!r}: expected circle:x,y,r or rect:x,y,hx,hy") from None
        if len(values) < 3:
            raise ValueError(f"keep-out {text!r}: expected circle:x,y,r or rect:x,y,hx,hy")
        return cls(kind, (values[0], values[1]), tuple(values[2:]))

    def depth(self, xy: Tensor) -> Tensor:
        """Penetration ``[...]`` (m, 0 outside) of points ``xy[..., 2]``."""
        c = xy.new_tensor(self.center)
        if self.kind == "circle":
            return (self.size[0] - (xy - c).norm(dim=-1)).clamp_min(0.0)
        return ((xy.new_tensor(self.size) - (xy - c).abs()).clamp_min(0.0)).amin(-1)

    def contains(self, xy: np.ndarray) -> bool:
        """Whether point ``xy[2]`` lies inside the zone."""
        return bool(self.depth(torch.as_tensor(np.asarray(xy, dtype=np.float64)[:2])) > 0)


def _rect_distance(xy: Tensor, center: tuple[float, float], half: tuple[float, float]) -> Tensor:
    """Distance ``[...]`` from points ``xy[..., 2]`` to a rectangle (0 inside)."""
    d = (xy - xy.new_tensor(center)).abs() - xy.new_tensor(half)
    return d.clamp_min(0.0).norm(dim=-1)


def _check_weights(**weights: float) -> None:
    for name, v in weights.items():
        if not (np.isfinite(v) and v >= 0):
            raise ValueError(f"objective {name} must be a finite number >= 0, got {v!r}")


class Objective(ABC):
    """What the planners score with: ``cost`` of one imagined future, ``score`` of an ensemble's.

    Args:
        beta: pessimism, the weight of the std of the members' costs in ``score``.
    """

    def __init__(self, beta: float = 0.0) -> None:
        _check_weights(beta=beta)
        self.beta = float(beta)

    @abstractmethod
    def cost(self, states: Tensor, actions: Tensor) -> Tensor:
        """Cost ``[...]`` of ``states[..., F, S]`` reached by ``actions[..., F, A]`` (broadcast over leading dims)."""

    def observe(self, obs: np.ndarray | Tensor) -> None:
        """Take the current observation ``obs[S]`` before planning (terms measured from it, such
        as the disturbance term, use it; the others ignore it)."""

    def score(self, states: Tensor, actions: Tensor) -> Tensor:
        """``[n]`` for an ensemble's ``states[K, n, F, S]`` and ``actions[n, F, A]``:
        ``mean_k cost + beta * std_k cost`` (the std only when K > 1)."""
        c = self.cost(states, actions.unsqueeze(0))  # [K, n]
        if self.beta > 0 and c.shape[0] > 1:
            return c.mean(0) + self.beta * c.std(0)
        return c.mean(0)

    @staticmethod
    def from_step(step: Mapping[str, Any], scene_info: Mapping[str, Any] | Sequence[str] | None = None,
                  env_id: str = PUSH_BLOCKS_ID, **terms: Any) -> TaskObjective:
        """The objective of plan step ``step`` in a scene.

        Args:
            step: ``{"skill": "push", "object": ..., "target": region|block}`` or
                ``{"skill": "reach", "target": region|[x, y]}`` (validated against the scene).
            scene_info: PushBlocks: ``scene.scene_description(present)`` or the tuple of present
                block names (default: all three); ignored for Reacher-v5.
            env_id: ``forethought/PushBlocks-v0`` or ``forethought/Reacher-v5``.
            terms: weights and zones for ``TaskObjective.__init__`` (and ``margin``, ``shaping_weight``,
                ``disturbance_weight``, ``disturbance_deadband`` for PushBlocks).
        """
        if env_id == REACHER_ID:
            from forethought.sim.adapters import ReacherGoalEnv

            return ReacherObjective(ReacherGoalEnv.validate_task(step)["target"], **terms)
        if task_env_id(env_id) != PUSH_BLOCKS_ID:
            raise ValueError(f"no objective for env {env_id!r}: supported envs are {[PUSH_BLOCKS_ID, REACHER_ID]} "
                             "and envs with their tasks")
        if scene_info is None:
            present: tuple[str, ...] = scene.BLOCK_NAMES
        elif isinstance(scene_info, Mapping):
            present = tuple(scene_info["blocks"])
        else:
            present = tuple(scene_info)
        return PushBlocksObjective(scene.validate_step(step, present), present=present, **terms)


class TaskObjective(Objective):
    """Weighted task-distance terms (module docstring): subclasses give the per-step task distance
    and the guarded bodies.

    Args:
        running_weight, terminal_weight: weights of ``mean_t d_t`` and ``d_F``.
        keepouts: zones the guarded bodies (``bodies``) must avoid; ``keepout_weight`` per step inside.
        energy_weight: weight of the mean squared change of command.
        beta: pessimism, the weight of the std of the members' costs in ``score``.
    """

    def __init__(self, running_weight: float = 1.0, terminal_weight: float = 2.0, keepouts: Sequence[KeepOut] = (),
                 keepout_weight: float = 1.0, energy_weight: float = 0.0, beta: float = 0.0) -> None:
        super().__init__(beta)
        _check_weights(running_weight=running_weight, terminal_weight=terminal_weight, keepout_weight=keepout_weight,
                       energy_weight=energy_weight)
        self.running_weight, self.terminal_weight = float(running_weight), float(terminal_weight)
        self.keepouts, self.keepout_weight = tuple(keepouts), float(keepout_weight)
        self.energy_weight = float(energy_weight)

    @abstractmethod
    def distance(self, states: Tensor) -> Tensor:
        """Task distance ``d[..., F]`` (m) of ``states[..., F, S]``."""

    @abstractmethod
    def bodies(self, states: Tensor) -> Tensor:
        """Positions ``[..., F, B, 2]`` of the bodies the keep-out zones apply to."""

    def shaping(self, states: Tensor) -> Tensor:
        """Extra task-specific cost ``[...]`` (0 by default)."""
        return states.new_zeros(states.shape[:-2])

    def keepout_penalty(self, states: Tensor) -> Tensor:
        """``[...]``: summed over steps and bodies, ``keepout_weight * (1 + depth / 0.01 m)`` while inside."""
        if not self.keepouts:
            return states.new_zeros(states.shape[:-2])
        xy = self.bodies(states)  # [..., F, B, 2]
        total = states.new_zeros(states.shape[:-2])
        for zone in self.keepouts:
            depth = zone.depth(xy)  # [..., F, B]
            total = total + ((depth > 0).float() + depth / KEEPOUT_DEPTH_SCALE).sum((-1, -2))
        return self.keepout_weight * total

    def violated(self, obs: np.ndarray) -> bool:
        """Whether a guarded body is inside a keep-out zone in one observation ``obs[S]``."""
        xy = self.bodies(torch.as_tensor(np.asarray(obs, dtype=np.float32))[None])[0]  # [B, 2]
        return any(bool((zone.depth(xy) > 0).any()) for zone in self.keepouts)

    def cost(self, states: Tensor, actions: Tensor) -> Tensor:
        d = self.distance(states)  # [..., F]
        total = self.running_weight * d.mean(-1) + self.terminal_weight * d[..., -1] + self.shaping(states)
        total = total + self.keepout_penalty(states)
        if self.energy_weight > 0 and actions.shape[-2] > 1:
            total = total + self.energy_weight * actions.diff(dim=-2).square().sum(-1).mean(-1)
        return total


class PushBlocksObjective(TaskObjective):
    """PushBlocks push / push-next-to / reach (see the module docstring).

    Args:
        step: a validated plan step.
        margin: aim this far (m) inside the success boundary, to absorb model error.
        shaping_weight: weight of the pusher's distance to its pushing position (push only).
        present: the blocks in the scene (default: all three).
        disturbance_weight, disturbance_deadband: the disturbance term (0 turns it off).
        disturbance_patience: replans without progress before the disturbance weight starts halving.
        edge_weight: the edge term (push only; 0 turns it off).
    """

    def __init__(self, step: Mapping[str, Any], margin: float = 0.01, shaping_weight: float = SHAPING_WEIGHT,
                 present: Sequence[str] = scene.BLOCK_NAMES, disturbance_weight: float = DISTURBANCE_WEIGHT,
                 disturbance_deadband: float = DISTURBANCE_DEADBAND, disturbance_patience: int = DISTURBANCE_PATIENCE,
                 edge_weight: float = EDGE_WEIGHT, **terms: Any) -> None:
        super().__init__(**terms)
        if not (np.isfinite(margin) and margin >= 0) or not (np.isfinite(shaping_weight) and shaping_weight >= 0):
            raise ValueError(f"margin and shaping_weight must be finite and >= 0, got {margin!r}, {shaping_weight!r}")
        _check_weights(disturbance_weight=disturbance_weight, disturbance_deadband=disturbance_deadband,
                       disturbance_patience=disturbance_patience, edge_weight=edge_weight)
        self.step, self.margin, self.shaping_weight = dict(step), float(margin), float(shaping_weight)
        self.disturbance_weight, self.disturbance_deadband = float(disturbance_weight), float(disturbance_deadband)
        self.bystanders = [scene.block_slice(b) for b in present if b not in named_blocks(step)]
        """Observation slices of the present blocks the step does not name."""
        self.disturbance_patience = int(disturbance_patience)
        self.edge_weight = float(edge_weight)
        self.origin: Tensor | None = None
        """The observation ``[S]`` the disturbance is measured from (``observe``)."""
        self.best_distance, self.stalled = float("inf"), 0
        """The step's smallest observed distance (m) and the observed replans since it last shrank."""
        target = step["target"]
        self.region = scene.REGIONS.get(target) if isinstance(target, str) else None
        self.half = None if self.region is None else tuple(max(h - self.margin, 0.0) for h in self.region.half)
        self.other = scene.block_slice(target) if isinstance(target, str) and target in scene.BLOCK_NAMES else None
        self.point = None if isinstance(target, str) else tuple(float(v) for v in target)
        self.object = scene.block_slice(step["object"]) if step["skill"] == "push" else None

    def _xy(self, states: Tensor, s: slice) -> Tensor:
        return states[..., s.start + 1 : s.start + 3]

    def _target_xy(self, states: Tensor) -> Tensor:
        """Where the object (push) or pusher (reach) should go, ``[..., F, 2]``."""
        if self.other is not None:
            return self._xy(states, self.other)
        xy = self.region.center if self.region is not None else self.point
        return states.new_tensor(xy).expand(*states.shape[:-1], 2)

    def distance(self, states: Tensor) -> Tensor:
        xy = self._xy(states, self.object) if self.object is not None else states[..., scene.PUSHER_POS]
        if self.region is not None:
            return _rect_distance(xy, self.region.center, self.half)
        gap = (xy - self._target_xy(states)).norm(dim=-1)
        if self.other is not None:
            return (gap - (scene.ADJACENT_DIST - self.margin)).clamp_min(0.0)
        return gap

    def observe(self, obs: np.ndarray | Tensor) -> None:
        self.origin = torch.as_tensor(obs, dtype=torch.float32).reshape(-1)
        distance = scene.step_distance(self.step, self.origin.cpu().numpy())
        if distance < self.best_distance - PROGRESS_M:
            self.best_distance = distance
            self.stalled = self.stalled - 1 if self.stalled > self.disturbance_patience else 0
        else:
            self.stalled += 1

    @property
    def effective_disturbance_weight(self) -> float:
        """``disturbance_weight``, halved per observed replan without progress beyond the patience
        (and doubled back per replan with progress)."""
        return self.disturbance_weight * 0.5 ** max(0, self.stalled - self.disturbance_patience)

    def disturbance(self, states: Tensor) -> Tensor:
        """``[...]``: summed over the blocks the step does not name, their largest imagined displacement
        (m) from the origin beyond the dead-band; unweighted."""
        total = states.new_zeros(states.shape[:-2])
        if not self.bystanders:
            return total
        origin = states[..., :1, :] if self.origin is None else self.origin.to(states)
        for s in self.bystanders:
            moved = (self._xy(states, s) - self._xy(origin, s)).norm(dim=-1)  # [..., F]
            total = total + (moved - self.disturbance_deadband).clamp_min(0.0).amax(-1)
        return total

    def edge(self, states: Tensor) -> Tensor:
        """``[...]``: how far (m) the pushed block is imagined beyond ``EDGE_LIMIT`` at its furthest; unweighted."""
        if self.object is None:
            return states.new_zeros(states.shape[:-2])
        return (self._xy(states, self.object).abs() - EDGE_LIMIT).clamp_min(0.0).amax((-1, -2))

    def cost(self, states: Tensor, actions: Tensor) -> Tensor:
        total = super().cost(states, actions)
        if self.disturbance_weight > 0:
            total = total + self.effective_disturbance_weight * self.disturbance(states)
        if self.edge_weight > 0:
            total = total + self.edge_weight * self.edge(states)
        return total

    def bodies(self, states: Tensor) -> Tensor:
        parts = [states[..., scene.PUSHER_POS]]
        if self.object is not None:
            parts.append(self._xy(states, self.object))
        return torch.stack(parts, dim=-2)

    def shaping(self, states: Tensor) -> Tensor:
        if self.object is None or self.shaping_weight == 0:
            return super().shaping(states)
        block = self._xy(states, self.object)  # [..., F, 2]
        gap = pushing_gap(states[..., scene.PUSHER_POS], block, self._target_xy(states))  # [..., F]
        return self.shaping_weight * gap.mean(-1)


def pushing_gap(pusher: Tensor, block: Tensor, target: Tensor) -> Tensor:
    """Distance (m) ``[...]`` of ``pusher[..., 2]`` to the pushing position of ``block[..., 2]``: ``PUSH_OFFSET``
    behind its centre on the line away from ``target[..., 2]`` (the approach shaping's point)."""
    away = block - target
    away = away / away.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    behind = block + away * PUSH_OFFSET
    return (pusher - behind).norm(dim=-1)


class ReacherObjective(TaskObjective):
    """Reacher-v5: fingertip (``obs[8:10] + obs[4:6]``, world frame) to ``target`` ``[x, y]``."""

    FINGERTIP_TO_GOAL = slice(8, 10)
    GOAL = slice(4, 6)

    def __init__(self, target: Sequence[float], **terms: Any) -> None:
        super().__init__(**terms)
        self.target = tuple(float(v) for v in target)

    def fingertip(self, states: Tensor) -> Tensor:
        """``[..., F, 2]`` fingertip positions (m, world frame)."""
        return states[..., self.FINGERTIP_TO_GOAL] + states[..., self.GOAL]

    def distance(self, states: Tensor) -> Tensor:
        return (self.fingertip(states) - states.new_tensor(self.target)).norm(dim=-1)

    def bodies(self, states: Tensor) -> Tensor:
        return self.fingertip(states).unsqueeze(-2)
