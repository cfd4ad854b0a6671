"""Executing action chunks on a control clock: alignment, temporal ensembling, replan timing, tick accounting.

Pure numpy and ``threading`` (no rclpy), so it is tested without ROS; ``policy_controller`` wires
it to its clock, inputs and publisher.

Time convention (one clock, seconds; the node's, sim time under ``use_sim_time``; ``T`` the control
period): a chunk ``actions[N, J]`` planned from the observation stamped ``t0`` holds the setpoints
for ``t0 + T, t0 + 2T, ..., t0 + N T`` (action i is where the robot should be one period after
step i starts, as ``forethought eval`` applies it). At time ``now`` the steps whose time has come
(``k = floor((now - t0) / T)`` of them) are in the past: ``align`` drops them, never replays them,
and the rest go out on the control grid from ``now`` (point j at ``now + (j + 1) T``), so each
remaining action runs at most one period later than planned, never earlier. A chunk that lands
entirely in the past (``landed_late``: e.g. a one-step chunk under input delay) keeps only its last
step, as the setpoint one period ahead of now: the newest target, rather than nothing at all.

- ``ChunkExecutor``: the chunks in force. ``add`` merges a chunk that has landed and returns the
  setpoints to execute from ``now``; without ensembling the newest chunk replaces the rest. With
  ACT's exponential temporal ensembling (Zhao et al. 2023, "Learning Fine-Grained Bimanual
  Manipulation with Low-Cost Hardware", ``ensemble_k > 0``) every setpoint is the weighted mean of
  the aligned actions of all chunks that cover it, weight ``exp(-k i)`` with ``i = 0`` the oldest;
  the newest chunk sets the length. ``ahead(now)`` / ``remaining(now)``: the setpoints of the last
  result still ahead.
- ``lead_steps``: how many setpoints may remain when the next replan starts, from its latency.
- ``TickMonitor``: missed control ticks (late: a tick that started more than half a period after
  its slot, counted per skipped slot; starved: a tick at which the setpoints ran out more than
  half a period earlier while a task runs, ``ChunkExecutor.starved``),
  achieved control and replan rates, replan times.
- ``PlanWorker``: one background thread that runs the policy on a job and hands back the result
  (chunk or exception, ``run_job``) without ever blocking the caller.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

EPS = 1e-6
"""Slack (in periods) of the step count: a stamp exactly k periods old counts k steps past."""


def steps_past(t0: float, now: float, period: float) -> int:
    """How many steps of a chunk stamped ``t0`` are in the past at ``now`` (>= 0)."""
    return max(0, math.floor((now - t0) / period + EPS))


def align(actions: np.ndarray, t0: float, now: float, period: float) -> np.ndarray:
    """The steps ``actions[k:]`` of a chunk stamped ``t0`` still ahead at ``now`` (``[R, J]``, R may be 0)."""
    return actions[steps_past(t0, now, period):]


def landed_late(actions: np.ndarray, t0: float, now: float, period: float) -> bool:
    """Every step of the chunk ``actions[N, J]`` stamped ``t0`` is in the past at ``now``."""
    return steps_past(t0, now, period) >= len(actions)


def ensemble(chunks: list[tuple[float, np.ndarray]], now: float, period: float, k: float) -> np.ndarray:
    """ACT temporal ensembling of ``[(t0, actions[N, J]), ...]`` (oldest first) at ``now``: setpoint j
    is the mean of the aligned chunks' step j over the chunks that have one, weighted ``exp(-k i)``
    (i = 0 the oldest of those); as many setpoints as the newest chunk has ahead (``[R, J]``)."""
    aligned = [align(a, t0, now, period) for t0, a in chunks]
    out = np.empty_like(aligned[-1], dtype=np.float64)
    for j in range(len(out)):
        rows = np.array([a[j] for a in aligned if j < len(a)], dtype=np.float64)  # oldest first
        w = np.exp(-k * np.arange(len(rows)))
        out[j] = w @ rows / w.sum()
    return out


def lead_steps(latency_s: float, period: float) -> int:
    """Setpoints that must remain when a replan starts so that its chunk, ready ``latency_s`` later,
    lands before they run out: ``ceil(latency / T) + 1`` (one period of margin for jitter)."""
    return math.ceil(max(latency_s, 0.0) / period - EPS) + 1


class ChunkExecutor:
    """The chunks in force and the setpoints they give (module docstring)."""

    def __init__(self, period: float, ensemble_k: float = 0.0) -> None:
        if not (math.isfinite(period) and period > 0):
            raise ValueError(f"period={period!r} must be > 0 s")
        if not (math.isfinite(ensemble_k) and ensemble_k >= 0):
            raise ValueError(f"temporal_ensemble_k={ensemble_k!r} must be >= 0 (0: off)")
        self.period, self.k = float(period), float(ensemble_k)
        self.chunks: list[tuple[float, np.ndarray]] = []  # (t0, actions[N, J]) oldest first, each with steps ahead
        self.plan: tuple[float, np.ndarray] | None = None  # (when, setpoints[R, J]) of the last add

    def add(self, actions: np.ndarray, t0: float, now: float) -> np.ndarray:
        """Merge the chunk ``actions[N, J]`` planned from the observation stamped ``t0``; return the
        setpoints ``[R >= 1, J]`` to execute from ``now`` (only its last step when it landed late)."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or not len(actions) or not np.all(np.isfinite(actions)):
            raise ValueError(f"a chunk is finite actions [N >= 1, J], got shape {actions.shape}")
        live = [(s, a) for s, a in self.chunks if len(align(a, s, now, self.period))] if self.k > 0 else []
        self.chunks = [*live, (float(t0), actions)]
        setpoints = ensemble(self.chunks, now, self.period, self.k)
        if not len(setpoints):  # landed after its last step: its last action is the next setpoint
            setpoints = actions[-1:].copy()
        self.plan = (float(now), setpoints)
        return setpoints

    def ahead(self, now: float) -> np.ndarray:
        """Setpoints ``[R, J]`` of the last ``add`` still ahead at ``now`` (none before the first)."""
        return np.zeros((0, 0)) if self.plan is None else align(self.plan[1], self.plan[0], now, self.period)

    def remaining(self, now: float) -> int:
        """How many setpoints of the last ``add`` are still ahead at ``now``."""
        return len(self.ahead(now))

    def starved(self, now: float) -> bool:
        """The last ``add``'s setpoints ran out more than half a period before ``now`` (a control
        slot without a setpoint); ``False`` before the first ``add``."""
        return self.plan is not None and self.plan[0] + len(self.plan[1]) * self.period < now - self.period / 2

    def clear(self) -> None:
        """Forget every chunk (a hold, a new goal)."""
        self.chunks, self.plan = [], None


