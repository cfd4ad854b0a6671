"""The PushBlocks scene: table geometry, named regions, blocks, observation layout and plan steps.

This module is the contract shared by the MuJoCo env, the scripted experts, the ROS nodes and
(later) the LLM planner's plan schema. It is pure numpy: no MuJoCo, no ROS.

Coordinates are metres in the table frame: x to the right, y to the top of the top-down
camera image, origin at the table centre.

Observation layout (flat ``float32``, ``OBS_DIM`` = 16):

| index | name | unit |
|---|---|---|
| 0, 1 | pusher x, y | m |
| 2, 3 | pusher vx, vy | m/s |
| 4 + 4i + 0 | block i present (1) or absent (0) | - |
| 4 + 4i + 1, 2 | block i x, y | m |
| 4 + 4i + 3 | block i yaw, wrapped to [-pi/4, pi/4) (a square's symmetry) | rad |

with block slots i = 0, 1, 2 for ``red_block``, ``green_block``, ``blue_block``. An absent
block has all four of its entries set to 0.

A plan step (the task) is a JSON-able dict:

- ``{"skill": "push", "object": "red_block", "target": "left"}``: target is a region or another
  block (meaning "next to it");
- ``{"skill": "reach", "target": "center"}`` or ``{"skill": "reach", "target": [x, y]}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

# Table and bodies (metres).
TABLE_HALF = 0.30
"""Half side of the square table surface; walls stand just outside it."""
WORKSPACE_HALF = 0.27
"""The pusher's commanded position is clamped to [-WORKSPACE_HALF, WORKSPACE_HALF]^2."""
BLOCK_HALF = 0.02
"""Blocks are cubes of side 2 * BLOCK_HALF."""
PUSHER_RADIUS = 0.015
PUSHER_JOINTS: tuple[str, str] = ("pusher_x", "pusher_y")
"""The pusher's slide joints (and their motors), in action order: the names on the ROS
``joint_states``, ``joint_commands`` and ``joint_trajectory`` topics."""

# Success tolerances.
REGION_TOL = 0.0
"""Extra margin (m) around a region in which a block or pusher still counts as inside."""
ADJACENT_DIST = 2 * BLOCK_HALF + 0.03
"""A block is "next to" another when their centres are closer than this (m)."""
REACH_POINT_TOL = 0.02
"""A reach to an [x, y] point succeeds within this distance (m)."""

BLOCK_NAMES: tuple[str, ...] = ("red_block", "green_block", "blue_block")
BLOCK_RGBA: dict[str, tuple[float, float, float, float]] = {
    "red_block": (0.85, 0.15, 0.15, 1.0),
    "green_block": (0.15, 0.7, 0.2, 1.0),
    "blue_block": (0.15, 0.3, 0.85, 1.0),
}


@dataclass(frozen=True)
class Region:
    """An axis-aligned rectangle on the table."""

    name: str
    center: tuple[float, float]
    half: tuple[float, float]

    def contains(self, xy: np.ndarray, tol: float = REGION_TOL) -> bool:
        """Whether point ``xy[2]`` lies inside the rectangle grown by ``tol``."""
        d = np.abs(np.asarray(xy, dtype=np.float64)[:2] - np.asarray(self.center))
        return bool(np.all(d <= np.asarray(self.half) + tol))

    def distance(self, xy: np.ndarray) -> float:
        """Euclidean distance from ``xy`` to the rectangle (0 inside)."""
        d = np.abs(np.asarray(xy, dtype=np.float64)[:2] - np.asarray(self.center)) - np.asarray(self.half)
        return float(np.linalg.norm(np.maximum(d, 0.0)))


REGIONS: dict[str, Region] = {
    r.name: r
    for r in (
        Region("center", (0.0, 0.0), (0.05, 0.05)),
        Region("left", (-0.20, 0.0), (0.06, 0.08)),
        Region("right", (0.20, 0.0), (0.06, 0.08)),
        Region("top_left", (-0.20, 0.20), (0.06, 0.06)),
        Region("top_right", (0.20, 0.20), (0.06, 0.06)),
        Region("bottom_left", (-0.20, -0.20), (0.06, 0.06)),
        Region("bottom_right", (0.20, -0.20), (0.06, 0.06)),
    )
}
REGION_NAMES: tuple[str, ...] = tuple(REGIONS)

# Observation layout.
PUSHER_POS = slice(0, 2)
PUSHER_VEL = slice(2, 4)
BLOCK_STRIDE = 4
OBS_DIM = 4 + BLOCK_STRIDE * len(BLOCK_NAMES)
ACTION_DIM = len(PUSHER_JOINTS)
OBS_LABELS: tuple[str, ...] = (*PUSHER_JOINTS, "pusher_vx", "pusher_vy") + tuple(
    f"{b}_{f}" for b in BLOCK_NAMES for f in ("present", "x", "y", "yaw")
)
PRESENCE_FLAGS: tuple[int, ...] = tuple(4 + BLOCK_STRIDE * i for i in range(len(BLOCK_NAMES)))
"""Observation indices of the blocks' presence flags, in ``BLOCK_NAMES`` order (``block_slice(b).start``)."""


