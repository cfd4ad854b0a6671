"""Benchmarks of the SIGReg latent world model (issue #5), one section per question.

Sections (``--only`` picks some; all by default):

- ``openloop``: open-loop latent prediction error over horizons 1..20 blocks on held-out episodes,
  as a fraction of Var(z), against copy-last (``z_hat_{t+k} = z_t``) and against the same model fed
  shuffled actions;
- ``latency``: one CEM plan at LeWM's budget (300 samples x 10 iterations x 5 blocks), median of
  ``--calls`` calls in this process, for the latent planners (rollouts in torch, and exported to
  ONNX and run on onnxruntime with ``--threads`` intra-op threads) and three peers: P1 a pixel-space
  planner (the pixel model's backbone plus a decoder; every imagined step decodes the predicted
  frame and the next step re-encodes it; cost in pixels), P2 a DINO-WM-shaped patch-token model
  (64 tokens x 384, 6-layer frame-causal transformer, history 3) and P0 CEM through the MuJoCo
  simulator. P1 runs on both runtimes too (its cost graph exported to ONNX), so the latent
  planners and P1 are each compared on their faster runtime. P1's decoder and P2 are untrained
  (timing only). P0, P1 and P2 are too slow for 20 full plans, so they are timed on a reduced
  budget and scaled linearly to the full one (the cost is linear in samples x iterations); the
  table says which;
- ``success``: PushBlocks reach and 1-block push with a goal observation 25 steps ahead (the
  LeWM protocol): the goal is the state (and render) the scripted expert reaches after 25 steps
  from the same reset; the planner gets 50 steps; success when the pusher (reach) or the block
  (push) comes within ``TOL`` of its goal position; seeds whose goal is within ``MIN_MOVE`` of the
  start are skipped (they would succeed by standing still); Wilson 95% intervals;
- ``surprise``: per-step surprise AUROC and spike ratio for a mid-episode teleport, block mass x3,
  friction x0.2 and a colour change (pixels only: the state carries no colour), for the 1-step
  monitor and for open-loop/windowed monitors (``SURPRISE_SETTINGS``; the one reported is chosen on
  separate tuning seeds); positives are every step of a shifted episode (physics) or the steps
  whose score depends on the event (teleport, colour), negatives every step of the unperturbed
  episodes with the same seeds and play policy; and the Spearman correlation of the latent-noise
  rollout spread with the true k-step error;
- ``physics``: why the physics shifts are hard to flag: the steps where the shift is observable
  at all (a simulator counterfactual: the same block of actions replayed under the other physics
  from the exact same state), the 1-step AUROC restricted to them in both classes, and the shift's
  effect in latent space against the model's own error on those steps (``physics_signal``);
- ``monitor``: the online monitor's operating point, as ``world_model_node`` runs it: 3-block push
  episodes under a controller (``--monitor-policy``: the scripted expert, or D-MPC with the shipped
  proposer and ensemble, as in the demo); for each running-mean window, the threshold is the 98th
  percentile of the per-episode maximum surprise of clean episodes on tuning seeds (``1000 ..``),
  then on other seeds (``0 ..``) the share of clean episodes with any step above it (false alarms)
  and the share of episodes with a red-block teleport at step 30 flagged within 20 steps; the same
  for fixed thresholds (``--monitor-thresholds``);
- ``ablation``: collapse diagnostics and reach/push success of the model trained without SIGReg.

Usage::

    MUJOCO_GL=egl python bench/world_model.py --data data/pushblocks-wm.parquet --json bench-wm.json
    python bench/world_model.py --data data/pushblocks-wm.parquet --only latency --calls 20

The data set is the one the models were trained on (``models/pretrained/wm-pushblocks-*/README.md``);
its last 10 % of episodes are the held-out split.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

# Before torch loads OpenMP: idle OpenMP threads sleep instead of spinning. With the default
# (active) wait, 2 threads on a 2-core machine shared with other jobs were over 10x slower than 1.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import forethought.sim  # noqa: E402,F401  (registers the envs)
from forethought.models.world_model.data import make_sequences, render_frames  # noqa: E402
from forethought.models.world_model.latent_planner import LatentCEM, LatentPlanPolicy  # noqa: E402
import forethought.models.control.policy  # noqa: E402,F401  (registers --policy dmpc)
from forethought.models.evaluation import PolicySpec, build_policy  # noqa: E402
from forethought.models.onnx_session import OPSET, open_session  # noqa: E402
from forethought.models.world_model.modeling_world_model import LatentWorldModel  # noqa: E402
from forethought.models.world_model.onnx_rollout import export_rollout  # noqa: E402
from forethought.models.world_model.probe import encode_all  # noqa: E402
from forethought.models.world_model.sigreg import collapse_diagnostics  # noqa: E402
from forethought.models.world_model.surprise import predict_targets, rollout_spread, surprise_trace  # noqa: E402
from forethought.models.world_model.train_world_model import VALIDATION_FRACTION  # noqa: E402
from forethought.sim import scene  # noqa: E402
from forethought.sim.collect import PlayPolicy  # noqa: E402
from forethought.sim.dataset import Dataset  # noqa: E402
from forethought.sim.experts import make_expert  # noqa: E402
from forethought.sim.push_blocks import sample_task  # noqa: E402
from forethought.sim.wrappers import BodyMassScale, GeomFrictionScale  # noqa: E402

PUSH_BLOCKS = "forethought/PushBlocks-v0"
PRETRAINED = Path(__file__).resolve().parents[1] / "models" / "pretrained"
SECTIONS = ("openloop", "latency", "success", "surprise", "physics", "monitor", "ablation")
GOAL_STEPS = 25
BUDGET = 50
HORIZON = 5
"""Plan horizon in action blocks (25 env steps)."""
TOL = 0.02
"""Success tolerance (m) on the pusher (reach) or block (push) position."""
MIN_MOVE = 0.03
"""Seeds whose goal position is within this distance (m) of the start are skipped."""


# ------------------------------------------------------------------------------------ helpers


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score 95% interval of ``k`` successes in ``n`` trials."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counted half (Mann-Whitney U / (n_pos n_neg))."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    ranks = _ranks(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties averaged."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    return (sums / counts)[inv]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(_ranks(np.asarray(a, float)), _ranks(np.asarray(b, float)))[0, 1])


def timed(fn: Callable[[], Any], calls: int, warmup: int = 2) -> dict[str, float]:
    """Median and p90 wall time (ms) of ``calls`` calls after ``warmup``, the median process CPU time
    (ms, all threads; less sensitive to other jobs on the machine than wall time) and the matmul and
    convolution GFLOP of one call (``FlopCounterMode``; 0 for work outside torch)."""
    for _ in range(warmup):
        fn()
    with FlopCounterMode(display=False) as counter:
        fn()
    times, cpu = [], []
    for _ in range(calls):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return {"median_ms": statistics.median(times), "p90_ms": float(np.percentile(times, 90)),
            "cpu_ms": statistics.median(cpu), "gflop": counter.get_total_flops() / 1e9, "calls": calls}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def make_env(pixels: bool, **kwargs: Any) -> gym.Env:
    if pixels:
        kwargs.update(render_mode="rgb_array", width=64, height=64)
    return gym.make(PUSH_BLOCKS, **kwargs)


# ------------------------------------------------------------------------------------ open loop


@torch.inference_mode()
def open_loop(model: LatentWorldModel, ds: Dataset, frames: np.ndarray, max_k: int, n: int, seed: int) -> dict:
    """Normalised k-step latent error for k = 1..max_k blocks: model, copy-last, shuffled actions."""
    fs = model.config.frameskip
    held_out = range(ds.num_episodes - max(1, round(ds.num_episodes * VALIDATION_FRACTION)), ds.num_episodes)
    seq = make_sequences(ds, fs, max_k + 1, episodes=list(held_out))
    if len(seq) == 0:
        raise ValueError(f"no held-out episode is {fs * max_k} steps long: lower --max-k")
    pick = np.random.default_rng(seed).permutation(len(seq))[:n]
    rows, actions = seq.rows[pick], torch.from_numpy(seq.actions[pick])  # [n, K+1], [n, K, fs, A]
    obs = torch.from_numpy(frames[rows] if model.config.obs_type == "pixels" else ds.states[rows])
    z = encode_all(model, obs.reshape(-1, *obs.shape[2:])).reshape(len(pick), max_k + 1, -1)
    var = float(z.reshape(-1, z.shape[-1]).var(0).mean())
    blocks = model.processor.normalize_actions(actions).flatten(2)
    pred = model.rollout_latent(z[:, :1], blocks)
    perm = torch.from_numpy(np.random.default_rng(seed + 1).permutation(len(pick)))
    shuffled = model.rollout_latent(z[:, :1], blocks[perm])
    err = lambda p: ((p - z[:, 1:]).square().mean((0, 2)) / var).tolist()  # noqa: E731
    return {"k": list(range(1, max_k + 1)), "model": err(pred), "copy_last": err(z[:, :1].expand_as(pred)),
            "shuffled_actions": err(shuffled), "windows": len(pick), "var_z": var}


# ------------------------------------------------------------------------------------ latency peers


class PixelDecoder(nn.Module):
    """P1's decoder: ``z[n, D] -> image[n, 3, 64, 64]`` in [-1, 1] (mirror of the pixel encoder)."""

    def __init__(self, dim: int, channels: tuple[int, ...] = (128, 64, 32, 16)) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, channels[0] * 16)
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels, channels[1:] + (3,)):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.GELU()]
        self.net = nn.Sequential(*layers[:-1], nn.Tanh())
        self.c0 = channels[0]

    def forward(self, z: Tensor) -> Tensor:
        return self.net(self.fc(z).reshape(-1, self.c0, 4, 4))


