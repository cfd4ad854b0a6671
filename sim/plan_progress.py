"""Plan-level progress: which steps of a whole plan hold, which one to (re-)issue, done or failed.

One definition, used by the ``executive`` node and by ``forethought eval --plan`` so that the ROS
graph and the benchmarks agree. Pure numpy (``scene``), no simulator.

- A step *holds* in an observation when ``scene.is_success(step, obs)``.
- The active step is *settled* after ``settle_steps`` observations in a row in which it holds.
  Then the next active step is the first step of the plan (in order) that does not hold.
- A step that had been achieved and no longer holds was *broken* (by a later step): it is
  re-issued, at most ``max_reissues`` times per step; one more break fails the plan with a reason.
- The plan is *done* when, at a settle, every step holds.
- A step that is not settled in time (the caller's clock: env steps in ``forethought eval``, wall
  seconds in the executive) *times out* (``time_out``): it is retried, at most ``max_retries``
  times per step, then the plan fails with a reason.

The disturbance metric (``disturbance``): the displacement of every block a step does not name
(neither its ``object`` nor a block ``target``) from where it was when the step was issued.

Example::

    progress = PlanProgress(plan["steps"], max_reissues=2, settle_steps=3)
    for obs in observations:
        event = progress.update(obs)     # "settled" | "reissue" | "done" | "failed" | None
        goal = progress.active           # the step to hand to the controller (None when finished)
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from forethought.sim import scene

RUNNING, DONE, FAILED = "running", "done", "failed"


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
    """Tracks a plan over observations (module docstring).

    Args:
        steps: validated plan steps, in order (at least one).
        max_reissues: how often each step may be re-issued after a later step broke it.
        settle_steps: observations in a row the active step must hold before it counts.
        max_retries: how often each step may be retried after it timed out (``time_out``).
    """

    def __init__(self, steps: Sequence[Mapping[str, Any]], max_reissues: int = 2, settle_steps: int = 3,
                 max_retries: int = 0) -> None:
        if not steps:
            raise ValueError("a plan needs at least one step, got an empty list")
        if isinstance(max_reissues, bool) or not isinstance(max_reissues, (int, np.integer)) or max_reissues < 0:
            raise ValueError(f"max_reissues must be an int >= 0, got {max_reissues!r}")
        if isinstance(settle_steps, bool) or not isinstance(settle_steps, (int, np.integer)) or settle_steps < 1:
            raise ValueError(f"settle_steps must be an int >= 1, got {settle_steps!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, (int, np.integer)) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        self.steps = [dict(s) for s in steps]
        self.max_reissues, self.settle_steps = int(max_reissues), int(settle_steps)
        self.index = 0
        """Index of the active step."""
        self.settled = 0
        self.achieved = [False] * len(self.steps)
        """Whether each step has held at a settle (of itself or of another step)."""
        self.reissues = [0] * len(self.steps)
        self.max_retries = int(max_retries)
        self.retries = [0] * len(self.steps)
        """Timeouts retried, per step."""
        self.status = RUNNING
        self.reason = ""
        """Why the plan failed (empty otherwise)."""
        self.steps_done = 0
        """Settles counted so far (re-issued steps count again)."""

    @property
    def active(self) -> dict[str, Any] | None:
        """The step to hand to the controller, ``None`` once the plan is done or failed."""
        return self.steps[self.index] if self.status == RUNNING else None

    def holds(self, obs: np.ndarray) -> list[bool]:
        """Whether each step's condition holds in ``obs[S]``."""
        return [scene.is_success(s, obs) for s in self.steps]

    def update(self, obs: np.ndarray) -> str | None:
        """Take one observation ``obs[S]``; return what happened: ``"settled"`` (the next step is
        active), ``"reissue"`` (a broken step is active again), ``"done"``, ``"failed"`` or ``None``."""
        if self.status != RUNNING:
            return None
        holds = self.holds(obs)
        self.settled = self.settled + 1 if holds[self.index] else 0
        if self.settled < self.settle_steps:
            return None
        finished, self.settled = self.index, 0
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

    def time_out(self, limit: str) -> str | None:
        """The active step was not settled within ``limit`` (e.g. ``"30 s"``): return ``"retry"``
        (issue it again; the settle count restarts) or, after ``max_retries`` retries, ``"failed"``
        with the reason; ``None`` when the plan is not running."""
        if self.status != RUNNING:
            return None
        i = self.index
        if self.retries[i] >= self.max_retries:
            self.fail(f"step {i + 1} {self.steps[i]} not achieved within {limit}, after {self.retries[i]} retries "
                      f"(max_retries={self.max_retries})")
            return FAILED
        self.retries[i] += 1
        self.settled = 0
        return "retry"

    def fail(self, reason: str) -> None:
        """Stop the plan as failed (e.g. a step ran out of time), keeping ``reason``."""
        if self.status == RUNNING:
            self.status, self.reason = FAILED, reason