class TickMonitor:
    """Control-tick accounting on one clock: missed ticks, achieved rates, replan times (ms)."""

    def __init__(self, period: float) -> None:
        self.period = float(period)
        self.last_tick: float | None = None
        self.late_ticks = 0
        self.starved_ticks = 0
        self.replan_ms: list[float] = []  # since the last window()
        self._window_start: float | None = None
        self._ticks = self._replans = 0

    def tick(self, now: float) -> int:
        """A control tick started at ``now``; return the slots skipped since the previous one (counted late)."""
        skipped = 0
        if self.last_tick is not None and now > self.last_tick:
            skipped = max(0, math.floor((now - self.last_tick) / self.period + 0.5) - 1)
        self.last_tick = now
        self.late_ticks += skipped
        self._ticks += 1
        if self._window_start is None or now < self._window_start:  # first tick, or the clock went back (a sim reset)
            self._window_start, self._ticks, self._replans = now, 0, 0
        return skipped

    def starved(self) -> None:
        """A tick found no setpoint left while a task runs."""
        self.starved_ticks += 1

    def replanned(self, compute_ms: float) -> None:
        self._replans += 1
        self.replan_ms.append(compute_ms)

    @property
    def missed_ticks(self) -> int:
        return self.late_ticks + self.starved_ticks

    def window(self, now: float) -> dict[str, Any]:
        """Status values since the last call: missed ticks (totals), achieved control and replan
        rates (per second of the clock), median and max replan time; starts a new window."""
        values: dict[str, Any] = {"missed_ticks": self.missed_ticks, "late_ticks": self.late_ticks,
                                  "starved_ticks": self.starved_ticks}
        if self._window_start is not None and now > self._window_start:
            span = now - self._window_start
            values.update(control_rate_hz=self._ticks / span, replan_rate_hz=self._replans / span)
            self._window_start, self._ticks, self._replans = now, 0, 0
        if self.replan_ms:
            values.update(replan_ms_median=float(np.median(self.replan_ms)), replan_ms_max=max(self.replan_ms))
        self.replan_ms = []
        return values


@dataclass(frozen=True)
class PlanResult:
    """What a ``PlanWorker`` hands back: the job, and its chunk or the exception it raised."""

    job: Any
    chunk: np.ndarray | None
    error: BaseException | None
    compute_ms: float


def run_job(plan: Callable[[Any], np.ndarray], job: Any) -> PlanResult:
    """``plan(job)``, timed, with any exception caught into the result."""
    t0 = time.perf_counter()
    chunk, error = None, None
    try:
        chunk = plan(job)
    except Exception as e:  # noqa: BLE001  (handed back: the caller reports it)
        error = e
    return PlanResult(job, chunk, error, (time.perf_counter() - t0) * 1e3)


class PlanWorker:
    """Runs ``plan(job) -> chunk`` on one daemon thread, one job at a time; never blocks the caller.

    ``submit`` hands a job over (``False`` while one is in flight or its result is not yet taken);
    ``on_done()`` is called from the worker thread when a result is ready; ``take`` returns it.
    ``stop`` ends the thread (after the job in flight, if it finishes within the timeout).
    """

    def __init__(self, plan: Callable[[Any], np.ndarray], on_done: Callable[[], None] = lambda: None,
                 name: str = "plan-worker") -> None:
        self._plan, self._on_done = plan, on_done
        self._cond = threading.Condition()
        self._job: Any = None
        self._result: PlanResult | None = None
        self._busy = self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """A job is in flight, or its result has not been taken."""
        with self._cond:
            return self._busy

    def submit(self, job: Any) -> bool:
        with self._cond:
            if self._busy or self._stopping:
                return False
            self._job, self._busy = job, True
            self._cond.notify()
            return True

    def take(self) -> PlanResult | None:
        """The finished job's result, once (``None`` while none is ready)."""
        with self._cond:
            result, self._result = self._result, None
            if result is not None:
                self._busy = False
            return result

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the thread; ``True`` if it ended within ``timeout`` s."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._job is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job, self._job = self._job, None
            result = run_job(self._plan, job)
            with self._cond:
                self._result = result
                stopping = self._stopping
            if not stopping:
                self._on_done()
