"""``forethought render``: roll out a policy in simulation and write an MP4 or GIF.

Examples::

    forethought render --env forethought/PushBlocks-v0 --seed 3 --out push.mp4
    forethought render --env forethought/PushBlocks-v0 --seed 0 --episodes 4 --size 128 \\
        --task '{"skill": "push", "object": "red_block", "target": "left"}' --out red_left.gif
    forethought render --env forethought/Reacher-v5 --seed 0 --out reacher.gif

Episode ``i`` resets the env with ``seed + i`` (as ``forethought collect`` does), so a render
shows exactly the expert episode a data set recorded (without its noise). Each episode gives
``T + 1`` frames: the reset state, then one per step. The format follows the extension: ``.mp4``
(H.264 through imageio-ffmpeg's bundled ffmpeg) or ``.gif`` (Pillow); the file is written
atomically. Playback runs at the env's ``render_fps`` (real time) unless ``--fps`` says otherwise.

Policies come from ``POLICIES`` (name -> factory); only ``expert`` (the scripted expert of
``forethought.sim.experts``) exists so far. A learned policy registers itself with
``register_policy("name", factory)``, where ``factory(env_id, args) -> Policy``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol

import gymnasium as gym
import numpy as np

import forethought.sim.envs  # noqa: F401  (registers the forethought/* envs)
from forethought.files import atomic_path
from forethought.cli_args import help_from_docstring, json_object, run_writer
from forethought.sim.experts import make_expert

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".gif")


# --------------------------------------------------------------------------------------------
# Video files


def _check_frame(frame: Any, i: int, shape: tuple[int, ...] | None) -> np.ndarray:
    f = np.asarray(frame)
    if f.ndim != 3 or f.shape[2] != 3 or f.shape[0] < 1 or f.shape[1] < 1:
        raise ValueError(f"frame {i} must be an RGB image [H, W, 3], got shape {f.shape}")
    if f.dtype != np.uint8:
        raise ValueError(f"frame {i} must be uint8 (0-255), got dtype {f.dtype}")
    if shape is not None and f.shape != shape:
        raise ValueError(f"frame {i} has shape {f.shape}, frame 0 has {shape}: all frames must match")
    return np.ascontiguousarray(f)


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float = 10.0) -> Path:
    """Write RGB ``frames`` (each ``uint8[H, W, 3]``, all the same size) to ``path`` atomically.

    ``.mp4``: H.264 (yuv420p, which needs even ``H`` and ``W``), every frame kept. ``.gif``:
    looping; frame durations are whole milliseconds (GIF stores centiseconds, so fps above 50 or
    not dividing 100 plays slightly off), and Pillow merges identical consecutive frames into
    one longer frame, so the file may hold fewer frames with the same total duration. ``frames``
    may be a generator (MP4 streams it). Raises ``ValueError`` for a bad extension, fps, frame
    or an empty frame list; ``path`` is untouched on any error.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in VIDEO_EXTENSIONS:
        raise ValueError(f"video path must end in one of {list(VIDEO_EXTENSIONS)}, got {str(path)!r}")
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    it = iter(frames)
    try:
        first = _check_frame(next(it), 0, None)
    except StopIteration:
        raise ValueError("no frames to write") from None
    shape = first.shape
    count = 1
    with atomic_path(path) as tmp:
        if ext == ".mp4":
            import imageio_ffmpeg

            h, w = shape[:2]
            if h % 2 or w % 2:
                raise ValueError(f"MP4 (H.264, yuv420p) needs an even width and height, got {w} x {h}")
            writer = imageio_ffmpeg.write_frames(
                str(tmp), (w, h), fps=float(fps), codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
                macro_block_size=1, quality=None, ffmpeg_log_level="error",
                output_params=["-crf", "18", "-preset", "medium"],
            )
            writer.send(None)  # start ffmpeg
            try:
                writer.send(first)
                for i, f in enumerate(it, start=1):
                    writer.send(_check_frame(f, i, shape))
                    count += 1
            finally:
                writer.close()
        else:
            import imageio.v3 as iio

            arr = [first]
            for i, f in enumerate(it, start=1):
                arr.append(_check_frame(f, i, shape))
            count = len(arr)
            iio.imwrite(tmp, np.stack(arr), extension=".gif", duration=round(1000.0 / fps), loop=0)
    return path


# --------------------------------------------------------------------------------------------
# Policies


class Policy(Protocol):
    """What ``render`` drives: ``reset()`` at episode start, then ``act(obs, task) -> action``."""

    def reset(self) -> None: ...

    def act(self, obs: np.ndarray, task: Mapping[str, Any]) -> np.ndarray: ...


PolicyFactory = Callable[[str, argparse.Namespace | None], Policy]
POLICIES: dict[str, PolicyFactory] = {}
"""Policy name -> ``factory(env_id, args)``; ``args`` is the parsed command line (or ``None``)."""


def register_policy(name: str, factory: PolicyFactory) -> None:
    """Make ``--policy name`` available to ``forethought render``."""
    if name in POLICIES and POLICIES[name] is not factory:
        raise ValueError(f"a policy named {name!r} is already registered")
    POLICIES[name] = factory


register_policy("expert", lambda env_id, args: make_expert(env_id))


def make_policy(name: str, env_id: str, args: argparse.Namespace | None = None) -> Policy:
    """Build policy ``name`` for ``env_id``; ``ValueError`` lists the registered names."""
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}: available policies are {sorted(POLICIES)}")
    return POLICIES[name](env_id, args)


