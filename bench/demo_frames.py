"""Check a demo video frame by frame: how far does each block move from where it starts? (issue #16)

The top-down video of ``forethought run ... --video FILE`` shows the red, green and blue blocks. In
every frame each block's pixels are found by colour and their centroid taken; the pixel scale comes
from the blocks' centroids in the first frame against their positions in the simulator after
``reset(seed, task)`` (the scene depends on both; a least-squares fit of one scale over every pair
of blocks). Prints, per block, the
largest and the final displacement from the first frame (cm), and the frame of the largest.

Usage::

    ./scripts/demo.sh                                            # writes outputs/demo.mp4 (seed 0)
    MUJOCO_GL=egl .venv/bin/python bench/demo_frames.py outputs/demo.mp4 --seed 0 --json outputs/demo_frames.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import gymnasium as gym
import imageio.v3 as iio
import numpy as np

import forethought.sim.envs  # noqa: F401  (registers the forethought/* envs)
from forethought.sim import PUSH_BLOCKS_ID, scene

COLOURS = {  # pixel tests on RGB (0-255) for each block's rendered colour
    "red_block": lambda r, g, b: (r > 140) & (g < 90) & (b < 90),
    "green_block": lambda r, g, b: (g > 110) & (r < 90) & (b < 100),
    "blue_block": lambda r, g, b: (b > 130) & (r < 90) & (g < 120),
}


def centroids(frames: np.ndarray) -> dict[str, np.ndarray]:
    """``frames[T, H, W, 3]`` -> per block ``[T, 2]`` pixel centroids (NaN where no pixel matches)."""
    f = frames.astype(np.int16)
    ys, xs = np.mgrid[: f.shape[1], : f.shape[2]]
    out = {}
    for name, test in COLOURS.items():
        mask = test(f[..., 0], f[..., 1], f[..., 2])  # [T, H, W]
        n = mask.sum((1, 2)).astype(float)
        n[n == 0] = np.nan
        out[name] = np.stack([(mask * xs).sum((1, 2)) / n, (mask * ys).sum((1, 2)) / n], -1)
    return out


DEMO_TASK = {"skill": "push", "object": "green_block", "target": "top_right"}
"""The plan step of ``scripts/demo.sh`` ("push the green block to the top right")."""


def metres_per_pixel(first: dict[str, np.ndarray], seed: int, n_blocks: int, task: dict) -> float:
    """One scale fitted to every pair of blocks: first-frame pixel distances against the simulator's."""
    env = gym.make(PUSH_BLOCKS_ID, n_blocks=n_blocks)
    obs, _ = env.reset(seed=seed, options={"task": task})
    env.close()
    sim, px = [], []
    for a, b in itertools.combinations([n for n in scene.present_blocks(obs) if np.isfinite(first[n]).all()], 2):
        sim.append(np.linalg.norm(scene.block_xy(obs, a) - scene.block_xy(obs, b)))
        px.append(np.linalg.norm(first[a] - first[b]))
    if not px:
        raise ValueError("fewer than two blocks visible in the first frame: cannot fit the pixel scale")
    sim_a, px_a = np.array(sim), np.array(px)
    return float((sim_a * px_a).sum() / (px_a * px_a).sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--seed", type=int, default=0, help="the env seed of the run (the demo's: 0)")
    parser.add_argument("--n-blocks", type=int, default=3)
    parser.add_argument("--task", type=json.loads, default=DEMO_TASK, help="the run's first plan step (JSON)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    frames = iio.imread(args.video)
    cent = centroids(frames)
    scale = metres_per_pixel({k: v[0] for k, v in cent.items()}, args.seed, args.n_blocks, args.task)
    result = {"video": str(args.video), "frames": int(len(frames)), "cm_per_pixel": 100 * scale, "blocks": {}}
    print(f"{args.video}: {len(frames)} frames, {100 * scale:.3f} cm per pixel")
    for name, c in cent.items():
        moved = np.linalg.norm(c - c[0], axis=-1) * 100 * scale  # [T] cm
        if np.isnan(moved).all():
            continue
        worst = int(np.nanargmax(moved))
        result["blocks"][name] = {"max_cm": float(moved[worst]), "max_frame": worst, "final_cm": float(moved[-1]),
                                  "frames_missing": int(np.isnan(moved).sum())}
        print(f"  {name}: largest displacement {moved[worst]:.1f} cm (frame {worst}), final {moved[-1]:.1f} cm, "
              f"{int(np.isnan(moved).sum())} frames without it")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
