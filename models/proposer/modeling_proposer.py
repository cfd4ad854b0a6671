"""The diffusion action proposer: a FiLM-conditioned 1-D temporal U-Net sampled with diffusers.

``DiffusionProposer`` is the thin wrapper (observation history, action queue, normalisation,
goal encoding, persistence); ``ConditionalUnet1D`` is the pure tensor core. Sampling is the
diffusers loop (``set_timesteps``, ``scheduler.timesteps``, ``step(...).prev_sample``) with a
``DDIMScheduler`` built from the training ``DDPMScheduler``'s config.

Example::

    from forethought.models import DiffusionProposer

    proposer = DiffusionProposer.from_pretrained("models/pretrained/proposer-pushblocks")
    step = {"skill": "push", "object": "red_block", "target": "left"}
    chunks = proposer.propose(obs_history, n=64, goal=step)      # actions[64, 16, 2], env units
    proposer.reset(goal=step)
    action = proposer.select_action(obs)                          # float32[2], one env step
"""

from __future__ import annotations

import json
import os
from collections import deque
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor, nn

from forethought.models.checkpoint import PretrainedModel
from forethought.models.proposer.configuration_proposer import SCHEDULER_FIELDS, UNET_FIELDS, ProposerConfig
from forethought.models.proposer.processor_proposer import GoalEncoder, MinMaxNormalizer

BACKENDS: tuple[str, ...] = ("torch", "onnx")
"""Who evaluates the denoiser in ``propose``: torch, or onnxruntime (``load_onnx``)."""


