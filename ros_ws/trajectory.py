"""Executing timed joint trajectories the way ros2_control's ``joint_trajectory_controller`` does (pure numpy).

``TrajectoryFollower`` keeps one piecewise-linear setpoint path: knot times ``[K]`` (s, one clock:
the sim node's sim time) and knot positions ``[K, J]``.

- ``accept(positions[P, J], times[P], start)``: the new trajectory replaces the remainder of the
  current one at its start time ``start``; it starts from the setpoint there (``state(start)``)
  and reaches point i at ``start + times[i]``. The whole trajectory is followed, whatever its
  length.
- ``state(s)`` / ``step(now, current)``: the setpoint, by linear interpolation in time (the sim
  node samples it at the physics rate). After the last point the last position is held.
- Watchdog: once ``timeout_s`` (> 0) has passed after the last point of an accepted trajectory,
  the follower holds ``current`` (the measured position then) and sets ``stale`` until the next
  trajectory.
"""

from __future__ import annotations

import numpy as np

PAST_S = 2.0
"""How much of the executed path (s) a follower remembers for ``recent``: more than a control period."""


class TrajectoryFollower:
    def __init__(self, hold: np.ndarray, timeout_s: float) -> None:
        self.knot_t = np.zeros(1)  # [K]
        self.knot_q = np.array(hold, dtype=np.float64).reshape(1, -1)  # [K, J]
        self.timeout_s = float(timeout_s)
        self.running = False  # a trajectory was accepted and its watchdog has not fired
        self.stale = False

    @property
    def end_time(self) -> float:
        """Time of the last point (s)."""
        return float(self.knot_t[-1])

    def state(self, s: float) -> tuple[np.ndarray, np.ndarray]:
        """Setpoint ``position[J]`` at time ``s`` and ``velocity[J]`` of the segment that ends at or
        runs through ``s`` (zero before the first knot and after the last)."""
        i = int(np.searchsorted(self.knot_t, s, side="left"))
        if i == 0 or i == len(self.knot_t):
            q = self.knot_q[0] if i == 0 else self.knot_q[-1]
            return q.copy(), np.zeros_like(q)
        t0, t1 = self.knot_t[i - 1], self.knot_t[i]
        vel = (self.knot_q[i] - self.knot_q[i - 1]) / (t1 - t0)
        return self.knot_q[i - 1] + vel * (s - t0), vel

    def recent(self, s: float, window: float) -> np.ndarray:
        """Velocities ``[W, J]`` of the segments that run through ``s`` or end less than ``window``
        before it (the hold before the first knot and after the last counts, at velocity 0)."""
        starts = np.concatenate([[-np.inf], self.knot_t])
        ends = np.concatenate([self.knot_t, [np.inf]])
        vel = np.diff(self.knot_q, axis=0) / np.diff(self.knot_t)[:, None]
        vel = np.vstack([np.zeros_like(self.knot_q[:1]), vel, np.zeros_like(self.knot_q[:1])])
        near = (ends > s - window * (1 - 1e-9)) & (starts < s)
        return vel[near] if near.any() else np.zeros_like(self.knot_q[:1])

    def accept(self, positions: np.ndarray, times: np.ndarray, start: float) -> None:
        """Run ``positions[P, J]`` at ``start + times[P]`` (times > 0, increasing) from the setpoint at ``start``."""
        here, _ = self.state(start)
        keep = self.knot_t < start  # the last PAST_S of the past stays (``recent`` reads it)
        keep[: max(0, int(np.sum(self.knot_t < start - PAST_S)) - 1)] = False
        self.knot_t = np.concatenate([self.knot_t[keep], [start], start + np.asarray(times, float)])
        self.knot_q = np.vstack([self.knot_q[keep], here, np.asarray(positions, float)])
        self.running, self.stale = True, False

    def hold(self, position: np.ndarray, now: float) -> None:
        """Drop the trajectory and hold ``position[J]`` from ``now``."""
        self.knot_t, self.knot_q = np.array([now]), np.array(position, dtype=np.float64).reshape(1, -1)

    def step(self, now: float, current: np.ndarray) -> np.ndarray:
        """The setpoint ``[J]`` at ``now``; ``current[J]`` is the measured position (for the watchdog)."""
        if self.running and self.timeout_s > 0 and now > self.end_time + self.timeout_s:
            self.running, self.stale = False, True
            self.hold(current, now)
        return self.state(now)[0]