class PixelSpaceModel(nn.Module):
    """P1: a pixel-space world model with the pixel model's backbone plus a decoder.

    The rollout lives in pixel space: every imagined step decodes the predicted embedding to a
    frame, and the next step re-encodes that frame (autoregressive in pixels); the cost is the
    pixel MSE of the final decoded frame to the goal image. The decoder is untrained: timing only.
    ``forward`` is ``cost`` (so it exports to ONNX like the latent rollout).
    """

    def __init__(self, model: LatentWorldModel) -> None:
        super().__init__()
        self.model, self.decoder = model, PixelDecoder(model.config.embed_dim)
        self.eval()

    def forward(self, history: Tensor, candidates: Tensor, goal: Tensor) -> Tensor:
        return self.cost(history, candidates, goal)

    def cost(self, history: Tensor, candidates: Tensor, goal: Tensor) -> Tensor:
        """``history[h, 3, H, W]`` normalised frames, ``candidates[n, K, block_dim]``, ``goal[3, H, W]`` -> ``[n]``."""
        m, H = self.model, self.model.config.history
        n, K, _ = candidates.shape
        z = m.embed(history)[-H:].unsqueeze(0).expand(n, -1, -1)  # the real frames, encoded once
        for k in range(K):
            frame = self.decoder(m.predict(z, candidates[:, k]))  # [n, 3, H, W]: the imagined frame
            if k + 1 < K:
                z = torch.cat([z, m.embed(frame).unsqueeze(1)], 1)[:, -H:]  # re-encoded for the next step
        return (frame - goal).square().mean((1, 2, 3))


class PatchTokenPredictor(nn.Module):
    """P2: DINO-WM-shaped predictor over 64 patch tokens x 384 per frame, frame-causal, history 3.

    The action embedding is concatenated to every token (as DINO-WM does) and projected back.
    """

    def __init__(self, block_dim: int, tokens: int = 64, width: int = 384, depth: int = 6, heads: int = 16,
                 history: int = 3) -> None:
        super().__init__()
        self.tokens, self.history = tokens, history
        self.action = nn.Linear(block_dim, 10)
        self.inp = nn.Linear(width + 10, width)
        self.pos = nn.Parameter(torch.zeros(history * tokens, width))
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)

    def forward(self, window: Tensor, block: Tensor) -> Tensor:
        """``window[n, h, tokens, width]``, ``block[n, block_dim]`` -> next frame ``[n, tokens, width]``."""
        n, h, p, w = window.shape
        a = self.action(block)[:, None, None].expand(n, h, p, -1)
        x = self.inp(torch.cat([window, a], -1)).reshape(n, h * p, w) + self.pos[: h * p]
        frame = torch.arange(h * p, device=x.device) // p
        mask = frame[None, :] > frame[:, None]  # a token sees its own and earlier frames
        return self.blocks(x, mask=mask)[:, -p:]

    def rollout(self, tokens: Tensor, blocks: Tensor) -> Tensor:
        """``tokens[n, tokens, width]`` (current frame), ``blocks[n, K, block_dim]`` -> final frame tokens."""
        window = tokens[:, None]
        for k in range(blocks.shape[1]):
            nxt = self(window, blocks[:, k])
            window = torch.cat([window, nxt[:, None]], 1)[:, -self.history:]
        return window[:, -1]


