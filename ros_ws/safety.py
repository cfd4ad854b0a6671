"""The one safety gate between a trajectory and the robot: position, velocity and acceleration limits.

Pure numpy (no rclpy), so it is tested without ROS; only nodes import it (learning code never
does). ``policy_controller`` runs it as the last step before it publishes a ``joint_trajectory``,
and ``sim_node`` (or a driver adapter) runs it again where a trajectory is accepted. The limits
come from the robot's parameter YAML (``LIMIT_PARAMS``, per joint in ``PUSHER_JOINTS`` order).

What "within limits" means (``tests/test_safety_gate.py`` checks it with its own code). A
trajectory is a start state, position ``q_s[J]`` and velocities ``v_s[W, J]`` at t = 0 (the
setpoint the new trajectory replaces, and the velocities of its segments that end less than one
control period before the start, ``TrajectoryFollower.recent``; ``[J]`` for one), then points ``q[P, J]`` at times ``t[P]`` (s, strictly increasing,
``t[0] > 0``), executed by linear interpolation and held after the last point:

- segment i runs from point i-1 (the start state for i = 0) to point i, from ``t_{i-1}`` to
  ``t_i`` (``t_{-1} = 0``), with velocity ``v_i = (q_i - q_{i-1}) / (t_i - t_{i-1})``;
- the hold after the last point is one more segment, at velocity 0, that starts at the last
  point; each start velocity counts as a segment that ends at t = 0;
- acceleration: the velocities of any two segments less than one control period ``T`` apart
  (from the end of the earlier to the start of the later) differ by at most
  ``max_acceleration * T``. Sampled every ``T``, whatever the phase, the setpoint then has
  finite-difference accelerations within the limit; for points one period apart this is the
  plain ``|v_i - v_{i-1}| / T`` check, from the current state on.

Within limits: every point in ``[lower, upper]``, every ``|v_i| <= max_velocity`` and the
acceleration rule above, per joint (relative tolerance ``TOLERANCE``).

Modes (``limit_mode``): ``reject`` refuses a trajectory outside the limits (``ValueError`` naming
the first violation); ``clip`` follows the requested path in time, resampled every control period (and at the last
point's time), moving each point only as far toward the requested position as the limits allow, keeping room to brake before the position limits, and,
if it still moves at its last point, appends braking points one period apart until it is at rest.
Either way a trajectory within limits passes unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from forethought.sim.scene import PUSHER_JOINTS, WORKSPACE_HALF

MODES = ("clip", "reject")
TOLERANCE = 1e-9
"""Relative slack of every limit check (floating-point rounding of values exactly at a limit)."""

LIMIT_PARAMS: dict[str, tuple[Any, str]] = {
    "position_min": ([-WORKSPACE_HALF] * len(PUSHER_JOINTS), "lower position limit per joint (m), PUSHER_JOINTS order"),
    "position_max": ([WORKSPACE_HALF] * len(PUSHER_JOINTS), "upper position limit per joint (m)"),
    "max_velocity": ([0.8] * len(PUSHER_JOINTS), "maximum setpoint velocity per joint (m/s)"),
    "max_acceleration": ([10.0] * len(PUSHER_JOINTS), "maximum setpoint acceleration per joint (m/s^2)"),
    "limit_mode": ("clip", "a trajectory outside the limits is clipped to them (clip) or refused (reject)"),
}
"""The robot's limits as node parameters ``{name: (default, description)}`` (launch/*.yaml sets them)."""


@dataclass(frozen=True)
class JointLimits:
    """Per-joint limits, each ``float64[J]``."""

    lower: np.ndarray
    upper: np.ndarray
    max_velocity: np.ndarray
    max_acceleration: np.ndarray

    def __post_init__(self) -> None:
        arrays = {k: np.asarray(getattr(self, k), dtype=np.float64).reshape(-1) for k in
                  ("lower", "upper", "max_velocity", "max_acceleration")}
        n = len(arrays["lower"])
        for name, a in arrays.items():
            if len(a) != n or n == 0 or not np.all(np.isfinite(a)):
                raise ValueError(f"{name}={a.tolist()} must be {n} finite values, one per joint")
            object.__setattr__(self, name, a)
        if np.any(self.lower >= self.upper):
            raise ValueError(f"position_min {self.lower.tolist()} must be below position_max {self.upper.tolist()}")
        for name in ("max_velocity", "max_acceleration"):
            if np.any(arrays[name] <= 0):
                raise ValueError(f"{name}={arrays[name].tolist()} must be > 0 for every joint")

    @classmethod
    def from_params(cls, p: Mapping[str, Any], n_joints: int = len(PUSHER_JOINTS)) -> "JointLimits":
        """From node parameters named as in ``LIMIT_PARAMS``; ``ValueError`` names a bad one."""
        for name in ("position_min", "position_max", "max_velocity", "max_acceleration"):
            if len(p[name]) != n_joints:
                raise ValueError(f"{name}={list(p[name])} must have {n_joints} values, one per joint in "
                                 f"{list(PUSHER_JOINTS)}")
        return cls(np.array(p["position_min"], float), np.array(p["position_max"], float),
                   np.array(p["max_velocity"], float), np.array(p["max_acceleration"], float))


