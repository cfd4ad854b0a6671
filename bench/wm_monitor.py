"""The ``monitor`` section of ``bench/world_model.py``: the online monitor's operating point as
``world_model_node`` runs it (false alarms on clean episodes, teleports flagged) under a controller."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

import forethought.models.control.policy  # noqa: F401  (registers --policy dmpc)
from forethought.models.evaluation import PolicySpec, build_policy
from forethought.models.world_model.modeling_world_model import LatentWorldModel
from forethought.models.world_model.probe import LinearProbe
from forethought.models.world_model.surprise import SURPRISE_SPACES, surprise_trace
from forethought.sim import PUSH_BLOCKS_ID, scene
from forethought.sim.push_blocks import sample_task
from wm_common import PRETRAINED, fmt, make_env, wilson
from wm_episodes import run_episode, teleport

MONITOR_WINDOWS = (1, 3, 5)
"""Running-mean windows (steps) of the 1-step surprise tried by the ``monitor`` section."""
MONITOR_FALSE_ALARM = 0.02
"""Share of clean tuning episodes allowed to raise an alarm: the threshold is the 98th percentile of their maxima."""


def controlled_episode(policy: Any, seed: int, length: int, event_at: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Observations ``[length + 1, S]`` and actions of a 3-block push episode under a harness policy
    (task drawn from the seed), with a red-block teleport after step ``event_at`` if given."""
    env = make_env(False, n_blocks=3)
    task = sample_task(np.random.default_rng(seed), scene.BLOCK_NAMES, ("push",))
    obs, _ = env.reset(seed=seed, options={"task": task})
    policy.reset(task, seed)
    return run_episode(env, obs, policy.act, length, teleport if event_at is not None else None, event_at, False)


def monitor_operating_point(model: LatentWorldModel, policy: Any, episodes: int, fixed: Sequence[float] = (),
                            length: int = 80, event_at: int = 30, flag_within: int = 20,
                            probe: LinearProbe | None = None) -> dict[str, Any]:
    """False-alarm and teleport-detection rates of the calibrated online monitor (``bench/world_model.py``'s
    docstring), in latent space and with ``probe`` on the probed positions, and of the latent window-1
    monitor at each ``fixed`` threshold (e.g. ``world_model_node``'s default)."""
    latent, positions = SURPRISE_SPACES
    spaces = {latent: None, **({positions: probe} if probe is not None else {})}

    def maxima(seeds: range, event: int | None) -> dict[tuple[str, int], np.ndarray]:
        traces: dict[tuple[str, int], list[float]] = {(sp, w): [] for sp in spaces for w in MONITOR_WINDOWS}
        for seed in seeds:
            x, a = controlled_episode(policy, seed, length, event)
            for sp, w in traces:
                trace = surprise_trace(model, x, a, 1, w, spaces[sp])
                span = trace[event:event + flag_within] if event is not None else trace
                traces[sp, w].append(np.nanmax(span))
        return {k: np.array(v) for k, v in traces.items()}

    tune = maxima(range(1000, 1000 + episodes), None)
    clean, moved = maxima(range(episodes), None), maxima(range(episodes), event_at)
    rows = {}
    settings = [(sp, w, float(np.quantile(tune[sp, w], 1 - MONITOR_FALSE_ALARM)), "98th pct of clean tuning maxima")
                for sp in spaces for w in MONITOR_WINDOWS] + [(latent, 1, float(t), f"fixed {t:g}") for t in fixed]
    for sp, w, threshold, how in settings:
        fa, det = int(np.sum(clean[sp, w] > threshold)), int(np.sum(moved[sp, w] > threshold))
        rows[f"{sp}, window {w}, {how}"] = {"space": sp, "window": w, "threshold": threshold, "false_alarms": fa,
                                      "false_alarm_ci": wilson(fa, episodes), "detected": det,
                                      "detected_ci": wilson(det, episodes),
                                      "clean_max_median": float(np.median(clean[sp, w]))}
    return {"episodes": episodes, "length": length, "event_at": event_at, "flag_within": flag_within, "rows": rows}


def monitor_policy(name: str) -> Any:
    """The monitor section's controller: the scripted expert, or D-MPC SSR with the shipped proposer and ensemble."""
    spec = PolicySpec(model=None if name == "expert" else PRETRAINED / "proposer-pushblocks", env_id=PUSH_BLOCKS_ID,
                      observation_dim=scene.OBS_DIM, action_dim=scene.ACTION_DIM, num_inference_steps=5,
                      action_steps=8, planner=None if name == "expert" else "ssr",
                      dynamics=None if name == "expert" else str(PRETRAINED / "dynamics-pushblocks"))
    return build_policy(name, spec)


def report(r: dict, policy_name: str) -> None:
    """Print the section's markdown table (``r``: ``monitor_operating_point``; ``policy_name``: its controller)."""
    print(f"## Online monitor (state model, 1-step surprise, latent and probed positions), {policy_name} on "
          "3-block pushes, "
          f"{r['episodes']} episodes of {r['length']} steps; teleport at step {r['event_at']}, flagged within "
          f"{r['flag_within']} steps\n")
    print("| setting | threshold | clean episodes with an alarm | 95% CI "
          "| teleports flagged | 95% CI | median clean episode max |")
    print("|---|---|---|---|---|---|---|")
    for name, v in r["rows"].items():
        print(f"| {name} | {v['threshold']:.3g} | {v['false_alarms']}/{r['episodes']} | "
              f"{fmt(v['false_alarm_ci'][0])}-{fmt(v['false_alarm_ci'][1])} | {v['detected']}/{r['episodes']} | "
              f"{fmt(v['detected_ci'][0])}-{fmt(v['detected_ci'][1])} | {fmt(v['clean_max_median'], 3)} |")
    print()