# --------------------------------------------------------------------------------------------
# Rollouts


@dataclass
class Rollout:
    """What ``rollout_frames`` returns.

    Attributes:
        frames: ``uint8[size, size, 3]`` images, ``T + 1`` per episode (the reset state, then one
            per step), episode after episode.
        episodes: per episode ``{"seed", "task", "steps", "success"}``.
        fps: the env's ``render_fps`` (real-time playback).
    """

    frames: list[np.ndarray]
    episodes: list[dict[str, Any]]
    fps: float


def rollout_frames(
    env_id: str,
    seed: int = 0,
    task: Mapping[str, Any] | None = None,
    episodes: int = 1,
    size: int = 96,
    policy: str | Policy = "expert",
    env_kwargs: Mapping[str, Any] | None = None,
    max_steps: int | None = None,
) -> Rollout:
    """Roll out ``policy`` for ``episodes`` episodes, rendering every state.

    Episode ``i`` resets with ``seed + i`` and ``options={"task": task}`` when a task is given.
    Episodes end when the env terminates or truncates, or after ``max_steps``.
    """
    if not isinstance(episodes, (int, np.integer)) or episodes < 1:
        raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
    if not (isinstance(size, (int, np.integer)) and 16 <= size <= 2048):
        raise ValueError(f"size must be an integer number of pixels in 16..2048, got {size!r}")
    pol = make_policy(policy, env_id) if isinstance(policy, str) else policy
    try:
        env = gym.make(env_id, render_mode="rgb_array", width=int(size), height=int(size), **dict(env_kwargs or {}))
    except (gym.error.Error, TypeError) as e:
        raise ValueError(f"cannot make env {env_id!r} for rendering: {e}") from e
    limit = max_steps or (env.spec.max_episode_steps if env.spec else None) or 1000
    fps = float(env.metadata.get("render_fps") or 10)
    frames: list[np.ndarray] = []
    summaries: list[dict[str, Any]] = []
    try:
        for i in range(episodes):
            obs, info = env.reset(seed=int(seed + i), options={"task": dict(task)} if task is not None else None)
            pol.reset()
            frames.append(env.render())
            success, steps = bool(info.get("is_success", False)), 0
            for steps in range(1, limit + 1):
                step = getattr(env.unwrapped, "task", None) or {}
                obs, _, terminated, truncated, info = env.step(pol.act(obs, step))
                frames.append(env.render())
                success = bool(info.get("is_success", False))
                if terminated or truncated:
                    break
            summaries.append(
                {"seed": int(seed + i), "task": getattr(env.unwrapped, "task", None),
                 "steps": steps, "success": success}
            )
    finally:
        env.close()
    return Rollout(frames, summaries, fps)


def render(
    env_id: str,
    seed: int,
    out: str | Path,
    task: Mapping[str, Any] | None = None,
    episodes: int = 1,
    size: int = 96,
    policy: str | Policy = "expert",
    fps: float | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> tuple[Path, Rollout]:
    """Roll out (``rollout_frames``) and write the video ``out``; return its path and the rollout."""
    out = Path(out)
    if out.suffix.lower() not in VIDEO_EXTENSIONS:  # fail before the rollout, not after
        raise ValueError(f"--out must end in one of {list(VIDEO_EXTENSIONS)}, got {str(out)!r}")
    if out.suffix.lower() == ".mp4" and size % 2:
        raise ValueError(f"MP4 needs an even --size, got {size}")
    rollout = rollout_frames(env_id, seed, task, episodes, size, policy, env_kwargs)
    return write_video(out, rollout.frames, fps or rollout.fps), rollout


# --------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``forethought render``."""
    parser.description, examples = help_from_docstring(__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = examples + "\n\ndetails: python -m pydoc forethought.sim.render"
    parser.add_argument("--env", required=True, help="gymnasium env id, e.g. forethought/PushBlocks-v0")
    parser.add_argument("--seed", type=int, default=0, help="episode i resets with SEED + i (default 0)")
    parser.add_argument("--task", type=json_object, default=None, metavar="JSON",
                        help="plan step as JSON, e.g. '{\"skill\": \"reach\", \"target\": \"left\"}' "
                        "(default: the env draws one)")
    parser.add_argument("--episodes", type=int, default=1, help="episodes, one after another (default 1)")
    parser.add_argument("--size", type=int, default=96, help="frame width and height in pixels (default 96)")
    parser.add_argument("--fps", type=float, default=None, help="playback frame rate (default: the env's, real time)")
    parser.add_argument("--policy", default="expert", choices=sorted(POLICIES), help="who acts (default expert)")
    parser.add_argument("--env-kwargs", type=json_object, default=None, metavar="JSON",
                        help="keyword arguments for gymnasium.make, as a JSON object")
    parser.add_argument("--out", type=Path, required=True, help="output .mp4 or .gif (written atomically)")


def run(args: argparse.Namespace) -> int:
    """Run ``forethought render``; exit status 0 on success, 2 on bad input, 130 on Ctrl-C."""
    code, result = run_writer("render", args.out, lambda: render(
        args.env, args.seed, args.out, task=args.task, episodes=args.episodes, size=args.size,
        policy=make_policy(args.policy, args.env, args), fps=args.fps, env_kwargs=args.env_kwargs,
    ))
    if result is None:
        return code
    path, rollout = result
    ok = sum(e["success"] for e in rollout.episodes)
    n = len(rollout.episodes)
    print(f"wrote {path}: {n} episode(s), {len(rollout.frames)} frames, success {ok}/{n}")
    return 0
