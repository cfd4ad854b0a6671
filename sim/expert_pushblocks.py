"""Scripted expert for ``forethought/PushBlocks-v0``: reach and push from the observation alone.

Push, the classic way:

1. pick the block's goal: the region centre, or a free spot beside the other block; when other
   blocks are in the way, the next waypoint of a route around them; the push direction ``d``
   points from the block to it;
2. go to the approach point behind the block (``-d`` side), travelling around the blocks, not
   through them (a small visibility graph over circles around each block);
3. push along ``d`` while steering the pusher back onto the line block -> goal; ``d`` is
   recomputed every step, so a block that drifts off the line is re-aimed;
4. when the pusher slips too far off the line, back off and re-approach;
5. hold still once the step is achieved.

Reach goes to the region centre (or point) along the same collision-free route.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from forethought.sim import scene
from forethought.sim.experts import Expert
from forethought.sim.scene import BLOCK_HALF, PUSHER_RADIUS, WORKSPACE_HALF

CONTACT = BLOCK_HALF + PUSHER_RADIUS
"""Pusher-centre to block-centre distance at face contact (m)."""
AVOID_RADIUS = BLOCK_HALF * math.sqrt(2.0) + PUSHER_RADIUS + 0.012
"""The pusher's centre keeps this far from a block it travels around (m)."""
APPROACH = AVOID_RADIUS + 0.004
"""Distance (m) from the block's centre of the approach point behind it."""
BESIDE_DIST = 0.05
"""A block pushed "next to" another aims at a spot this far (m) from the other's centre."""
BLOCK_CLEARANCE = 0.06
"""A pushed block's centre is routed this far (m) around the other blocks' centres."""
BLOCK_ROUTE_HALF = 0.22
"""Waypoints of a pushed block stay in [-BLOCK_ROUTE_HALF, BLOCK_ROUTE_HALF]^2 (m)."""
_ang = np.linspace(0.0, 2 * np.pi, 8, endpoint=False)
_SIDES = np.stack([np.cos(_ang), np.sin(_ang)], axis=1)  # [8, 2] unit directions


