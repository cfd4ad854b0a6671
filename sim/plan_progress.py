"""Plan-level progress: which steps of a whole plan hold, which one to (re-)issue, done or failed.

One definition, used by the ``executive`` node and by ``forethought eval --plan`` so that the ROS
graph and the benchmarks agree. Pure numpy (``scene``), no simulator.

- A step *holds* in an observation when ``scene.is_success(step, obs)``.
- Each observation comes with its time ``t`` (s): its stamp in the executive (node clock, sim time
  under ``sim_node``), ``env steps x dt`` in ``forethought eval``. An observation whose ``t`` is not
  newer than the previous one's is ignored (it never counts).
- The active step is *settled* once it has held on every observation for a *dwell* of ``dwell_s``:
  from the first observation of the run in which it holds (``t0``) to the current one,
  ``t - t0 >= dwell_s`` (1 us tolerance), with no two consecutive observations more than
  ``max_gap_s`` apart (a gap, e.g. stale inputs, restarts the run). At 10 Hz the default
  ``DWELL_S`` = 0.2 s is three observations in a row. Then the next active step is the first step
  of the plan (in order) that does not hold.
- A step that had been achieved and no longer holds was *broken* (by a later step): it is
  re-issued, at most ``max_reissues`` times per step; one more break fails the plan with a reason.
- The plan is *done* when, at a settle, every step holds.
- A step that has to be issued again (``retry``: it was not settled in time, the caller's clock:
  env steps in ``forethought eval``, wall seconds in the executive; or a restarted controller
  lost it) is retried at most ``max_retries`` times per step, then the plan fails with a reason.

The disturbance metric (``disturbance``): the displacement of every block a step does not name
(neither its ``object`` nor a block ``target``) from where it was when the step was issued.

Example::

    progress = PlanProgress(plan["steps"], max_reissues=2, dwell_s=0.2)
    for t, obs in observations:
        event = progress.update(obs, t)  # "settled" | "reissue" | "done" | "failed" | None
        goal = progress.active           # the step to hand to the controller (None when finished)
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from forethought.sim import scene

RUNNING, DONE, FAILED = "running", "done", "failed"
DWELL_S = 0.2
"""Default dwell (s): three observations in a row at 10 Hz (stamps ``t``, ``t + 0.1``, ``t + 0.2``)."""
TIME_TOLERANCE_S = 1e-6
"""Slack on the dwell comparison, for stamps summed in floating point (``3 * 0.1 - 0.1 < 0.2``)."""


def named_blocks(step: Mapping[str, Any]) -> tuple[str, ...]:
    """The blocks plan step ``step`` names: its pushed ``object`` and a block ``target``."""
    names = [step["object"]] if step.get("skill") == "push" else []
    target = step.get("target")
    if isinstance(target, str) and target in scene.BLOCK_NAMES:
        names.append(target)
    return tuple(names)


def disturbance(step: Mapping[str, Any], start: np.ndarray, obs: np.ndarray) -> float:
    """Largest displacement (m) from ``start[S]`` to ``obs[S]`` of a present block ``step`` does not name
    (0 when there is none)."""
    others = [b for b in scene.present_blocks(start) if b not in named_blocks(step)]
    if not others:
        return 0.0
    return max(float(np.linalg.norm(scene.block_xy(obs, b) - scene.block_xy(start, b))) for b in others)


class PlanProgress:
    """Tracks a plan over timed observations (module docstring).

    Args:
        steps: validated plan steps, in order (at least one).
        max_reissues: how often each step may be re-issued after a later step broke it.
        dwell_s: how long (s) the active step must hold before it counts (0: on the first
            observation in which it holds).
        max_retries: how often each step may be issued again (``retry``), then the plan fails.
        max_gap_s: observations further apart than this (s) break the run of holding ones.
    """

    def __init__(self, steps: Sequence[Mapping[str, Any]], max_reissues: int = 2, dwell_s: float = DWELL_S,
                 max_retries: int = 0, max_gap_s: float = math.inf) -> None:
        if not steps:
            raise ValueError("a plan needs at least one step, got an empty list")
        for name, value in (("max_reissues", max_reissues), ("max_retries", max_retries)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if isinstance(dwell_s, bool) or not isinstance(dwell_s, (int, float)) or not 0 <= dwell_s < math.inf:
            raise ValueError(f"dwell_s must be a finite number of seconds >= 0, got {dwell_s!r}")
        if isinstance(max_gap_s, bool) or not isinstance(max_gap_s, (int, float)) or not max_gap_s > 0:
            raise ValueError(f"max_gap_s must be > 0 seconds (math.inf: no limit), got {max_gap_s!r}")
        self.steps = [dict(s) for s in steps]
        self.max_reissues, self.dwell_s, self.max_gap_s = int(max_reissues), float(dwell_s), float(max_gap_s)
        self.index = 0
        """Index of the active step."""
        self.since: float | None = None
        """Time of the first observation of the current run in which the active step holds."""
        self.last_t: float | None = None
        """Time of the previous observation."""
        self.achieved = [False] * len(self.steps)
        """Whether each step has held at a settle (of itself or of another step)."""
        self.reissues = [0] * len(self.steps)
        self.max_retries = int(max_retries)
        self.retries = [0] * len(self.steps)
        """Retries (``retry``), per step."""
        self.status = RUNNING
        self.reason = ""
        """Why the plan failed (empty otherwise)."""
        self.steps_done = 0
        """Settles counted so far (re-issued steps count again)."""

    @property
    def active(self) -> dict[str, Any] | None:
        """The step to hand to the controller, ``None`` once the plan is done or failed."""
        return self.steps[self.index] if self.status == RUNNING else None

    def held(self, t: float) -> float:
        """How long (s) the active step has held at time ``t`` (0 when it does not)."""
        return 0.0 if self.since is None else max(0.0, t - self.since)

    def holds(self, obs: np.ndarray) -> list[bool]:
        """Whether each step's condition holds in ``obs[S]``."""
        return [scene.is_success(s, obs) for s in self.steps]

    def restart_clock(self) -> None:
        """The clock jumped back (a restarted simulator): forget the time base; a step's dwell starts again."""
        self.last_t = self.since = None

    def update(self, obs: np.ndarray, t: float) -> str | None:
        """Take one observation ``obs[S]`` at time ``t`` (s); return what happened: ``"settled"`` (the
        next step is active), ``"reissue"`` (a broken step is active again), ``"done"``, ``"failed"``
        or ``None``."""
        t = float(t)
        if self.status != RUNNING or not math.isfinite(t) or (self.last_t is not None and t <= self.last_t):
            return None
        gap = self.last_t is not None and t - self.last_t > self.max_gap_s
        self.last_t = t
        holds = self.holds(obs)
        if not holds[self.index]:
            self.since = None
            return None
        if self.since is None or gap:
            self.since = t
        if t - self.since < self.dwell_s - TIME_TOLERANCE_S:
            return None
        finished, self.since = self.index, None
        self.steps_done += 1
        pending = [i for i, ok in enumerate(holds) if not ok]
        was_achieved = list(self.achieved)
        self.achieved = [a or ok for a, ok in zip(self.achieved, holds)]
        if not pending:
            self.status = DONE
            return DONE
        nxt = pending[0]
        if not was_achieved[nxt]:
            self.index = nxt
            return "settled"
        if self.reissues[nxt] >= self.max_reissues:
            self.status = FAILED
            self.reason = (f"step {nxt + 1} {self.steps[nxt]} no longer holds after step {finished + 1} "
                           f"{self.steps[finished]}, and it was already re-issued {self.reissues[nxt]} times "
                           f"(max_reissues={self.max_reissues})")
            return FAILED
        self.reissues[nxt] += 1
        self.index = nxt
        return "reissue"

    def retry(self, why: str) -> str | None:
        """The active step must be issued again because it ``why`` (e.g. ``"was not achieved within
        30 s"``): return ``"retry"`` (issue it again; its dwell restarts) or, after ``max_retries``
        retries, ``"failed"`` with the reason; ``None`` when the plan is not running."""
        if self.status != RUNNING:
            return None
        i = self.index
        if self.retries[i] >= self.max_retries:
            self.fail(f"step {i + 1} {self.steps[i]} {why}, after {self.retries[i]} retries "
                      f"(max_retries={self.max_retries})")
            return FAILED
        self.retries[i] += 1
        self.since = None
        return "retry"

    def fail(self, reason: str) -> None:
        """Stop the plan as failed (e.g. a step ran out of time), keeping ``reason``."""
        if self.status == RUNNING:
            self.status, self.reason = FAILED, reason