@dataclass(frozen=True)
class GateResult:
    """What the gate lets through: ``positions[P', J]`` at ``times[P']`` (s after the start);
    ``clipped`` says whether it differs from the request."""

    positions: np.ndarray
    times: np.ndarray
    clipped: bool


class SafetyGate:
    """Checks, and in ``clip`` mode limits, trajectories against ``JointLimits`` (see the module doc).

    period: the control period ``T`` (s): the length of the hold segment after the last point and
        the spacing of appended braking points.
    """

    def __init__(self, limits: JointLimits, mode: str, period: float) -> None:
        if mode not in MODES:
            raise ValueError(f"limit_mode {mode!r}: use one of {list(MODES)}")
        if not (np.isfinite(period) and period > 0):
            raise ValueError(f"control period {period!r} must be > 0 s")
        self.limits, self.mode, self.period = limits, mode, float(period)

    @classmethod
    def from_params(cls, p: Mapping[str, Any], period: float) -> "SafetyGate":
        return cls(JointLimits.from_params(p), p["limit_mode"], period)

    def apply(self, start_pos: np.ndarray, start_vel: np.ndarray, positions: np.ndarray,
              times: np.ndarray) -> GateResult:
        """The trajectory that may execute from the start state; ``ValueError`` if it must not."""
        q0, v0, q, t = self._check_inputs(start_pos, start_vel, positions, times)
        problems = self.violations(q0, v0, q, t)
        if not problems:
            return GateResult(q, t, clipped=False)
        if self.mode == "reject":
            raise ValueError(f"outside the joint limits: {problems[0]}")
        out_q, out_t = self._limit(q0, v0, q, t)
        return GateResult(out_q, out_t, clipped=True)

    def stop(self, start_pos: np.ndarray, start_vel: np.ndarray) -> GateResult:
        """Come to rest from the start state as fast as the limits allow, then hold (>= 2 points)."""
        q0, v0, _, _ = self._check_inputs(start_pos, start_vel, np.zeros((1, len(self.limits.lower))), np.ones(1))
        pos = np.clip(q0, self.limits.lower, self.limits.upper)
        pts, ts = self._brake([], [], pos, [0.0] * len(v0), list(v0))
        while len(pts) < 2:  # at rest: hold explicitly
            pts.append(pts[-1] if pts else pos)
            ts.append((ts[-1] if ts else 0.0) + self.period)
        return GateResult(np.array(pts), np.array(ts), clipped=False)

    def violations(self, start_pos: np.ndarray, start_vel: np.ndarray, positions: np.ndarray,
                   times: np.ndarray) -> list[str]:
        """Every limit the trajectory breaks (empty when within limits), first one first."""
        lim, span = self.limits, self.limits.max_acceleration * self.period
        tol = lambda x: x * (1 + TOLERANCE) + 1e-12  # noqa: E731
        t_all = np.concatenate([[0.0], times])
        v = np.diff(np.vstack([start_pos, positions]), axis=0) / np.diff(t_all)[:, None]  # [P, J]
        outside = (positions < lim.lower - 1e-12) | (positions > lim.upper + 1e-12)
        out = [f"point {i} joint {j} position {positions[i, j]:.4f} outside [{lim.lower[j]}, {lim.upper[j]}]"
               for i, j in zip(*np.nonzero(outside))]
        out += [f"segment {i} joint {j} velocity {v[i, j]:.4f} beyond {lim.max_velocity[j]} m/s"
                for i, j in zip(*np.nonzero(np.abs(v) > tol(lim.max_velocity)))]
        # every segment: the start state's, the trajectory's, the hold; as (start, end, velocity)
        w = len(start_vel)
        starts = np.concatenate([np.full(w, -np.inf), t_all])
        ends = np.concatenate([np.zeros(w), t_all[1:], [np.inf]])
        vel = np.vstack([start_vel, v, np.zeros(v.shape[1])])
        for k in range(w, len(vel)):
            near = ends[:k] > starts[k] - self.period * (1 - TOLERANCE)
            jump = np.abs(vel[:k][near] - vel[k]).max(axis=0)  # [J]
            where = "the stop after the last point" if k == len(vel) - 1 else f"segment {k - w}"
            out += [f"velocity change {jump[j]:.3f} m/s within one period ({self.period} s) at {where} joint {j}: "
                    f"acceleration beyond {lim.max_acceleration[j]} m/s^2" for j in np.nonzero(jump > tol(span))[0]]
        return out

    # ------------------------------------------------------------------ internals
    def _check_inputs(self, start_pos: Any, start_vel: Any, positions: Any,
                      times: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n = len(self.limits.lower)
        q0 = np.asarray(start_pos, dtype=np.float64).reshape(-1)
        v0 = np.asarray(start_vel, dtype=np.float64).reshape(-1, n) if np.size(start_vel) % n == 0 else np.zeros(0)
        q = np.asarray(positions, dtype=np.float64)
        t = np.asarray(times, dtype=np.float64).reshape(-1)
        if q0.shape != (n,) or v0.ndim != 2 or not len(v0) or q.ndim != 2 or q.shape[1] != n or len(q) != len(t) or not len(t):
            raise ValueError(f"a trajectory is start position [{n}], start velocities [W, {n}], positions [P, {n}] and "
                             f"times [P], P >= 1; got {q0.shape}, {v0.shape}, {q.shape}, {t.shape}")
        if not (np.all(np.isfinite(q0)) and np.all(np.isfinite(v0))):
            raise ValueError(f"start state {q0.tolist()}, {v0.tolist()} is not finite")
        if not np.all(np.isfinite(q)):
            bad = int(np.argwhere(~np.isfinite(q))[0, 0])
            raise ValueError(f"point {bad} has a NaN or infinite position: {q[bad].tolist()}")
        if not np.all(np.isfinite(t)) or t[0] <= 0 or np.any(np.diff(t) <= 0):
            raise ValueError(f"times must be finite, > 0 and strictly increasing, got {np.round(t[:8], 4).tolist()}")
        return q0, v0, q, t

    def _window(self, start: float, ends: list[float], vels: list[np.ndarray]) -> np.ndarray:
        """Velocities ``[W, J]`` of the past segments that end less than one period before ``start``."""
        return np.array([v for e, v in zip(ends, vels) if e > start - self.period * (1 - TOLERANCE)])

    def _limit(self, q0: np.ndarray, v0: np.ndarray, q: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lim, span = self.limits, self.limits.max_acceleration * self.period
        q, t = self._resample(q0, q, t)
        pos, prev_t = q0.copy(), 0.0
        ends, vels = [0.0] * len(v0), list(v0)  # past segments, the start state's first
        pts: list[np.ndarray] = []
        for target, time in zip(q, t):
            dt = time - prev_t
            # fastest velocities that leave room to brake before the position limits:
            # |v| (dt + 2T) + v^2 / 2a <= distance to the limit
            a, w = lim.max_acceleration, dt + 2 * self.period
            cap = lambda room: a * (np.sqrt(w * w + 2 * np.maximum(room, 0.0) / a) - w)  # noqa: E731
            hi = np.minimum(lim.max_velocity, cap(lim.upper - pos))
            lo = np.maximum(-lim.max_velocity, -cap(pos - lim.lower))
            window = self._window(prev_t, ends, vels)
            a_hi, a_lo = window.min(axis=0) + span, window.max(axis=0) - span
            ok = np.maximum(lo, a_lo) <= np.minimum(hi, a_hi)  # a bad start state may leave no room: then
            hi, lo = np.where(ok, np.minimum(hi, a_hi), hi), np.where(ok, np.maximum(lo, a_lo), lo)  # limits win
            new = np.clip(pos + np.clip((target - pos) / dt, lo, hi) * dt, lim.lower, lim.upper)
            ends.append(time)
            vels.append((new - pos) / dt)
            pos, prev_t = new, time
            pts.append(pos)
        out_q, out_t = self._brake(pts, list(t), pos, ends, vels)
        return np.array(out_q), np.array(out_t)

    def _resample(self, q0: np.ndarray, q: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The requested path (linear from the start) at every whole period and at the last time:
        segments of one period, along which the limiter can change velocity as often as allowed."""
        grid = self.period * np.arange(1, int(np.floor(t[-1] / self.period * (1 - TOLERANCE))) + 1)
        times = np.append(grid, t[-1])
        t_all, q_all = np.concatenate([[0.0], t]), np.vstack([q0, q])
        return np.stack([np.interp(times, t_all, q_all[:, j]) for j in range(q_all.shape[1])], axis=1), times

    def _brake(self, pts: list, ts: list, pos: np.ndarray, ends: list, vels: list) -> tuple[list, list]:
        """Append points one period apart, slowing at the acceleration limit, until the hold after
        the last point is within limits (``ends``, ``vels``: the segments so far, as in ``_limit``)."""
        lim, span = self.limits, self.limits.max_acceleration * self.period
        t_end = ts[-1] if ts else 0.0
        while True:
            window = self._window(t_end, ends, vels)
            if np.all(np.abs(window) <= span * (1 + TOLERANCE)):
                return pts, ts  # the hold (velocity 0) is within reach of every recent segment
            vel = np.clip(0.0, window.max(axis=0) - span, window.min(axis=0) + span)
            new = np.clip(pos + vel * self.period, lim.lower, lim.upper)
            t_end += self.period
            ends.append(t_end)
            vels.append((new - pos) / self.period)
            pos = new
            pts.append(pos)
            ts.append(t_end)
