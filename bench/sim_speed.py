"""Simulation speed: env steps/s without rendering, and step + render frames/s.

Stock gymnasium Reacher-v5 and Pusher-v5 run in the same invocation as the baseline for the
ratio column. Random actions from a seeded action space; each figure is the median of
``--repeats`` runs.

    MUJOCO_GL=egl .venv/bin/python bench/sim_speed.py [--steps 2000] [--frames 200] [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import gymnasium as gym
import mujoco

import forethought.sim.envs  # noqa: F401  (registers the forethought/* envs)
from forethought.runtime import apply_defaults
from forethought.sim import PUSH_BLOCKS_ID


def steps_per_second(env_id: str, steps: int, seed: int, **kwargs) -> float:
    """Env steps per second under random actions, including resets at episode ends."""
    env = gym.make(env_id, **kwargs)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    dt = time.perf_counter() - t0
    env.close()
    return steps / dt


def render_fps(env_id: str, frames: int, seed: int, size: int, shadows: bool | None = None, **kwargs) -> float:
    """Step + render frames per second at ``size`` x ``size`` (``shadows=False`` turns them off)."""
    env = gym.make(env_id, render_mode="rgb_array", width=size, height=size, **kwargs)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    env.render()
    if shadows is False:  # stock envs: switch the shadow flag off on the live scene
        env.unwrapped.mujoco_renderer._get_viewer("rgb_array").scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    t0 = time.perf_counter()
    for _ in range(frames):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        env.render()
        if terminated or truncated:
            env.reset()
    dt = time.perf_counter() - t0
    env.close()
    return frames / dt


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown cpu"


def median_of(fn, repeats: int, *args, **kwargs) -> float:
    return statistics.median(fn(*args, **kwargs) for _ in range(repeats))


def main() -> None:
    apply_defaults()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    rows: list[dict] = []
    base = median_of(steps_per_second, a.repeats, "Pusher-v5", a.steps, a.seed)
    rows.append({"what": "Pusher-v5 (stock, baseline) steps/s", "value": base, "ratio": 1.0})
    rows.append({"what": "Reacher-v5 (stock) steps/s", "value": (v := median_of(steps_per_second, a.repeats, "Reacher-v5", a.steps, a.seed)), "ratio": v / base})
    for n in (1, 3):
        v = median_of(steps_per_second, a.repeats, PUSH_BLOCKS_ID, a.steps, a.seed, n_blocks=n)
        rows.append({"what": f"PushBlocks-v0, {n} block(s), steps/s", "value": v, "ratio": v / base})
    rbase = median_of(render_fps, a.repeats, "Pusher-v5", a.frames, a.seed, 96)
    rows.append({"what": "Pusher-v5 (stock, shadows on) step+render fps, 96x96 (baseline)", "value": rbase, "ratio": 1.0})
    v = median_of(render_fps, a.repeats, "Pusher-v5", a.frames, a.seed, 96, shadows=False)
    rows.append({"what": "Pusher-v5 (stock, shadows off) step+render fps, 96x96", "value": v, "ratio": v / rbase})
    for size in (64, 96):
        v = median_of(render_fps, a.repeats, PUSH_BLOCKS_ID, a.frames, a.seed, size, n_blocks=3)
        rows.append({"what": f"PushBlocks-v0, 3 blocks, step+render fps, {size}x{size}", "value": v, "ratio": v / rbase})

    machine = f"{cpu_name()} ({os.cpu_count()} cores, {platform.machine()}), mujoco {mujoco.__version__}, MUJOCO_GL=egl"
    if a.json:
        print(json.dumps({"machine": machine, "repeats": a.repeats, "rows": rows}))
        return
    print(f"machine: {machine}; median of {a.repeats} runs\n")
    print("| measurement | median | ratio vs baseline |\n|---|---|---|")
    for r in rows:
        print(f"| {r['what']} | {r['value']:.0f} | {r['ratio']:.2f}x |")


if __name__ == "__main__":
    main()
