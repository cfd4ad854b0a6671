"""Shared pieces of the world-model benchmark (``bench/world_model.py``): paths, statistics, timing,
the PushBlocks env and the held-out windows of the training data set."""

from __future__ import annotations

import math
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

import forethought.sim.envs  # noqa: F401  (registers the envs)
from forethought.models.world_model.data import make_sequences
from forethought.models.world_model.modeling_world_model import LatentWorldModel
from forethought.models.world_model.probe import encode_all
from forethought.models.world_model.train_world_model import VALIDATION_FRACTION
from forethought.sim import PUSH_BLOCKS_ID
from forethought.sim.dataset import Dataset

PRETRAINED = Path(__file__).resolve().parents[1] / "models" / "pretrained"


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
    return gym.make(PUSH_BLOCKS_ID, **kwargs)



def fmt(x: float, d: int = 2) -> str:
    return f"{x:.{d}f}"


@torch.inference_mode()
def held_out_windows(model: LatentWorldModel, ds: Dataset, frames: np.ndarray | None, blocks: int, n: int,
                     seed: int) -> tuple[Tensor, Tensor]:
    """Up to ``n`` windows of ``blocks + 1`` observations one action block apart, drawn with ``seed`` from the
    held-out episodes (the last ``VALIDATION_FRACTION`` of ``ds``; ``frames`` are their renders for a pixel
    model): the latents ``z[n, blocks + 1, D]`` and the normalised action blocks ``[n, blocks, block_dim]``."""
    fs = model.config.frameskip
    held_out = range(ds.num_episodes - max(1, round(ds.num_episodes * VALIDATION_FRACTION)), ds.num_episodes)
    seq = make_sequences(ds, fs, blocks + 1, episodes=list(held_out))
    if len(seq) == 0:
        raise ValueError(f"--data {ds.path}: no held-out episode is {fs * blocks} steps long; pass a data set "
                         "whose last 10% of episodes are longer")
    pick = np.random.default_rng(seed).permutation(len(seq))[:n]
    rows, actions = seq.rows[pick], torch.from_numpy(seq.actions[pick])  # [n, K+1], [n, K, fs, A]
    obs = torch.from_numpy(frames[rows] if model.config.obs_type == "pixels" else ds.states[rows])
    z = encode_all(model, obs.reshape(-1, *obs.shape[2:])).reshape(len(pick), blocks + 1, -1)
    return z, model.processor.normalize_actions(actions).flatten(2)