def cem_loop(cost: Callable[[Tensor], Tensor], samples: int, elites: int, iterations: int, horizon: int,
             block_dim: int, generator: torch.Generator) -> Tensor:
    """Plain CEM over normalised blocks ``[horizon, block_dim]``; ``cost(candidates[n, K, Bd]) -> [n]``."""
    mean, std = torch.zeros(horizon, block_dim), torch.ones(horizon, block_dim)
    for _ in range(iterations):
        cand = (mean + std * torch.randn(samples, horizon, block_dim, generator=generator)).clamp(-1, 1)
        cand[0] = mean
        elite = cand[torch.topk(cost(cand), elites, largest=False).indices]
        mean, std = elite.mean(0), elite.std(0, unbiased=False).clamp_min(0.05)
    return mean


class MujocoCEM:
    """P0: CEM whose candidates are rolled out in the MuJoCo simulator itself (a privileged oracle)."""

    def __init__(self, env: gym.Env, frameskip: int = 5) -> None:
        self.env, self.base, self.fs = env, env.unwrapped, frameskip
        self.spec = mujoco.mjtState.mjSTATE_FULLPHYSICS

    def cost(self, candidates: Tensor, goal: np.ndarray) -> Tensor:
        m, d = self.base.model, self.base.data
        saved = np.empty(mujoco.mj_stateSize(m, self.spec))
        mujoco.mj_getState(m, d, saved, self.spec)
        low, high = self.base.action_space.low, self.base.action_space.high
        actions = (candidates.numpy().reshape(len(candidates), -1, 2) + 1) / 2 * (high - low) + low
        costs = []
        for seq in actions:
            for a in seq:
                self.base._do_simulation(float(a[0]), float(a[1]))
            costs.append(float(np.sum((self.base._get_obs() - goal) ** 2)))
            mujoco.mj_setState(m, d, saved, self.spec)
        mujoco.mj_forward(m, d)
        return torch.tensor(costs)


