"""The ``latency`` section's peers of the latent planners (``bench/world_model.py``): P1 a pixel-space
planner, P2 a DINO-WM-shaped patch-token predictor, P0 CEM through the MuJoCo simulator, and the plain
CEM loop that drives them."""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import mujoco
import numpy as np
import torch
from torch import Tensor, nn

from forethought.models.control.planners import refit
from forethought.models.world_model.modeling_world_model import LatentWorldModel


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
        costs, idx = torch.topk(cost(cand), elites, largest=False)
        mean, std = refit(cand[idx], costs, min_std=0.05)
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