# Adapted from real-stanford/diffusion_policy (MIT), diffusion_policy/model/diffusion/conv1d_components.py
# and conditional_unet1d.py: Conv1dBlock, ConditionalResidualBlock1D, ConditionalUnet1D.
class Conv1dBlock(nn.Module):
    """Conv1d -> GroupNorm -> Mish over ``x[B, C, F]``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, n_groups: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
            nn.GroupNorm(n_groups, out_channels),
            nn.Mish(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class ConditionalResidualBlock1D(nn.Module):
    """Two conv blocks with FiLM (``scale * h + bias``, from ``cond[B, C_cond]``) between them."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, kernel_size: int, n_groups: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.conv1 = Conv1dBlock(in_channels, out_channels, kernel_size, n_groups)
        self.conv2 = Conv1dBlock(out_channels, out_channels, kernel_size, n_groups)
        self.cond_encoder = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * out_channels))
        self.residual_conv = (
            nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """``x[B, C_in, F]``, ``cond[B, C_cond]`` -> ``[B, C_out, F]``."""
        h = self.conv1(x)
        scale, bias = self.cond_encoder(cond).unsqueeze(-1).chunk(2, dim=1)  # [B, C_out, 1] each
        h = self.conv2(scale * h + bias)
        return h + self.residual_conv(x)


class ConditionalUnet1D(ModelMixin, ConfigMixin):
    """Denoiser ``eps(sample[B, F, A], t[B], global_cond[B, D]) -> [B, F, A]`` (Diffusion Policy's CNN).

    The timestep embedding and ``global_cond`` (observation history and goal) are concatenated
    and injected into every residual block by FiLM. The chunk length ``F`` is halved at each
    level but the last.
    """

    @register_to_config
    def __init__(
        self,
        action_dim: int,
        global_cond_dim: int,
        down_dims: tuple[int, ...] = (64, 128, 256),
        kernel_size: int = 5,
        n_groups: int = 8,
        diffusion_step_embed_dim: int = 64,
    ) -> None:
        super().__init__()
        self.time_proj = Timesteps(diffusion_step_embed_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(
            diffusion_step_embed_dim, 4 * diffusion_step_embed_dim, act_fn="mish", out_dim=diffusion_step_embed_dim
        )
        cond_dim = diffusion_step_embed_dim + global_cond_dim
        dims = [action_dim, *down_dims]

        def block(c_in: int, c_out: int) -> ConditionalResidualBlock1D:
            return ConditionalResidualBlock1D(c_in, c_out, cond_dim, kernel_size, n_groups)

        self.down_blocks = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(zip(dims[:-1], dims[1:])):
            last = i == len(down_dims) - 1
            self.down_blocks.append(nn.ModuleList([
                block(c_in, c_out),
                block(c_out, c_out),
                nn.Identity() if last else nn.Conv1d(c_out, c_out, 3, stride=2, padding=1),
            ]))
        self.mid_blocks = nn.ModuleList([block(down_dims[-1], down_dims[-1]), block(down_dims[-1], down_dims[-1])])
        self.up_blocks = nn.ModuleList()
        for c_in, c_out in reversed(list(zip(down_dims[:-1], down_dims[1:]))):
            self.up_blocks.append(nn.ModuleList([
                block(2 * c_out, c_in),
                block(c_in, c_in),
                nn.ConvTranspose1d(c_in, c_in, 4, stride=2, padding=1),
            ]))
        self.final_conv = nn.Sequential(
            Conv1dBlock(down_dims[0], down_dims[0], kernel_size, n_groups),
            nn.Conv1d(down_dims[0], action_dim, 1),
        )

    def forward(self, sample: Tensor, timestep: Tensor | int, global_cond: Tensor) -> Tensor:
        """``sample[B, F, A]``, ``timestep[B]`` (or a scalar), ``global_cond[B, D]`` -> ``[B, F, A]``."""
        # 1. time
        t = torch.as_tensor(timestep, device=sample.device)
        t = t.expand(sample.shape[0]) if t.ndim == 0 else t
        t_emb = self.time_embedding(self.time_proj(t).to(sample.dtype))  # [B, E]
        cond = torch.cat([t_emb, global_cond], dim=-1)  # [B, E + D]
        # 2. down
        x = sample.transpose(1, 2)  # [B, A, F]
        skips = []
        for res1, res2, down in self.down_blocks:
            x = res2(res1(x, cond), cond)
            skips.append(x)
            x = down(x)
        # 3. mid
        for res in self.mid_blocks:
            x = res(x, cond)
        # 4. up (the deepest skip pairs with the mid output, as in Diffusion Policy)
        for res1, res2, up in self.up_blocks:
            x = res2(res1(torch.cat([x, skips.pop()], dim=1), cond), cond)
            x = up(x)
        # 5. out
        return self.final_conv(x).transpose(1, 2)  # [B, F, A]


class DiffusionProposer(PretrainedModel):
    """Proposes action chunks ``actions[n, F, A]`` for an observation history, optionally goal-directed.

    ``propose`` is stateless and batched over ``n`` samples (for D-MPC); ``select_action`` is the
    plain-policy entry point that owns the observation history and the action queue, and
    ``plan_chunk`` its chunk-at-once form (a fresh chunk from the observations since the last call). All inputs
    and outputs are in env units; normalisation happens inside. A checkpoint
    (``save_pretrained``/``from_pretrained``, ``checkpoint.py``) holds the config, the U-Net's
    weights and the normaliser's statistics.
    """

    config_class = ProposerConfig
    normalizer_class = MinMaxNormalizer
    pretrained_prefix = "proposer"

    def __init__(self, config: ProposerConfig, normalizer: MinMaxNormalizer) -> None:
        super().__init__()
        for key, want in (("observation", config.obs_dim), ("action", config.action_dim)):
            if normalizer.width(key) != want:
                raise ValueError(
                    f"normaliser {key} width {normalizer.width(key)} does not match config {key} width {want}"
                )
        self.config = config
        self.normalizer = normalizer
        self.goal_encoder = (
            GoalEncoder(config.goal_skills, config.goal_objects, config.goal_regions, config.goal_region_xy)
            if config.use_goal
            else None
        )
        assert self.goal_encoder is None or self.goal_encoder.width == config.goal_width
        self.unet = ConditionalUnet1D(action_dim=config.action_dim, global_cond_dim=config.global_cond_dim,
                                      **config.subset(UNET_FIELDS))
        self.noise_scheduler = DDPMScheduler(**config.subset(SCHEDULER_FIELDS))
        self._sampler = DDIMScheduler.from_config(self.noise_scheduler.config)
        self.register_buffer("action_low", torch.tensor(config.action_low, dtype=torch.float32), persistent=False)
        self.register_buffer("action_high", torch.tensor(config.action_high, dtype=torch.float32), persistent=False)
        self.onnx_denoiser: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None
        self.backend = "torch"
        """``propose``'s default backend (``BACKENDS``), e.g. for a planner that does not pass one."""
        self.reset()

    # ---- math core ---------------------------------------------------------------------------

    def global_cond(self, obs_history: Tensor, goal: Tensor | None) -> Tensor:
        """``obs_history[B, n_obs, S]`` (env units) and ``goal[B, G]`` -> ``global_cond[B, n_obs * S + G]``."""
        cond = self.normalizer.normalize("observation", obs_history).flatten(1)
        if self.goal_encoder is not None:
            if goal is None:
                goal = cond.new_zeros(cond.shape[0], self.config.goal_width)
            cond = torch.cat([cond, goal.to(cond)], dim=-1)
        return cond

    def compute_loss(self, batch: Mapping[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
        """Denoising loss of one batch: ``obs_history[B, n_obs, S]``, ``actions[B, F, A]``, ``goal[B, G]``.

        ``goal`` is needed when ``config.use_goal``; each row is replaced by "no goal" with
        probability ``goal_dropout``. ``generator`` (on the batch's device) makes noise,
        timesteps and dropout reproducible.
        """
        obs, actions = batch["obs_history"], batch["actions"]
        B = actions.shape[0]
        goal = None
        if self.goal_encoder is not None:
            keep = torch.rand(B, 1, generator=generator, device=actions.device) >= self.config.goal_dropout
            goal = batch["goal"] * keep
        cond = self.global_cond(obs, goal)
        x0 = self.normalizer.normalize("action", actions)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        t = torch.randint(0, self.config.num_train_timesteps, (B,), generator=generator, device=x0.device)
        pred = self.unet(self.noise_scheduler.add_noise(x0, noise, t), t, cond)
        target = noise if self.config.prediction_type == "epsilon" else x0
        return F.mse_loss(pred, target)

    def make_sampler(self, num_inference_steps: int | None = None) -> DDIMScheduler:
        """The diffusers ``DDIMScheduler`` (training config) set to ``num_inference_steps``."""
        steps = self.config.check_inference_steps(
            self.config.num_inference_steps if num_inference_steps is None else num_inference_steps
        )
        self._sampler.set_timesteps(steps, device=self.action_low.device)
        return self._sampler

    def conditional_sample(
        self,
        global_cond: Tensor,
        generator: torch.Generator | None = None,
        num_inference_steps: int | None = None,
        noise: Tensor | None = None,
        denoiser: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None,
    ) -> Tensor:
        """Normalised chunks ``[B, F, A]`` for ``global_cond[B, D]``, from ``noise`` or fresh noise.

        ``denoiser(sample, t, global_cond) -> eps`` defaults to ``self.unet``; an
        ``onnx_denoiser.OnnxDenoiser`` runs the same loop on onnxruntime.
        """
        denoiser = self.unet if denoiser is None else denoiser
        sampler = self.make_sampler(num_inference_steps)
        shape = (global_cond.shape[0], self.config.horizon, self.config.action_dim)
        x = randn_tensor(shape, generator=generator, device=global_cond.device, dtype=global_cond.dtype) if noise is None else noise
        for t in sampler.timesteps:
            eps = denoiser(x, t, global_cond)
            x = sampler.step(eps, t, x, generator=generator).prev_sample
        return x

    # ---- inference API -----------------------------------------------------------------------

    def _check_obs(self, obs: Any, shape: tuple[int, ...], name: str, fix: str) -> Tensor:
        x = torch.as_tensor(np.asarray(obs) if not isinstance(obs, Tensor) else obs)
        if tuple(x.shape) != shape:
            raise ValueError(f"{name} must have shape {list(shape)}, got {list(x.shape)}: {fix}")
        x = x.to(device=self.action_low.device, dtype=torch.float32)
        bad = ~torch.isfinite(x)
        if bad.any():
            where = torch.nonzero(bad)[0].tolist()
            raise ValueError(f"{name} contains NaN or inf (first at index {where}): refusing to act on it")
        return x

    def encode_goal(self, goal: Mapping[str, Any] | None) -> Tensor | None:
        """``goal[1, G]`` for a plan step (``None`` stays ``None``)."""
        if goal is None:
            return None
        if self.goal_encoder is None:
            raise ValueError("this proposer was trained without goals (use_goal false): pass goal=None")
        return torch.from_numpy(self.goal_encoder.encode(goal))[None].to(self.action_low.device)

    @torch.inference_mode()
    def propose(
        self,
        obs_history: np.ndarray | Tensor,
        n: int,
        goal: Mapping[str, Any] | None = None,
        generator: torch.Generator | None = None,
        num_inference_steps: int | None = None,
        backend: str | None = None,
    ) -> Tensor:
        """Sample ``n`` action chunks ``actions[n, F, A]`` (float32, env units, within the action box).

        Args:
            obs_history: ``[n_obs_steps, S]``, the latest observations, oldest first.
            n: number of chunks, sampled in one batch.
            goal: the active plan step, or ``None`` for unconditional proposals.
            generator: a ``torch.Generator`` for reproducible samples.
            num_inference_steps: DDIM steps (default ``config.num_inference_steps``).
            backend: ``"torch"``, or ``"onnx"`` to evaluate the denoiser on onnxruntime (after
                ``load_onnx``); the DDIM loop and the noise are the same for both. ``None``:
                ``self.backend``.
        """
        backend = self.backend if backend is None else backend
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r} is not one of {list(BACKENDS)}")
        if backend == "onnx" and self.onnx_denoiser is None:
            raise ValueError(
                "backend 'onnx' needs an exported denoiser: call proposer.load_onnx(FILE) first (export one with "
                "`python -m forethought.models.proposer.onnx_denoiser --model DIR --out FILE.onnx`)"
            )
        c = self.config
        obs = self._check_obs(
            obs_history, (c.n_obs_steps, c.obs_dim), "obs_history",
            f"pass the last n_obs_steps = {c.n_obs_steps} observations of width {c.obs_dim}, oldest first",
        )
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        goal_t = self.encode_goal(goal)
        cond = self.global_cond(obs[None], goal_t).expand(n, -1)
        denoiser = self.onnx_denoiser if backend == "onnx" else None
        x = self.conditional_sample(cond, generator=generator, num_inference_steps=num_inference_steps,
                                    denoiser=denoiser)
        actions = self.normalizer.unnormalize("action", x)
        return torch.clamp(actions, self.action_low, self.action_high)

    def reset(
        self,
        goal: Mapping[str, Any] | None = None,
        seed: int | None = None,
        num_inference_steps: int | None = None,
        n_action_steps: int | None = None,
    ) -> None:
        """Start an episode: clear the observation history and action queue, set the goal.

        ``seed`` makes the episode's samples reproducible; ``num_inference_steps`` and
        ``n_action_steps`` override the config's DDIM steps and executed actions per chunk for
        ``select_action``.
        """
        if num_inference_steps is not None:
            self.config.check_inference_steps(num_inference_steps)
        if n_action_steps is not None and not (isinstance(n_action_steps, int) and 1 <= n_action_steps <= self.config.horizon):
            raise ValueError(f"n_action_steps must be an integer in 1..horizon = {self.config.horizon}, got {n_action_steps!r}")
        self._steps = num_inference_steps
        self._n_action_steps = self.config.n_action_steps if n_action_steps is None else n_action_steps
        self._obs_queue: deque[Tensor] = deque(maxlen=self.config.n_obs_steps)
        self._action_queue: deque[Tensor] = deque()
        self._generator = None if seed is None else torch.Generator(self.action_low.device).manual_seed(seed)
        self._goal: dict[str, Any] | None = None
        self.set_goal(goal)

    def set_goal(self, goal: Mapping[str, Any] | None) -> None:
        """Change the plan step mid-episode; a different goal drops the queued actions."""
        self.encode_goal(goal)  # validates
        goal = None if goal is None else json.loads(json.dumps(dict(goal)))
        if goal != self._goal:
            self._action_queue.clear()
        self._goal = goal

    def select_action(self, obs: np.ndarray | Tensor) -> np.ndarray:
        """One action ``float32[A]`` for the current observation ``obs[S]``.

        Keeps the last ``n_obs_steps`` observations (the first one repeated at episode start)
        and proposes a new chunk when the ``n_action_steps`` queued actions run out (see ``reset``).
        """
        self._observe(obs)
        if not self._action_queue:
            self._action_queue.extend(self._next_chunk())
        return self._action_queue.popleft().cpu().numpy()

    def plan_chunk(self, observations: np.ndarray | Tensor) -> np.ndarray:
        """A fresh chunk ``float32[n_action_steps, A]`` proposed from the last of ``observations[T, S]``
        (or one ``[S]``): the observations since the previous call, oldest first, each kept in the
        history as ``select_action`` keeps it. Queued actions are dropped. Calling it whenever
        ``select_action``'s queue would be empty and executing the chunk gives its actions."""
        obs = observations if isinstance(observations, Tensor) else torch.as_tensor(np.asarray(observations, np.float32))
        if obs.ndim not in (1, 2) or not obs.numel():
            raise ValueError(f"observations must be [T, S] or [S] with T >= 1, got {list(obs.shape)}")
        for x in obs.reshape(-1, obs.shape[-1]):
            self._observe(x)
        self._action_queue.clear()
        return self._next_chunk().cpu().numpy()

    def _observe(self, obs: np.ndarray | Tensor) -> None:
        """Check ``obs[S]`` and keep it in the observation history."""
        c = self.config
        x = self._check_obs(obs, (c.obs_dim,), "obs", "pass one observation of the env this proposer was trained on")
        if not self._obs_queue:
            self._obs_queue.extend([x] * c.n_obs_steps)
        else:
            self._obs_queue.append(x)

    def _next_chunk(self) -> Tensor:
        """The first ``n_action_steps`` actions ``[m, A]`` of a chunk proposed from the history."""
        history = torch.stack(list(self._obs_queue))  # [n_obs, S]
        chunk = self.propose(history, 1, self._goal, self._generator, self._steps)[0]  # [F, A]
        return chunk[: self._n_action_steps]

    def load_onnx(self, path: str | os.PathLike[str], threads: int | None = None,
                  providers: list[str] | None = None) -> None:
        """Attach the onnxruntime denoiser exported to ``path`` for ``propose(..., backend="onnx")``.

        ``providers``: onnxruntime execution providers (default CPU). Raises ``ValueError`` if the
        file was exported from another config or other weights.
        """
        from forethought.models.proposer.onnx_denoiser import OnnxDenoiser

        denoiser = OnnxDenoiser(path, threads=threads, providers=providers)
        denoiser.check_matches(self)
        self.onnx_denoiser = denoiser

    def weights_module(self) -> nn.Module:
        """The U-Net: the only part with weights (the normaliser is saved beside them)."""
        return self.unet