def _segment_point_dist(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Distances from points ``c[K, 2]`` to segments ``a[..., 2] -> b[..., 2]``: ``[..., K]``."""
    ab = (b - a)[..., None, :]  # [..., 1, 2]
    ac = c - a[..., None, :]  # [..., K, 2]
    den = np.maximum(np.sum(ab * ab, axis=-1), 1e-12)
    t = np.clip(np.sum(ac * ab, axis=-1) / den, 0.0, 1.0)
    return np.linalg.norm(ac - t[..., None] * ab, axis=-1)


def plan_waypoint(
    start: np.ndarray, goal: np.ndarray, obstacles: np.ndarray, radius: float, limit: float = WORKSPACE_HALF - 0.003
) -> np.ndarray:
    """Next waypoint on a short path ``start[2] -> goal[2]`` keeping ``radius`` from ``obstacles[K, 2]``.

    Obstacles that contain ``start`` are first left radially; obstacles that contain ``goal``
    are ignored (the goal is then reached by bumping). Waypoints stay in ``[-limit, limit]^2``.
    Falls back to ``goal`` if no path exists.
    """
    start, goal = np.asarray(start, np.float64), np.asarray(goal, np.float64)
    obstacles = np.asarray(obstacles, np.float64).reshape(-1, 2)
    if len(obstacles) == 0:
        return goal
    obstacles = obstacles[np.linalg.norm(obstacles - goal, axis=1) >= radius * 0.95]
    if len(obstacles) == 0:
        return goal
    d_start = np.linalg.norm(obstacles - start, axis=1)
    inside = d_start < radius * 0.95
    if np.any(inside):
        k = int(np.argmin(d_start))
        out = start - obstacles[k]
        n = np.linalg.norm(out)
        out = out / n if n > 1e-9 else (goal - obstacles[k]) / max(np.linalg.norm(goal - obstacles[k]), 1e-9)
        return obstacles[k] + out * radius * 1.15
    if np.all(_segment_point_dist(start, goal, obstacles) >= radius * 0.97):
        return goal
    # Visibility graph: start, goal and a ring of nodes around each obstacle.
    ang = np.linspace(0.0, 2 * np.pi, 12, endpoint=False)
    ring = np.stack([np.cos(ang), np.sin(ang)], axis=1) * radius * 1.12
    cand = (obstacles[:, None, :] + ring[None]).reshape(-1, 2)
    ok = np.all(np.abs(cand) <= limit, axis=1)
    ok &= np.all(np.linalg.norm(cand[:, None, :] - obstacles[None], axis=2) >= radius, axis=1)
    nodes = np.concatenate([start[None], goal[None], cand[ok]], axis=0)  # [N, 2]
    seg = _segment_point_dist(nodes[:, None, :].repeat(len(nodes), 1), nodes[None, :, :].repeat(len(nodes), 0), obstacles)
    clear = np.all(seg >= radius * 0.97, axis=-1)  # [N, N]
    length = np.linalg.norm(nodes[:, None] - nodes[None], axis=-1)
    cost = np.where(clear, length, np.inf)
    # Dijkstra on the dense graph (N <= 38).
    n = len(nodes)
    dist = np.full(n, np.inf)
    prev = np.full(n, -1)
    done = np.zeros(n, bool)
    dist[0] = 0.0
    for _ in range(n):
        u = int(np.argmin(np.where(done, np.inf, dist)))
        if not np.isfinite(dist[u]) or u == 1:
            break
        done[u] = True
        alt = dist[u] + cost[u]
        better = alt < dist
        dist[better], prev[better] = alt[better], u
    if not np.isfinite(dist[1]):
        return goal
    v = 1
    while prev[v] != 0:
        v = int(prev[v])
    return nodes[v]


class PushBlocksExpert(Expert):
    """Reach / push expert for PushBlocks; ``act(obs, step) -> float32[2]`` target pusher position.

    Args:
        travel_step: largest move (m) commanded per step while travelling.
        push_step: how far ahead of the pusher (m) the target is set while pushing.
    """

    def __init__(self, travel_step: float = 0.035, push_step: float = 0.02) -> None:
        for name, v in (("travel_step", travel_step), ("push_step", push_step)):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number of metres, got {v!r}")
        self.travel_step, self.push_step = float(travel_step), float(push_step)
        self._pushing = False
        self._side: int | None = None  # index into _SIDES of the current "next to" goal
        self._key: tuple[Any, ...] | None = None  # the step the state above belongs to

    def reset(self) -> None:
        self._pushing = False
        self._side = None
        self._key = None

    def act(self, obs: np.ndarray, step: Mapping[str, Any]) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        if obs.shape != (scene.OBS_DIM,) or not np.all(np.isfinite(obs)):
            raise ValueError(f"obs must be a finite [{scene.OBS_DIM}] PushBlocks observation, got shape {obs.shape}")
        present = scene.present_blocks(obs)
        step = scene.validate_step(step, present)
        key = (step["skill"], step.get("object"), str(step["target"]))
        if key != self._key:  # a new step (e.g. the plan moved on): forget the old one's state
            self.reset()
            self._key = key
        p = obs[scene.PUSHER_POS]
        if scene.is_success(step, obs):
            self._pushing = False
            return self._clip(p)
        blocks = {b: scene.block_xy(obs, b).astype(np.float64) for b in present}
        if step["skill"] == "reach":
            goal = scene.target_xy(step, obs)
            return self._travel(p, goal, np.array(list(blocks.values())))
        return self._push(p, step, blocks)

    # ------------------------------------------------------------------ skills
    def _push(self, p: np.ndarray, step: Mapping[str, Any], blocks: dict[str, np.ndarray]) -> np.ndarray:
        obj = step["object"]
        b = blocks[obj]
        target = step["target"]
        others = [xy for name, xy in blocks.items() if name not in (obj, target)]
        if target in blocks:
            g = self._beside(b, blocks[target], others)
            others.append(blocks[target])
        else:
            g = np.asarray(scene.REGIONS[target].center, np.float64)
        if others:  # route the block around the other blocks
            g = plan_waypoint(b, g, np.array(others), BLOCK_CLEARANCE, limit=BLOCK_ROUTE_HALF)
        to_goal = g - b
        dist = float(np.linalg.norm(to_goal))
        d = to_goal / max(dist, 1e-9)
        n = np.array([-d[1], d[0]])
        rel = p - b
        lon, lat = float(rel @ d), float(rel @ n)
        if self._pushing:
            self._pushing = abs(lat) < 0.018 and -(CONTACT + 0.05) < lon < -(CONTACT - 0.012)
        else:
            self._pushing = abs(lat) < 0.007 and -(APPROACH + 0.01) < lon < -(CONTACT - 0.008)
        if self._pushing:
            # Forward along d, and back onto the line through the block towards the goal.
            return self._clip(p + d * self.push_step - n * lat)
        approach = b - d * APPROACH
        return self._travel(p, approach, np.array(list(blocks.values())))

    def _beside(self, b: np.ndarray, t: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
        """Goal for pushing block ``b[2]`` next to block ``t[2]``: a free spot beside ``t``.

        Spots on the far side of ``t``, outside the workspace, on another block, or whose straight
        push path crosses another block are penalised; the choice sticks unless another spot is
        clearly better.
        """
        spots = t + _SIDES * BESIDE_DIST  # [8, 2]
        length = np.linalg.norm(spots - b, axis=1)
        obstacles = np.array([t, *others])
        blocked = np.any(_segment_point_dist(np.repeat(b[None], len(spots), 0), spots, obstacles) < 0.05, axis=1)
        bad = np.any(np.abs(spots) > WORKSPACE_HALF - 0.02, axis=1)
        if others:
            bad |= np.any(np.linalg.norm(spots[:, None] - np.array(others)[None], axis=2) < 2 * BLOCK_HALF + 0.01, axis=1)
        cost = length + 0.5 * blocked + 1.0 * bad
        best = int(np.argmin(cost))
        if self._side is None or cost[self._side] > cost[best] + 0.03:
            self._side = best
        return spots[self._side]

    def _travel(self, p: np.ndarray, goal: np.ndarray, obstacles: np.ndarray) -> np.ndarray:
        goal = np.clip(goal, -WORKSPACE_HALF, WORKSPACE_HALF)
        w = plan_waypoint(p, goal, obstacles, AVOID_RADIUS)
        delta = w - p
        n = float(np.linalg.norm(delta))
        if n > self.travel_step:
            delta *= self.travel_step / n
        return self._clip(p + delta)

    @staticmethod
    def _clip(xy: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(xy, np.float64), -WORKSPACE_HALF, WORKSPACE_HALF).astype(np.float32)
