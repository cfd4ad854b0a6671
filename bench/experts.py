"""Success rates of the scripted experts over fixed seeds, with Wilson 95% intervals.

Each scenario runs one episode per seed (seeds ``--start`` .. ``--start + --seeds - 1``, default
0..99) with the env's registered time limit (PushBlocks: 200 steps at 10 Hz). For PushBlocks the
task is drawn from ``numpy.random.default_rng(seed)`` with ``push_blocks.sample_task`` restricted
to the scenario's skill, then passed to ``reset(seed=seed, options={"task": ..., "n_blocks": ...})``;
for the other envs the task is the one the env draws at ``reset(seed=seed)``.

Usage::

    MUJOCO_GL=egl python bench/experts.py                     # markdown table, 100 seeds
    python bench/experts.py --seeds 20 --scenario push-1      # a quick look
    python bench/experts.py --json                            # JSON on stdout instead
    python bench/experts.py --json results.json               # table, and JSON to a file
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

import forethought.sim.envs  # noqa: F401  (registers the envs)
from forethought.sim import PUSH_BLOCKS_ID, REACHER_ID
from forethought.sim.experts import make_expert
from forethought.sim.push_blocks import sample_task
from forethought.sim.scene import BLOCK_NAMES


@dataclass(frozen=True)
class Scenario:
    """One row of the table: an env, and for PushBlocks the blocks present and the skills drawn."""

    name: str
    env_id: str
    n_blocks: int | None = None
    skills: tuple[str, ...] | None = None
    bar: float | None = None
    """Required success rate (for the table's last column), if any."""


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("push-1", PUSH_BLOCKS_ID, n_blocks=1, skills=("push",), bar=0.95),
    Scenario("reach-3", PUSH_BLOCKS_ID, n_blocks=3, skills=("reach",), bar=0.95),
    Scenario("push-3", PUSH_BLOCKS_ID, n_blocks=3, skills=("push",), bar=0.90),
    Scenario("mixed-3", PUSH_BLOCKS_ID, n_blocks=3, skills=("push", "reach")),
    Scenario("reacher", REACHER_ID),
)


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials (95% by default)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def cpu_name() -> str:
    """The CPU model, for the table header."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_episode(env: gym.Env, expert: Any, sc: Scenario, seed: int) -> tuple[bool, int, dict[str, Any]]:
    """One episode; returns (success, steps, task)."""
    if sc.env_id == PUSH_BLOCKS_ID:
        present = BLOCK_NAMES[: sc.n_blocks]
        task = sample_task(np.random.default_rng(seed), present, sc.skills)
        obs, info = env.reset(seed=seed, options={"task": task, "n_blocks": sc.n_blocks})
    else:
        obs, info = env.reset(seed=seed)
    task = env.unwrapped.task
    expert.reset()
    steps = 0
    while True:
        obs, _, terminated, truncated, info = env.step(expert.act(obs, task))
        steps += 1
        if terminated or truncated:
            return bool(info.get("is_success", False)), steps, task


def run_scenario(sc: Scenario, seeds: list[int]) -> dict[str, Any]:
    env = gym.make(sc.env_id)
    expert = make_expert(sc.env_id)
    t0 = time.perf_counter()
    results = [run_episode(env, expert, sc, s) for s in seeds]
    wall = time.perf_counter() - t0
    env.close()
    k = sum(r[0] for r in results)
    lo, hi = wilson(k, len(seeds))
    steps_ok = [r[1] for r in results if r[0]]
    return {
        "scenario": sc.name,
        "env_id": sc.env_id,
        "n_blocks": sc.n_blocks,
        "skills": list(sc.skills) if sc.skills else None,
        "episodes": len(seeds),
        "successes": k,
        "rate": k / len(seeds),
        "ci95": [lo, hi],
        "bar": sc.bar,
        "mean_steps_success": float(np.mean(steps_ok)) if steps_ok else None,
        "failed_seeds": [s for s, r in zip(seeds, results) if not r[0]],
        "wall_s": wall,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=100, help="episodes per scenario (default 100)")
    ap.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    ap.add_argument("--scenario", action="append", choices=[s.name for s in SCENARIOS], help="run only these (repeatable)")
    ap.add_argument(
        "--json", nargs="?", const="-", metavar="PATH",
        help="print the results as JSON instead of the table (or, with PATH, write them there as well)",
    )
    args = ap.parse_args(argv)
    if args.seeds < 1:
        ap.error(f"--seeds must be >= 1, got {args.seeds}")
    seeds = list(range(args.start, args.start + args.seeds))
    chosen = [s for s in SCENARIOS if not args.scenario or s.name in args.scenario]
    rows = [run_scenario(sc, seeds) for sc in chosen]

    doc = {
        "machine": f"{cpu_name()}, python {platform.python_version()}",
        "seeds": {"first": seeds[0], "count": len(seeds)},
        "results": rows,
    }
    if args.json == "-":
        print(json.dumps(doc, indent=2))
        return 0
    print(f"Scripted experts, seeds {seeds[0]}..{seeds[-1]} ({len(seeds)} episodes each); "
          f"{cpu_name()}, python {platform.python_version()}\n")
    print("| scenario | env | blocks | episodes | success | 95% CI (Wilson) | bar | mean episode length (successes) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        bar = f">= {r['bar']:.0%}" if r["bar"] is not None else "-"
        ms = f"{r['mean_steps_success']:.1f}" if r["mean_steps_success"] is not None else "-"
        print(f"| {r['scenario']} | `{r['env_id']}` | {r['n_blocks'] or '-'} | {r['episodes']} | "
              f"{r['rate']:.1%} | [{r['ci95'][0]:.1%}, {r['ci95'][1]:.1%}] | {bar} | {ms} |")
    for r in rows:
        if r["failed_seeds"]:
            print(f"\n{r['scenario']}: failed seeds {r['failed_seeds']}", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
