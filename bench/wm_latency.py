"""The ``latency`` section of ``bench/world_model.py``: one CEM plan at LeWM's budget for the latent
planners (torch and onnxruntime) and their peers P0, P1 and P2 (``wm_peers``)."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from forethought.models.onnx_session import OPSET, open_session
from forethought.models.world_model.latent_planner import LatentCEM
from forethought.models.world_model.modeling_world_model import LatentWorldModel
from forethought.models.world_model.onnx_rollout import export_rollout
from forethought.sim import PUSH_BLOCKS_ID, scene
from wm_common import fmt, make_env, timed
from wm_peers import MujocoCEM, PatchTokenPredictor, PixelSpaceModel, cem_loop


@torch.inference_mode()
def latency(state_model: LatentWorldModel, pixel_model: LatentWorldModel, calls: int, seed: int) -> dict:
    """Plan latency at LeWM's CEM budget (see ``bench/world_model.py``'s docstring)."""
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
    sim = MujocoCEM(gym.make(PUSH_BLOCKS_ID, n_blocks=1))
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


def report(res: dict[str, dict], load_after: float) -> None:
    """Print the section's markdown table (``res``: ``latency``; ``load_after``: the load average after it)."""
    print(f"## Planning latency at LeWM's CEM budget (300 x 10 x 5); load average {load_after:.1f} after\n")
    print("| planner | median ms | p90 ms | CPU ms | GFLOP | timed budget | scaled by "
          "| x latent (pixels, torch), wall / CPU | x latent (pixels, onnxruntime), wall / CPU |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k, r in res.items():
        gflop = fmt(r["gflop"], 1) if r["gflop"] else "n/a (outside torch)"
        print(f"| {k} | {fmt(r['median_ms'], 1)} | {fmt(r['p90_ms'], 1)} | {fmt(r['cpu_ms'], 1)} | {gflop} | "
              f"{r['budget']} | {fmt(r['scaled'], 0)} | {fmt(r['x_latent_pixel_torch'], 1)} / "
              f"{fmt(r['x_latent_pixel_torch_cpu'], 1)} | {fmt(r['x_latent_pixel_onnx'], 1)} / "
              f"{fmt(r['x_latent_pixel_onnx_cpu'], 1)} |")
    print()