@torch.inference_mode()
def latency(state_model: LatentWorldModel, pixel_model: LatentWorldModel, calls: int, seed: int) -> dict:
    """Plan latency at LeWM's CEM budget (see the module docstring)."""
    S, I, K, E = 300, 10, 5, 30
    env = make_env(pixels=True, n_blocks=1)
    obs, _ = env.reset(seed=seed)
    frame = env.render()
    goal_obs, goal_frame = obs.copy(), frame.copy()
    goal_obs[scene.PUSHER_POS] += 0.1
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="wm-latency-") as onnx_dir:
        for name, model, x, goal in (("latent CEM, state model", state_model, obs, goal_obs),
                                     ("latent CEM, pixel model", pixel_model, frame, goal_frame)):
            planner = LatentCEM(model, samples=S, elites=E, iterations=I, horizon=K, seed=seed)
            rows[name] = {**timed(lambda: planner.plan(x, goal=goal), calls), "budget": f"{S}x{I}x{K}", "scaled": 1}
            model.load_onnx(export_rollout(model, Path(onnx_dir) / f"{model.config.obs_type}.onnx", K))
            planner = LatentCEM(model, samples=S, elites=E, iterations=I, horizon=K, seed=seed, backend="onnx")
            # the same graph as the torch row: FlopCounterMode does not see onnxruntime's products
            rows[f"{name}, onnxruntime"] = {**timed(lambda: planner.plan(x, goal=goal), calls),
                                            "gflop": rows[name]["gflop"], "budget": f"{S}x{I}x{K}", "scaled": 1}
            model.onnx_rollout = None

        # P1: pixel-space rollout (decode, re-encode every step); one iteration timed, scaled to the full budget
        g = torch.Generator().manual_seed(seed)
        p1 = PixelSpaceModel(pixel_model)
        p1_hist = pixel_model.processor.normalize_obs(torch.from_numpy(frame)).unsqueeze(0)
        p1_goal = pixel_model.processor.normalize_obs(torch.from_numpy(goal_frame))
        slow_calls = max(3, calls // 4)
        t = timed(lambda: cem_loop(lambda c: p1.cost(p1_hist, c, p1_goal), S, E, 1, K, pixel_model.config.block_dim,
                                   g), slow_calls, warmup=1)
        p1_name = "P1 pixel-space planner (backbone + decoder, rollout in pixels)"
        rows[p1_name] = scaled(t, I, f"{S}x1x{K}")
        p1_onnx = export_p1(p1, p1_hist, p1_goal, K, Path(onnx_dir) / "p1.onnx")
        feed = {"history": p1_hist.numpy(), "goal": p1_goal.numpy()}
        t = timed(lambda: cem_loop(lambda c: torch.from_numpy(p1_onnx.run(None, {**feed, "candidates": c.numpy()})[0]),
                                   S, E, 1, K, pixel_model.config.block_dim, g), slow_calls, warmup=1)
        rows["P1 pixel-space planner, onnxruntime"] = {**scaled(t, I, f"{S}x1x{K}"), "gflop": rows[p1_name]["gflop"]}

    # P2: DINO-WM-shaped patch tokens; timed at a reduced sample count, scaled to the full budget
    p2 = PatchTokenPredictor(pixel_model.config.block_dim).eval()
    s2 = 30
    cur, goal_tok = torch.randn(1, 64, 384, generator=g), torch.randn(64, 384, generator=g)
    p2_cost = lambda c: (p2.rollout(cur.expand(len(c), -1, -1), c) - goal_tok).square().mean((1, 2))  # noqa: E731
    t = timed(lambda: cem_loop(p2_cost, s2, 3, 1, K, pixel_model.config.block_dim, g), slow_calls, warmup=1)
    rows["P2 DINO-WM-shaped (64 tokens x 384)"] = scaled(t, (S * I) / s2, f"{s2}x1x{K}")

    # P0: CEM through MuJoCo; one iteration of 300 samples timed, scaled to 10 iterations
    sim = MujocoCEM(gym.make(PUSH_BLOCKS, n_blocks=1))
    sim.env.reset(seed=seed)
    t = timed(lambda: cem_loop(lambda c: sim.cost(c, goal_obs), S, E, 1, K, 10, g), slow_calls, warmup=1)
    rows["P0 CEM through MuJoCo"] = scaled(t, I, f"{S}x1x{K}")
    env.close()
    sim.env.close()
    for key, base in (("torch", rows["latent CEM, pixel model"]), ("onnx", rows["latent CEM, pixel model, onnxruntime"])):
        for r in rows.values():
            r[f"x_latent_pixel_{key}"] = r["median_ms"] / base["median_ms"]
            r[f"x_latent_pixel_{key}_cpu"] = r["cpu_ms"] / base["cpu_ms"]
    return rows


def export_p1(p1: PixelSpaceModel, history: Tensor, goal: Tensor, horizon: int, path: Path) -> Any:
    """P1's cost (``history``, ``candidates[n, K, block_dim]``, ``goal`` -> ``[n]``) on onnxruntime, with
    the same intra-op threads as torch (so P1 is not left on the slower runtime)."""
    cand = torch.rand(4, horizon, p1.model.config.block_dim) * 2 - 1
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(p1, (history, cand, goal), str(path), dynamo=False, opset_version=OPSET,
                          input_names=["history", "candidates", "goal"], output_names=["cost"],
                          dynamic_axes={"candidates": {0: "n"}, "cost": {0: "n"}})
    session = open_session(path, None, None, "P1 cost graph", "export_p1")
    got = session.run(None, {"history": history.numpy(), "candidates": cand.numpy(), "goal": goal.numpy()})[0]
    with torch.no_grad():
        ref = p1.cost(history, cand, goal).numpy()
    if not np.allclose(got, ref, rtol=1e-3, atol=1e-5):
        raise RuntimeError(f"P1 on onnxruntime differs from torch by {np.abs(got - ref).max():.2e}")
    return session


def scaled(t: dict[str, float], scale: float, budget: str) -> dict[str, Any]:
    """A ``timed`` result on a reduced budget, scaled linearly to the full one."""
    return {**{k: t[k] * scale for k in ("median_ms", "p90_ms", "cpu_ms", "gflop")}, "calls": t["calls"],
            "budget": budget, "scaled": scale}


# ------------------------------------------------------------------------------------ success


def goal_episode(env: gym.Env, seed: int, skill: str, pixels: bool) -> tuple[Any, Any, dict, np.ndarray, float] | None:
    """Reset, run the expert ``GOAL_STEPS`` steps; return (start obs, goal obs, task, goal xy, moved) or None."""
    rng = np.random.default_rng(seed)
    task = sample_task(rng, scene.BLOCK_NAMES[:1], skills=(skill,))
    obs, _ = env.reset(seed=seed, options={"task": task, "n_blocks": 1})
    expert = make_expert(PUSH_BLOCKS)
    expert.reset()
    for _ in range(GOAL_STEPS):
        obs, _, term, _, _ = env.step(expert.act(obs, task))
        if term:
            break
    goal = env.unwrapped.render() if pixels else obs.copy()
    goal_xy = _tracked_xy(obs, skill)
    start_obs, _ = env.reset(seed=seed, options={"task": task, "n_blocks": 1})
    moved = float(np.linalg.norm(goal_xy - _tracked_xy(start_obs, skill)))
    start = env.unwrapped.render() if pixels else start_obs
    return start, goal, task, goal_xy, moved


def _tracked_xy(obs: np.ndarray, skill: str) -> np.ndarray:
    return np.asarray(obs[scene.PUSHER_POS] if skill == "reach" else scene.block_xy(obs, "red_block"), float)


class RandomPolicy:
    """Baseline: uniform random actions in the box, ignoring the goal."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        pass

    def set_goal_observation(self, goal: Any) -> None:
        pass

    def act(self, obs: Any) -> np.ndarray:
        return self.rng.uniform(-scene.WORKSPACE_HALF, scene.WORKSPACE_HALF, 2).astype(np.float32)


def success(model: LatentWorldModel | None, skill: str, seeds: int, iterations: int, execute_blocks: int) -> dict:
    """Success rate with a goal observation 25 expert steps ahead (see the module docstring);
    ``model=None`` runs the random-action baseline on the same seeds."""
    pixels = model is not None and model.config.obs_type == "pixels"
    env = make_env(pixels)
    if model is None:
        policy: Any = RandomPolicy(0)
    else:
        planner = LatentCEM(model, iterations=iterations, horizon=HORIZON, terminal_only=execute_blocks == HORIZON)
        policy = LatentPlanPolicy(planner, execute_blocks=execute_blocks)
    wins, used, skipped, final_d = 0, [], 0, []
    seed = 0
    while len(used) < seeds:
        start, goal, task, goal_xy, moved = goal_episode(env, seed, skill, pixels)
        seed += 1
        if moved < MIN_MOVE:
            skipped += 1
            continue
        used.append(seed - 1)
        policy.reset()
        policy.set_goal_observation(goal)
        x, best = start, np.inf
        for _ in range(BUDGET):
            obs, *_ = env.unwrapped.step(policy.act(x))  # unwrapped: keep going after the env's own task succeeds
            x = env.unwrapped.render() if pixels else obs
            best = min(best, float(np.linalg.norm(_tracked_xy(obs, skill) - goal_xy)))
            if best <= TOL:
                break
        wins += best <= TOL
        final_d.append(best)
    env.close()
    lo, hi = wilson(wins, seeds)
    return {"success": wins / seeds, "wilson95": [lo, hi], "episodes": seeds, "seeds": used, "skipped": skipped,
            "median_best_distance_m": float(np.median(final_d)), "iterations": iterations,
            "execute_blocks": execute_blocks}


# ------------------------------------------------------------------------------------ surprise


SIM_STATE = mujoco.mjtState.mjSTATE_INTEGRATION
"""What ``_episode`` records before every step: enough to replay a step exactly (``replay``)."""


def _episode(model: LatentWorldModel, seed: int, length: int, wrap: Callable[[gym.Env], gym.Env] | None,
             event: Callable[[Any], None] | None, event_at: int,
             sim_states: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Observations ``[length + 1, ...]`` and actions of one play episode (3 blocks); ``wrap`` perturbs
    physics, ``event`` acts at step ``event_at``; the simulator state before every step is appended to
    ``sim_states`` if given."""
    pixels = model.config.obs_type == "pixels"
    env = make_env(pixels, n_blocks=3)
    if wrap is not None:
        env = wrap(env)
    obs, _ = env.reset(seed=seed)
    base = env.unwrapped
    play = PlayPolicy(PUSH_BLOCKS, base.action_space.low.astype(float), base.action_space.high.astype(float),
                      np.random.default_rng([seed, 7]))
    play.reset(obs)
    return _run(env, obs, play.act, length, event, event_at, pixels, sim_states)


def _run(env: gym.Env, obs: np.ndarray, act: Callable[[np.ndarray], Any], length: int,
         event: Callable[[Any], None] | None, event_at: int | None, pixels: bool,
         sim_states: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Step a reset ``env`` ``length`` times with ``act(obs)`` (unwrapped: past the task's own success),
    ``event`` acting after step ``event_at``; the observations (or renders) ``[length + 1, ...]`` and
    actions. Closes ``env``."""
    base = env.unwrapped
    xs = [base.render() if pixels else obs]
    actions = []
    for t in range(length):
        a = np.asarray(act(obs), np.float32)
        if sim_states is not None:
            sim_states.append(_sim_state(base))
        obs, *_ = base.step(a)
        if event is not None and t + 1 == event_at:
            event(base)
            mujoco.mj_forward(base.model, base.data)
            obs = base._get_obs()
        actions.append(a)
        xs.append(base.render() if pixels else obs)
    env.close()
    return np.stack(xs), np.stack(actions)


def _sim_state(base: Any) -> np.ndarray:
    state = np.empty(mujoco.mj_stateSize(base.model, SIM_STATE))
    mujoco.mj_getState(base.model, base.data, state, SIM_STATE)
    return state


def replay(env: gym.Env, state: np.ndarray, actions: np.ndarray, pixels: bool) -> tuple[Any, np.ndarray]:
    """The observation (or render) and state after ``actions`` from the simulator ``state``, in ``env``'s physics."""
    base = env.unwrapped
    mujoco.mj_setState(base.model, base.data, state, SIM_STATE)
    for a in actions:
        obs, *_ = base.step(a)
    return (base.render() if pixels else obs), obs


def teleport(base: Any) -> None:
    q = base._block_qpos["red_block"]
    xy = base.data.qpos[q[:2]]
    base.data.qpos[q[:2]] = np.clip(xy + np.where(xy > 0, -0.12, 0.12), -0.25, 0.25)


def recolour(base: Any) -> None:
    base.model.geom_rgba[base._block_geom["red_block"]] = (0.95, 0.85, 0.1, 1.0)


SURPRISE_SETTINGS: tuple[tuple[int, int], ...] = ((1, 1), (1, 10), (2, 1), (2, 10), (4, 1), (4, 10), (4, 20), (8, 1),
                                                  (8, 10))
"""``(horizon blocks, window steps)`` of the surprise monitor tried; (1, 1) is LeWM's 1-step surprise."""
PHYSICS_SHIFTS: dict[str, Callable[[gym.Env], gym.Env]] = {"mass x3": lambda e: BodyMassScale(e, 3.0),
                                                             "friction x0.2": lambda e: GeomFrictionScale(e, 0.2)}
"""The physics perturbations (wrappers of the nominal env) of the surprise and physics sections."""


def _shift_aurocs(model: LatentWorldModel, seeds: range, length: int, event_at: int) -> dict[str, dict[str, Any]]:
    """Per-step AUROC (and spike ratio) of every ``SURPRISE_SETTINGS`` entry, for every perturbation,
    against unperturbed episodes with the same seeds and play policy."""
    fs = model.config.frameskip
    events: dict[str, tuple[Any, Any]] = {"teleport": (None, teleport),
                                          **{name: (wrap, None) for name, wrap in PHYSICS_SHIFTS.items()}}
    if model.config.obs_type == "pixels":
        events["colour change"] = (None, recolour)
    clean = [_episode(model, s, length, None, None, 0) for s in seeds]
    runs = {name: [_episode(model, s, length, wrap, event, event_at) for s in seeds]
            for name, (wrap, event) in events.items()}
    out: dict[str, dict[str, Any]] = {}
    for horizon, window in SURPRISE_SETTINGS:
        first = horizon * fs
        trace = lambda ep: surprise_trace(model, ep[0], ep[1], horizon, window)  # noqa: E731
        neg_traces = [trace(ep) for ep in clean]
        neg = np.concatenate([t[first:] for t in neg_traces])
        row: dict[str, Any] = {"clean_median": float(np.median(neg))}
        for name, eps in runs.items():
            traces = [trace(ep) for ep in eps]
            if name in PHYSICS_SHIFTS:
                pos = np.concatenate([t[first:] for t in traces])
                row[name] = {"auroc_step": auroc(pos, neg), "spike_ratio": float(np.median(pos) / row["clean_median"]),
                             "auroc_episode": auroc([np.mean(t[first:]) for t in traces],
                                                    [np.mean(t[first:]) for t in neg_traces])}
            else:  # the steps whose score depends on the event (and has a value)
                at = max(event_at, first)
                pos = np.concatenate([t[at:event_at + horizon * fs + window - 1] for t in traces])
                spike = np.mean([t[at] for t in traces]) / row["clean_median"]
                row[name] = {"auroc_step": auroc(pos, neg), "spike_ratio": float(spike)}
        out[f"h{horizon} w{window}"] = row
    return out


def surprise(model: LatentWorldModel, episodes: int, length: int = 60, event_at: int = 30) -> dict:
    """Per-step surprise AUROC and spike ratio for each perturbation and monitor setting (module docstring).

    The windowed setting reported is the one with the best mean physics-shift AUROC on separate
    tuning seeds (``1000 ..``); the reported numbers come from seeds ``0 .. episodes - 1``.
    """
    tune = _shift_aurocs(model, range(1000, 1000 + episodes), length, event_at)
    chosen = max(tune, key=lambda k: np.mean([tune[k][s]["auroc_step"] for s in PHYSICS_SHIFTS]))
    return {"settings": _shift_aurocs(model, range(episodes), length, event_at), "chosen": chosen,
            "tune_physics_auroc": {k: float(np.mean([v[s]["auroc_step"] for s in PHYSICS_SHIFTS]))
                                   for k, v in tune.items()},
            "episodes": episodes, "length": length, "event_at": event_at}


MONITOR_WINDOWS = (1, 3, 5)
"""Running-mean windows (steps) of the 1-step surprise tried by the ``monitor`` section."""
MONITOR_FALSE_ALARM = 0.02
"""Share of clean tuning episodes allowed to raise an alarm: the threshold is the 98th percentile of their maxima."""


def controlled_episode(model: LatentWorldModel, policy: Any, seed: int, length: int,
                       event_at: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Observations ``[length + 1, S]`` and actions of a 3-block push episode under a harness policy
    (task drawn from the seed), with a red-block teleport after step ``event_at`` if given."""
    env = make_env(False, n_blocks=3)
    task = sample_task(np.random.default_rng(seed), scene.BLOCK_NAMES, ("push",))
    obs, _ = env.reset(seed=seed, options={"task": task})
    policy.reset(task, seed)
    return _run(env, obs, policy.act, length, teleport if event_at is not None else None, event_at, False)


def monitor_operating_point(model: LatentWorldModel, policy: Any, episodes: int, fixed: Sequence[float] = (),
                            length: int = 80, event_at: int = 30, flag_within: int = 20) -> dict[str, Any]:
    """False-alarm and teleport-detection rates of the calibrated online monitor (module docstring), and
    of the window-1 monitor at each ``fixed`` threshold (e.g. ``world_model_node``'s default)."""
    def maxima(seeds: range, event: int | None) -> dict[int, np.ndarray]:
        traces = {w: [] for w in MONITOR_WINDOWS}
        for seed in seeds:
            x, a = controlled_episode(model, policy, seed, length, event)
            for w in MONITOR_WINDOWS:
                trace = surprise_trace(model, x, a, 1, w)
                span = trace[event:event + flag_within] if event is not None else trace
                traces[w].append(np.nanmax(span))
        return {w: np.array(v) for w, v in traces.items()}

    tune = maxima(range(1000, 1000 + episodes), None)
    clean, moved = maxima(range(episodes), None), maxima(range(episodes), event_at)
    rows = {}
    settings = [(w, float(np.quantile(tune[w], 1 - MONITOR_FALSE_ALARM)), "98th pct of clean tuning maxima")
                for w in MONITOR_WINDOWS] + [(1, float(t), f"fixed {t:g}") for t in fixed]
    for w, threshold, how in settings:
        fa, det = int(np.sum(clean[w] > threshold)), int(np.sum(moved[w] > threshold))
        rows[f"window {w}, {how}"] = {"window": w, "threshold": threshold, "false_alarms": fa,
                                      "false_alarm_ci": wilson(fa, episodes), "detected": det,
                                      "detected_ci": wilson(det, episodes),
                                      "clean_max_median": float(np.median(clean[w]))}
    return {"episodes": episodes, "length": length, "event_at": event_at, "flag_within": flag_within, "rows": rows}


BLOCK_XY = [slice(scene.block_slice(b).start + 1, scene.block_slice(b).start + 3) for b in scene.BLOCK_NAMES]
OBSERVABLE_M = 1e-3
"""A step's physics shift is observable when some block ends over 1 mm from where the other physics puts it."""


@torch.inference_mode()
def physics_signal(model: LatentWorldModel, episodes: int, length: int = 60) -> dict[str, dict[str, float]]:
    """How large a physics shift's effect is in latent space, against the model's own 1-step error.

    For every step ``t`` of the surprise section's episodes (clean and shifted, seeds ``0 ..``), the
    simulator is reset to its exact state one block earlier and the block's recorded actions are
    replayed under the *other* physics: the counterfactual outcome. Steps where some block ends
    over ``OBSERVABLE_M`` from the counterfactual are *observable* (the shift moves a block
    measurably there; yaw and the pusher's velocity are not compared). Reported per shift: the
    share of observable steps; the 1-step surprise AUROC with both classes restricted to observable
    steps; the paired test (same context and actions: how often the surprise of the outcome under
    shifted physics exceeds that of the outcome under nominal physics); and, on observable steps,
    the median shift signal ``||z_shifted - z_nominal||^2 / D`` next to the median model error
    ``||z_hat - z_nominal||^2 / D``.
    """
    pixels, fs = model.config.obs_type == "pixels", model.config.frameskip
    nominal = make_env(pixels, n_blocks=3)
    out: dict[str, dict[str, float]] = {}
    for name, wrap in PHYSICS_SHIFTS.items():
        shifted = wrap(make_env(pixels, n_blocks=3))
        for env in (nominal, shifted):
            env.reset(seed=0)
        acc: dict[str, dict[str, list[np.ndarray]]] = {}
        for kind, own_wrap, own, other in (("clean", None, nominal, shifted), ("shifted", wrap, shifted, nominal)):
            rows = acc[kind] = {"surprise": [], "counterfactual": [], "signal": [], "observable": []}
            for seed in range(episodes):
                states: list[np.ndarray] = []
                x, actions = _episode(model, seed, length, own_wrap, None, 0, states)
                targets = np.arange(fs, length + 1)
                cf = [replay(other, states[t - fs], actions[t - fs:t], pixels) for t in targets]
                real = [replay(own, states[t - fs], actions[t - fs:t], pixels) for t in targets]
                if not np.array_equal(np.stack([r[0] for r in real]), x[targets]):
                    raise RuntimeError("replaying a recorded block did not reproduce the episode: the counterfactual "
                                       "would not be comparable")
                z = encode_all(model, model.processor.check_obs(x))
                z_cf = encode_all(model, model.processor.check_obs(np.stack([c[0] for c in cf])))
                blocks = model.processor.normalize_actions(torch.as_tensor(actions))
                pred = predict_targets(model, z, blocks, targets, 1)
                cf_obs, real_obs = np.stack([c[1] for c in cf]), np.stack([r[1] for r in real])
                moved = np.max([np.linalg.norm(cf_obs[:, sl] - real_obs[:, sl], axis=1) for sl in BLOCK_XY], axis=0)
                rows["surprise"].append((pred - z[targets]).square().mean(-1).numpy())
                rows["counterfactual"].append((pred - z_cf).square().mean(-1).numpy())
                rows["signal"].append((z_cf - z[targets]).square().mean(-1).numpy())
                rows["observable"].append(moved > OBSERVABLE_M)
        flat = {k: {f: np.concatenate(v) for f, v in r.items()} for k, r in acc.items()}
        c, s = flat["clean"], flat["shifted"]
        oc, os_ = c["observable"], s["observable"]
        # paired: the outcome under shifted physics vs under nominal physics, same context and actions;
        # neg is also the model's error on the nominal outcome
        pos = np.concatenate([c["counterfactual"][oc], s["surprise"][os_]])
        neg = np.concatenate([c["surprise"][oc], s["counterfactual"][os_]])
        out[name] = {"observable_share": float(np.mean(np.concatenate([oc, os_]))),
                     "auroc_observable": auroc(s["surprise"][os_], c["surprise"][oc]),
                     "auroc_all": auroc(s["surprise"], c["surprise"]),
                     "paired_shifted_higher": float(np.mean(pos > neg)),
                     "median_signal": float(np.median(np.concatenate([c["signal"][oc], s["signal"][os_]]))),
                     "median_model_error": float(np.median(neg)), "steps": int(len(oc) + len(os_))}
        shifted.close()
    nominal.close()
    return out


@torch.inference_mode()
def spread_vs_error(model: LatentWorldModel, ds: Dataset, frames: np.ndarray, n: int, seed: int, k: int = 5) -> dict:
    """Spearman correlation of the K = 8, sigma = 0.05 latent-noise rollout spread with the true error."""
    fs = model.config.frameskip
    held_out = range(ds.num_episodes - max(1, round(ds.num_episodes * VALIDATION_FRACTION)), ds.num_episodes)
    seq = make_sequences(ds, fs, k + 1, episodes=list(held_out))
    pick = np.random.default_rng(seed).permutation(len(seq))[:n]
    rows = seq.rows[pick]
    obs = torch.from_numpy(frames[rows] if model.config.obs_type == "pixels" else ds.states[rows])
    z = encode_all(model, obs.reshape(-1, *obs.shape[2:])).reshape(len(pick), k + 1, -1)
    blocks = model.processor.normalize_actions(torch.from_numpy(seq.actions[pick])).flatten(2)
    err = (model.rollout_latent(z[:, :1], blocks) - z[:, 1:]).square().mean(-1)  # [n, k]
    spread = rollout_spread(model, z[:, :1], blocks, 8, 0.05, torch.Generator().manual_seed(seed))
    return {"spearman_pooled": spearman(spread.flatten().numpy(), err.flatten().numpy()),
            "spearman_at_k": [spearman(spread[:, j].numpy(), err[:, j].numpy()) for j in range(k)], "windows": len(pick)}


# ------------------------------------------------------------------------------------ ablation


@torch.inference_mode()
def collapse(model: LatentWorldModel, ds: Dataset, n: int, seed: int) -> dict:
    """Collapse diagnostics of ``n`` states drawn at random from all episodes (close to i.i.d.)."""
    rows = np.random.default_rng(seed).permutation(len(ds.states))[:n]
    return collapse_diagnostics(encode_all(model, torch.from_numpy(np.array(ds.states[rows]))))


# ------------------------------------------------------------------------------------ main


def monitor_policy(name: str) -> Any:
    """The monitor section's controller: the scripted expert, or D-MPC SSR with the shipped proposer and ensemble."""
    spec = PolicySpec(model=None if name == "expert" else PRETRAINED / "proposer-pushblocks", env_id=PUSH_BLOCKS,
                      observation_dim=scene.OBS_DIM, action_dim=scene.ACTION_DIM, num_inference_steps=5,
                      action_steps=8, planner=None if name == "expert" else "ssr",
                      dynamics=None if name == "expert" else str(PRETRAINED / "dynamics-pushblocks"))
    return build_policy(name, spec)


def fmt(x: float, d: int = 2) -> str:
    return f"{x:.{d}f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="the training data set (its last 10%% is held out)")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    ap.add_argument("--calls", type=int, default=20, help="timed plans per latency row (default 20)")
    ap.add_argument("--seeds", type=int, default=50, help="episodes per success row (default 50)")
    ap.add_argument("--surprise-episodes", type=int, default=20)
    ap.add_argument("--monitor-policy", choices=("expert", "dmpc"), default="dmpc",
                    help="the controller of the monitor section's episodes (default dmpc, as in the demo)")
    ap.add_argument("--monitor-episodes", type=int, default=50, help="episodes per monitor set (default 50)")
    ap.add_argument("--monitor-thresholds", type=float, nargs="*", default=[0.3],
                    help="fixed thresholds also measured (window 1; default: 0.3, world_model_node's earlier default)")
    ap.add_argument("--iterations", type=int, default=10, help="CEM iterations in the success runs (default 10)")
    ap.add_argument("--noreg", type=Path, default=Path("outputs/wm-pushblocks-state-noreg"),
                    help="the no-SIGReg ablation model (trained with --config state-noreg)")
    ap.add_argument("--state-model", type=Path, default=PRETRAINED / "wm-pushblocks-state", help="state world model directory")
    ap.add_argument("--pixel-model", type=Path, default=PRETRAINED / "wm-pushblocks-pixels", help="pixel world model directory")
    ap.add_argument("--models", nargs="+", choices=("state", "pixels"), default=["state", "pixels"],
                    help="which models the openloop, success and surprise sections measure (latency needs both)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ds = Dataset.load(args.data)
    state_model = LatentWorldModel.from_pretrained(args.state_model)
    pixel_model = LatentWorldModel.from_pretrained(args.pixel_model)
    models = {k: m for k, m in (("state", state_model), ("pixels", pixel_model)) if k in args.models}
    frames = render_frames(ds, pixel_model.config.image_size, progress=False) if {"openloop", "surprise"} & set(
        args.only) and "pixels" in models else None
    machine = (f"{cpu_name()}, {args.threads} torch threads, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
               f"load average {os.getloadavg()[0]:.1f} at start")
    res: dict[str, Any] = {"machine": machine, "torch": torch.__version__,
                           "command": "python bench/world_model.py " + " ".join(argv or sys.argv[1:])}
    print(f"# SIGReg world model benchmarks\n\nMachine: {res['machine']}; command: `{res['command']}`\n")
    if "openloop" in args.only:
        res["openloop"] = {k: open_loop(m, ds, frames, 20, 512, args.seed) for k, m in models.items()}
        print("## Open-loop latent error / Var(z), held-out episodes\n")
        print("| model | k | model | copy-last | shuffled actions |\n|---|---|---|---|---|")
        for k, r in res["openloop"].items():
            for i in (0, 1, 4, 9, 19):
                print(f"| {k} | {r['k'][i]} | {fmt(r['model'][i], 3)} | {fmt(r['copy_last'][i], 3)} | "
                      f"{fmt(r['shuffled_actions'][i], 3)} |")
        print()
    if "latency" in args.only:
        res["latency"] = latency(state_model, pixel_model, args.calls, args.seed)
        res["load_after_latency"] = os.getloadavg()[0]
        print(f"## Planning latency at LeWM's CEM budget (300 x 10 x 5); load average {res['load_after_latency']:.1f} "
              "after\n")
        print("| planner | median ms | p90 ms | CPU ms | GFLOP | timed budget | scaled by "
              "| x latent (pixels, torch), wall / CPU | x latent (pixels, onnxruntime), wall / CPU |")
        print("|---|---|---|---|---|---|---|---|---|")
        for k, r in res["latency"].items():
            gflop = fmt(r["gflop"], 1) if r["gflop"] else "n/a (outside torch)"
            print(f"| {k} | {fmt(r['median_ms'], 1)} | {fmt(r['p90_ms'], 1)} | {fmt(r['cpu_ms'], 1)} | {gflop} | "
                  f"{r['budget']} | {fmt(r['scaled'], 0)} | {fmt(r['x_latent_pixel_torch'], 1)} / "
                  f"{fmt(r['x_latent_pixel_torch_cpu'], 1)} | {fmt(r['x_latent_pixel_onnx'], 1)} / "
                  f"{fmt(r['x_latent_pixel_onnx_cpu'], 1)} |")
        print()
    if "success" in args.only:
        res["success"] = {f"{m} {s}": success(models.get(m), s, args.seeds, args.iterations, HORIZON)
                          for m in (*models, "random actions") for s in ("reach", "push")}
        print(f"## Success, goal observation {GOAL_STEPS} steps ahead, budget {BUDGET}, tolerance {TOL} m\n")
        print("| model, task | success | Wilson 95% | median best distance (m) | skipped seeds |\n|---|---|---|---|---|")
        for k, r in res["success"].items():
            print(f"| {k} | {fmt(r['success'])} | {fmt(r['wilson95'][0])}-{fmt(r['wilson95'][1])} | "
                  f"{fmt(r['median_best_distance_m'], 3)} | {r['skipped']} |")
        print()
    if "surprise" in args.only:
        res["surprise"] = {k: surprise(m, args.surprise_episodes) for k, m in models.items()}
        res["spread"] = {k: spread_vs_error(m, ds, frames, 512, args.seed) for k, m in models.items()}
        print("## Surprise: per-step AUROC (spike ratio)\n")
        print("| model | monitor (horizon blocks, window steps) | teleport | mass x3 | friction x0.2 | colour change |")
        print("|---|---|---|---|---|---|")
        for k, r in res["surprise"].items():
            for setting in dict.fromkeys(("h1 w1", r["chosen"])):
                row = r["settings"][setting]
                cells = [f"{fmt(row[e]['auroc_step'])} ({fmt(row[e]['spike_ratio'], 1)}x)" if e in row
                         else "n/a (no colour in state)"
                         for e in ("teleport", "mass x3", "friction x0.2", "colour change")]
                label = "1-step (LeWM)" if setting == "h1 w1" else f"{setting}, chosen on tuning seeds"
                print(f"| {k} | {label} | " + " | ".join(cells) + " |")
        print("\nRollout-spread vs true k-step error, Spearman (k = 1..5): " + "; ".join(
            f"{k} " + ", ".join(fmt(v) for v in r["spearman_at_k"]) for k, r in res["spread"].items()) + "\n")
    if "physics" in args.only:
        res["physics"] = {k: physics_signal(m, args.surprise_episodes) for k, m in models.items()}
        print(f"## Physics shifts: observable steps and signal vs model error (1-step, > {OBSERVABLE_M * 1e3:.0f} mm)\n")
        print("| model | shift | observable steps | AUROC all steps | AUROC observable steps | paired: shifted outcome "
              "more surprising | median shift signal / D | median model error / D | error / signal |")
        print("|---|---|---|---|---|---|---|---|---|")
        for k, r in res["physics"].items():
            for name, v in r.items():
                print(f"| {k} | {name} | {fmt(100 * v['observable_share'], 0)}% of {v['steps']} | "
                      f"{fmt(v['auroc_all'])} | {fmt(v['auroc_observable'])} | {fmt(100 * v['paired_shifted_higher'], 0)}% | "
                      f"{fmt(v['median_signal'], 4)} | {fmt(v['median_model_error'], 4)} | "
                      f"{fmt(v['median_model_error'] / v['median_signal'], 0)}x |")
        print()
    if "monitor" in args.only:
        policy = monitor_policy(args.monitor_policy)
        res["monitor"] = monitor_operating_point(state_model, policy, args.monitor_episodes, args.monitor_thresholds)
        r = res["monitor"]
        print(f"## Online monitor (state model, 1-step surprise), {args.monitor_policy} on 3-block pushes, "
              f"{r['episodes']} episodes of {r['length']} steps; teleport at step {r['event_at']}, flagged within "
              f"{r['flag_within']} steps\n")
        print("| setting | threshold | clean episodes with an alarm | 95% CI "
              "| teleports flagged | 95% CI | median clean episode max |")
        print("|---|---|---|---|---|---|---|")
        for name, v in r["rows"].items():
            print(f"| {name} | {fmt(v['threshold'], 3)} | {v['false_alarms']}/{r['episodes']} | "
                  f"{fmt(v['false_alarm_ci'][0])}-{fmt(v['false_alarm_ci'][1])} | {v['detected']}/{r['episodes']} | "
                  f"{fmt(v['detected_ci'][0])}-{fmt(v['detected_ci'][1])} | {fmt(v['clean_max_median'], 3)} |")
        print()
    if "ablation" in args.only:
        noreg = LatentWorldModel.from_pretrained(args.noreg)
        res["ablation"] = {}
        for k, m in (("SIGReg (lambda 0.09)", state_model), ("no regulariser", noreg)):
            row = collapse(m, ds, 1024, args.seed)
            row.update({f"success {s}": success(m, s, args.seeds, args.iterations, HORIZON) for s in ("reach", "push")})
            res["ablation"][k] = row
        print("## Ablation: SIGReg vs no regulariser (state model)\n")
        print("| model | SIGReg (floor 1.05) | effective rank / 32 | std min | top-1 var | reach | push |")
        print("|---|---|---|---|---|---|---|")
        for k, r in res["ablation"].items():
            print(f"| {k} | {fmt(r['sigreg'])} | {fmt(r['effective_rank'], 1)} | {fmt(r['std_min'], 3)} | "
                  f"{fmt(r['top1_variance'])} | {fmt(r['success reach']['success'])} | "
                  f"{fmt(r['success push']['success'])} |")
        print()
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