def wrap_yaw(yaw: float) -> float:
    """Wrap a block's yaw to ``[-pi/4, pi/4)``: a square looks the same every quarter turn."""
    q = np.pi / 2
    return (yaw + q / 2) % q - q / 2


def block_slice(name: str) -> slice:
    """Slice of the observation holding ``[present, x, y, yaw]`` of block ``name``."""
    i = BLOCK_NAMES.index(check_block(name))
    start = 4 + BLOCK_STRIDE * i
    return slice(start, start + BLOCK_STRIDE)


def block_xy(obs: np.ndarray, name: str) -> np.ndarray:
    """Block ``name``'s ``[x, y]`` from an observation ``obs[..., OBS_DIM]``."""
    s = block_slice(name)
    return np.asarray(obs)[..., s.start + 1 : s.start + 3]


def present_blocks(obs: np.ndarray) -> tuple[str, ...]:
    """Names of the blocks whose presence flag is set in ``obs[OBS_DIM]``."""
    return tuple(b for b in BLOCK_NAMES if obs[block_slice(b).start] > 0.5)


def check_block(name: str, present: tuple[str, ...] | None = None) -> str:
    """Return ``name`` if it is a (present) block, else raise ``ValueError`` listing valid names."""
    valid = BLOCK_NAMES if present is None else present
    if name not in valid:
        raise ValueError(f"unknown object {name!r}: valid blocks in this scene are {list(valid)}")
    return name


def check_region(name: str) -> Region:
    """Return region ``name``, else raise ``ValueError`` listing the valid names."""
    if name not in REGIONS:
        raise ValueError(f"unknown region {name!r}: valid regions are {list(REGION_NAMES)}")
    return REGIONS[name]


def validate_step(step: Mapping[str, Any], present: tuple[str, ...] = BLOCK_NAMES) -> dict[str, Any]:
    """Check a plan step against the scene and return a normalised copy.

    Raises ``ValueError`` naming the bad field, the value received and the valid choices.
    """
    if not isinstance(step, Mapping):
        raise ValueError(f"a plan step must be a dict, got {type(step).__name__}")
    skill = step.get("skill")
    if skill == "push":
        extra = set(step) - {"skill", "object", "target"}
        if extra:
            raise ValueError(f"unexpected keys in push step: {sorted(extra)}")
        obj = check_block(str(step.get("object")), present)
        target = step.get("target")
        if not isinstance(target, str):
            raise ValueError(f"push target must be a region or block name, got {target!r}")
        if target in BLOCK_NAMES:
            check_block(target, present)
            if target == obj:
                raise ValueError(f"cannot push {obj!r} next to itself")
        else:
            check_region(target)
        return {"skill": "push", "object": obj, "target": target}
    if skill == "reach":
        extra = set(step) - {"skill", "target"}
        if extra:
            raise ValueError(f"unexpected keys in reach step: {sorted(extra)}")
        target = step.get("target")
        if isinstance(target, str):
            check_region(target)
            return {"skill": "reach", "target": target}
        if isinstance(target, (list, tuple)) and len(target) == 2:
            xy = [float(v) for v in target]
            if not all(np.isfinite(xy)) or max(abs(v) for v in xy) > WORKSPACE_HALF:
                raise ValueError(f"reach point {xy} is outside the workspace |x|,|y| <= {WORKSPACE_HALF}")
            return {"skill": "reach", "target": xy}
        raise ValueError(f"reach target must be a region name or [x, y], got {target!r}")
    raise ValueError(f"unknown skill {skill!r}: valid skills are ['push', 'reach']")


def target_xy(step: Mapping[str, Any], obs: np.ndarray) -> np.ndarray:
    """Where the step wants its object (push) or the pusher (reach) to go, as ``[x, y]``."""
    target = step["target"]
    if isinstance(target, str):
        if target in REGIONS:
            return np.asarray(REGIONS[target].center, dtype=np.float64)
        return np.asarray(block_xy(obs, target), dtype=np.float64)
    return np.asarray(target, dtype=np.float64)


def step_distance(step: Mapping[str, Any], obs: np.ndarray) -> float:
    """Distance (m) still to cover for the step: 0 once it is achieved.

    push to a region: block to rectangle; push next to a block: centre distance beyond
    ``ADJACENT_DIST``; reach a region: pusher to rectangle; reach a point: pusher to point beyond
    ``REACH_POINT_TOL``.
    """
    obs = np.asarray(obs)
    target = step["target"]
    xy = block_xy(obs, step["object"]) if step["skill"] == "push" else obs[PUSHER_POS]
    if isinstance(target, str) and target in REGIONS:
        return REGIONS[target].distance(xy)
    tol = ADJACENT_DIST if step["skill"] == "push" else REACH_POINT_TOL
    return max(0.0, float(np.linalg.norm(np.asarray(xy) - target_xy(step, obs))) - tol)


def is_success(step: Mapping[str, Any], obs: np.ndarray) -> bool:
    """Whether the step is achieved in observation ``obs``."""
    return step_distance(step, obs) <= 0.0


def scene_description(present: tuple[str, ...]) -> dict[str, Any]:
    """What the planner may name in this scene: ``{"blocks": [...], "regions": [...]}``."""
    return {"blocks": list(present), "regions": list(REGION_NAMES)}
