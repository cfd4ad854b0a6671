"""The SIGReg latent world model: encoder + BatchNorm projector, action-conditioned predictor + projector.

A CPU-sized LeWorldModel (Maes et al. 2026, arXiv 2603.19312):

1. the **encoder** maps an observation to ``z[D]``: an MLP for the task state, a stride-2 CNN for
   64x64 renders; each ends in a BatchNorm MLP projector (no final LayerNorm, which would keep
   SIGReg from shaping the embedding);
2. the **predictor** maps the last ``history`` embeddings (``frameskip`` env steps apart) and one
   action block ``a[t .. t+frameskip-1]`` to ``z[t+frameskip]``: residual MLP blocks whose
   LayerNorms are modulated by the action embedding through AdaLN-zero (shift, scale and a gate
   initialised to 0, as in DiT), then its own BatchNorm projector;
3. **training** encodes ``num_frames``-frame sub-trajectories, predicts frames 2..T from the
   frames before them (frame-causal, teacher forced) and minimises
   ``mean ||pred - z||^2 + sigreg_weight * SIGReg(z)``, SIGReg taken over the batch at each time
   step and averaged. There is no EMA target, no stop-gradient and no decoder. Optional terms:
   an open-loop rollout error (``rollout_weight``) and a linear state readout of every latent
   (``state_weight``, state observations only), which makes the predicted latents carry the
   task state's small but decisive parts (a pushed block's motion);
4. optional **contact features** (``contact_features``, with the state readout): relational features of
   the read-out current state and the action block (``contact_inputs``: each object relative to the
   pusher and to its planned path) join the predictor's input and reach the predicted latent
   through a zero-initialised linear skip, so the predictor is told where contact will happen.

The model implements the ``Dynamics`` call in its latent space::

    z = model.encode(obs)                           # [..., D]
    states = model.rollout(obs, actions[n, F, A])   # [1, n, F // frameskip, D]: one member, one latent per block
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from forethought.models.checkpoint import PretrainedModel
from forethought.models.world_model.configuration_world_model import WorldModelConfig
from forethought.models.world_model.processor_world_model import WorldModelProcessor
from forethought.models.world_model.sigreg import collapse_diagnostics, sigreg

CONTACT_UNIT = 0.1
"""Metres per unit of the contact features' lengths (PushBlocks' table is 0.6 m wide: lengths within about 6)."""
CONTACT_EPS = 1e-4
"""Metres added in quadrature to the lengths the contact features divide by or differentiate (no 0/0 or inf)."""


class BNProjector(nn.Module):
    """``Linear -> BatchNorm1d -> GELU -> Linear`` over the last dim of ``x[..., in_dim]``."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)


class StateEncoder(nn.Module):
    """MLP ``s[N, S] -> h[N, hidden]``."""

    def __init__(self, obs_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class PixelEncoder(nn.Module):
    """CNN ``img[N, 3, H, W] -> h[N, hidden]``: stride-2 4x4 convolutions, then one linear layer."""

    def __init__(self, image_size: int, channels: tuple[int, ...], hidden: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in channels:
            layers += [nn.Conv2d(c_in, c, kernel_size=4, stride=2, padding=1), nn.GroupNorm(min(8, c), c), nn.GELU()]
            c_in = c
        side = image_size // 2 ** len(channels)
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c_in * side * side, hidden), nn.GELU())

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(x))


class AdaLNZeroBlock(nn.Module):
    """Residual MLP block ``x + gate * MLP(LN(x) * (1 + scale) + shift)``, (shift, scale, gate) from ``c``.

    ``modulation`` maps the action embedding to (shift, scale, gate); the ``Predictor`` applies the
    modulations of all its blocks in one matrix product (``Predictor.condition``).
    """

    def __init__(self, width: int, cond_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * width, width))
        self.modulation = nn.Linear(cond_dim, 3 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: Tensor, shift: Tensor, scale1: Tensor, gate: Tensor) -> Tensor:
        """``x[N, width]`` with ``scale1 = 1 + scale`` (``Predictor.condition`` adds the 1)."""
        return torch.addcmul(x, gate, self.mlp(torch.addcmul(shift, self.norm(x), scale1)))


class Predictor(nn.Module):
    """``(z_hist[N, h, D], present[N, h], block[N, frameskip * A]) -> z_next[N, D]`` (before the projector).

    ``z_hist`` holds the last ``h = history`` embeddings, oldest first; slots before the start
    of the trajectory are zero and flagged absent in ``present`` (so the same network serves
    histories of 1..h frames). ``forward`` is ``step`` after ``condition``, which computes the
    AdaLN-zero modulations of every block in one matrix product. With ``contact_features`` both
    also take ``extra[N, contact_feature_dim]`` (``LatentWorldModel.contact_inputs``), concatenated
    to the input.
    """

    def __init__(self, config: WorldModelConfig) -> None:
        super().__init__()
        c = config
        self.action_encoder = nn.Sequential(
            nn.Linear(c.block_dim, c.action_embed_dim), nn.GELU(), nn.Linear(c.action_embed_dim, c.action_embed_dim)
        )
        self.input = nn.Linear(c.history * (c.embed_dim + 1) + c.contact_feature_dim, c.predictor_hidden)
        self.blocks = nn.ModuleList(
            AdaLNZeroBlock(c.predictor_hidden, c.action_embed_dim, c.predictor_dropout) for _ in range(c.predictor_blocks)
        )
        self.final_norm = nn.LayerNorm(c.predictor_hidden, elementwise_affine=False)
        self.final_modulation = nn.Linear(c.action_embed_dim, 2 * c.predictor_hidden)
        nn.init.zeros_(self.final_modulation.weight)
        nn.init.zeros_(self.final_modulation.bias)
        self.output = nn.Linear(c.predictor_hidden, c.embed_dim)
        # 1 at every "scale" slot of the conditioning (rows 1, 4, ..., and the final scale at 3 * blocks + 1),
        # so it carries 1 + scale; not saved
        offset = torch.zeros(3 * c.predictor_blocks + 2, c.predictor_hidden)
        offset[1::3] = 1.0
        self.register_buffer("scale_offset", offset.flatten(), persistent=False)

    def forward(self, z_hist: Tensor, present: Tensor, block: Tensor, extra: Tensor | None = None) -> Tensor:
        return self.step(z_hist, present, self.condition(block), extra)

    def condition(self, block: Tensor) -> Tensor:
        """Action conditioning ``[..., (3 * predictor_blocks + 2) * hidden]`` of ``block[..., frameskip * A]``:
        (shift, 1 + scale, gate) of every block, then the final (shift, 1 + scale), from one matrix product."""
        mods = [*(blk.modulation for blk in self.blocks), self.final_modulation]
        weight = torch.cat([m.weight for m in mods])
        bias = torch.cat([m.bias for m in mods]) + self.scale_offset
        return nn.functional.linear(self.action_encoder(block), weight, bias)

    def step(self, z_hist: Tensor, present: Tensor, cond: Tensor, extra: Tensor | None = None) -> Tensor:
        """``forward`` with the conditioning ``cond[N, (3 * predictor_blocks + 2) * hidden]`` precomputed."""
        inputs = [z_hist.flatten(1), present] if extra is None else [z_hist.flatten(1), present, extra]
        x = self.input(torch.cat(inputs, dim=-1))  # absent slots of z_hist are zero
        mods = cond.chunk(3 * len(self.blocks) + 2, dim=-1)
        for i, blk in enumerate(self.blocks):
            x = blk(x, *mods[3 * i:3 * i + 3])
        shift, scale1 = mods[-2:]
        return self.output(torch.addcmul(shift, self.final_norm(x), scale1))


class LatentWorldModel(PretrainedModel):
    """Encoder, projectors and predictor of a SIGReg world model (see the module docstring).

    Args:
        config: the architecture and objective.
        processor: observation/action normalisation; a fresh one (identity statistics) by default.
            Its statistics are buffers, saved in ``model.safetensors`` (under ``processor.``)
            rather than in a statistics file beside it.
    """

    config_class = WorldModelConfig
    pretrained_prefix = "wm"

    def __init__(self, config: WorldModelConfig, processor: WorldModelProcessor | None = None) -> None:
        super().__init__()
        c = self.config = config
        self.processor = processor if processor is not None else WorldModelProcessor(config)
        self.encoder: nn.Module = (
            StateEncoder(c.obs_dim, c.encoder_hidden)
            if c.obs_type == "state"
            else PixelEncoder(c.image_size, c.cnn_channels, c.encoder_hidden)
        )
        self.projector = BNProjector(c.encoder_hidden, c.projector_hidden, c.embed_dim)
        self.predictor = Predictor(c)
        self.pred_projector = BNProjector(c.embed_dim, c.projector_hidden, c.embed_dim)
        if c.state_weight > 0:  # created only then: checkpoints without it keep loading strictly
            self.state_head = nn.Linear(c.embed_dim, c.obs_dim)
            """Linear readout of the normalised state ``[..., S]`` from ``z[..., D]`` (the state-readout term)."""
        if c.contact_features:  # created only then, after every module above (their initialisation is unchanged)
            self.contact_skip = nn.Linear(c.contact_feature_dim, c.embed_dim)
            """Zero-initialised linear map from the contact features to the predicted latent (added to it)."""
            nn.init.zeros_(self.contact_skip.weight)
            nn.init.zeros_(self.contact_skip.bias)
        self.loss_log: list[tuple[float, float, float, float]] = []
        """``(mse, sigreg, open-loop mse, state readout)`` of every ``compute_loss`` call in training mode
        (collapse diagnostics; a term is 0 when its weight is 0)."""
        self.onnx_rollout: Any = None
        """The onnxruntime rollout attached by ``load_onnx`` (``LatentCEM(..., backend="onnx")`` uses it)."""

    # ---- core maps ---------------------------------------------------------------------------

    def embed(self, x: Tensor) -> Tensor:
        """Normalised observations ``x[..., *input_shape]`` -> embeddings ``z[..., D]``."""
        lead = x.shape[: x.dim() - (1 if self.config.obs_type == "state" else 3)]
        h = self.encoder(x.reshape(-1, *x.shape[len(lead):]))
        return self.projector(h).reshape(*lead, -1)

    def predict(self, z_hist: Tensor, blocks: Tensor) -> Tensor:
        """Next embedding ``[N, D]`` from ``z_hist[N, h, D]`` (oldest first; the last ``history`` are used)
        and normalised action blocks ``blocks[N, frameskip * A]``."""
        window, present = self.pad_history(z_hist)
        return self.next_latent(window, present, self.predictor.condition(blocks), blocks)

    def rollout_latent(self, z_hist: Tensor, blocks: Tensor) -> Tensor:
        """Autoregressive rollout: ``z_hist[n, h, D]``, normalised ``blocks[n, K, frameskip * A]`` ->
        ``z[n, K, D]``, the embedding after each block (predictions are fed back as history)."""
        return self.rollout_window(*self.pad_history(z_hist), blocks)

    def rollout_window(self, window: Tensor, present: Tensor, blocks: Tensor) -> Tensor:
        """``rollout_latent`` from a padded history (``pad_history``): the graph ``onnx_rollout`` exports.

        The history is padded once and shifted in place of re-padding at every block.
        """
        out = []
        for k in range(blocks.shape[1]):
            z_next = self.next_latent(window, present, self.predictor.condition(blocks[:, k]), blocks[:, k])
            out.append(z_next)
            window = torch.cat([window[:, 1:], z_next.unsqueeze(1)], dim=1)
            present = torch.cat([present[:, 1:], torch.ones_like(present[:, :1])], dim=1)
        return torch.stack(out, dim=1)

    def next_latent(self, window: Tensor, present: Tensor, cond: Tensor, block: Tensor) -> Tensor:
        """The predicted embedding ``[N, D]`` from a padded ``window[N, history, D]``, ``present[N, history]``,
        the conditioning ``cond`` of the normalised ``block[N, frameskip * A]`` (``Predictor.condition``) and,
        with ``contact_features``, the contact features of the window's last embedding and the block."""
        if not self.config.contact_features:
            return self.pred_projector(self.predictor.step(window, present, cond))
        feats = self.contact_inputs(window[:, -1], block)
        return self.pred_projector(self.predictor.step(window, present, cond, feats)) + self.contact_skip(feats)

    def contact_inputs(self, z: Tensor, block: Tensor) -> Tensor:
        """Contact features ``[..., contact_feature_dim]`` of embeddings ``z[..., D]`` and normalised action
        blocks ``block[..., frameskip * A]`` (configs with ``contact_features``).

        The state is read out of ``z`` by ``state_head`` (and un-normalised), the block's actions are the
        pusher's targets in env units (``q_1 .. q_F``, ``F = frameskip``); ``p`` is the pusher's read-out
        position and ``q_0 = p``. Lengths are in units of ``CONTACT_UNIT`` metres. With the planned
        displacement ``d = q_F - p``, ``L = |d|`` and ``u = d / L``, the features are ``(d_x, d_y, L)``, then
        for every object of ``object_slots`` (read-out position ``b``, presence ``g`` clipped to [0, 1];
        every entry but ``g`` itself is multiplied by ``g``), with ``r = b - p`` and ``R = contact_radius``:

        - ``r_x, r_y``;
        - ``along = r . u`` and ``cross = u_x r_y - u_y r_x``;
        - ``closest``: the smallest distance from ``b`` to the polyline ``q_0, q_1, .., q_F``;
        - ``cut = relu(R - closest) / R``: how deep the path enters the contact disc (0..1, unitless);
        - ``push = relu(L - relu(along - h)) * [|cross| < R] * [along > 0]``, ``h = sqrt(R^2 - cross^2)``: how
          far a pusher moving straight from ``p`` by ``d`` would carry an object ahead of it (quasi-static:
          contact when the pusher has gone ``along - h``), and ``push * u_x, push * u_y``, that carry as a
          displacement;
        - ``g``.
        """
        c = self.config
        lead = z.shape[:-1]
        s = self.state_head(z) * self.processor.obs_std + self.processor.obs_mean  # [..., S] in env units
        q = self.processor.unnormalize_actions(block.reshape(*lead, c.frameskip, c.action_dim))  # [..., F, 2]
        p = s[..., list(c.agent_xy)]  # [..., 2]
        path = torch.cat([p.unsqueeze(-2), q], dim=-2)  # [..., F + 1, 2]
        d = q[..., -1, :] - p
        length = torch.sqrt(d.square().sum(-1, keepdim=True) + CONTACT_EPS ** 2)  # [..., 1]
        u = d / length
        seg = path[..., 1:, :] - path[..., :-1, :]  # [..., F, 2]
        seg_sq = seg.square().sum(-1) + CONTACT_EPS ** 2  # [..., F]
        R = c.contact_radius
        feats = [d / CONTACT_UNIT, length / CONTACT_UNIT]
        for flag, x, y in c.object_slots:
            g = s[..., flag:flag + 1].clamp(0.0, 1.0)  # [..., 1]
            b = s[..., [x, y]]
            r = b - p
            along = (r * u).sum(-1, keepdim=True)
            cross = u[..., :1] * r[..., 1:] - u[..., 1:] * r[..., :1]
            rel = b.unsqueeze(-2) - path[..., :-1, :]  # [..., F, 2]: the object from each segment's start
            t = ((rel * seg).sum(-1) / seg_sq).clamp(0.0, 1.0).unsqueeze(-1)
            gap = (rel - t * seg).square().sum(-1) + CONTACT_EPS ** 2
            closest = torch.sqrt(gap.min(-1, keepdim=True).values)
            cut = torch.relu(R - closest) / R
            chord = torch.sqrt(torch.relu(R * R - cross.square()) + CONTACT_EPS ** 2)
            hit = ((cross.abs() < R) & (along > 0)).to(z.dtype)
            push = torch.relu(length - torch.relu(along - chord)) * hit
            feats.append(g * torch.cat([r / CONTACT_UNIT, along / CONTACT_UNIT, cross / CONTACT_UNIT,
                                        closest / CONTACT_UNIT, cut, push / CONTACT_UNIT,
                                        push * u / CONTACT_UNIT], dim=-1))
            feats.append(g)
        return torch.cat(feats, dim=-1)

    def pad_history(self, z_hist: Tensor) -> tuple[Tensor, Tensor]:
        """``z_hist[N, h, D]`` (any ``h >= 1``; the last ``history`` are kept) -> the zero-padded window
        ``[N, history, D]`` and its ``present[N, history]`` flags."""
        n, h, d = z_hist.shape
        H = self.config.history
        if h >= H:
            return z_hist[:, -H:], z_hist.new_ones(n, H)
        window = torch.cat([z_hist.new_zeros(n, H - h, d), z_hist], dim=1)
        present = torch.cat([z_hist.new_zeros(n, H - h), z_hist.new_ones(n, h)], dim=1)
        return window, present

    # ---- user-facing API ---------------------------------------------------------------------

    def encode(self, obs: Any) -> Tensor:
        """Embeddings ``z[..., D]`` of observations ``obs[..., *obs_shape]`` (state floats or uint8 images).

        Raises ``ValueError`` for a wrong shape or a NaN/inf entry. Call ``eval()`` first for
        inference (BatchNorm then uses its running statistics).
        """
        return self.embed(self.processor.normalize_obs(self.processor.check_obs(obs)))

    def action_blocks(self, actions: Any) -> Tensor:
        """Env actions ``[n, F, A]`` -> normalised blocks ``[n, F // frameskip, frameskip * A]``."""
        c = self.config
        a = torch.as_tensor(np.asarray(actions) if not isinstance(actions, Tensor) else actions)
        if a.dim() != 3 or a.shape[2] != c.action_dim or a.shape[1] % c.frameskip or a.shape[1] == 0:
            raise ValueError(f"actions must have shape [n, F, {c.action_dim}] with F a positive multiple of frameskip "
                             f"= {c.frameskip}, got {list(a.shape)}")
        a = a.to(self.processor.action_low.device)
        if not torch.isfinite(a).all():
            raise ValueError("actions contain NaN or inf: refusing to roll them out")
        a = self.processor.normalize_actions(a)
        return a.reshape(a.shape[0], a.shape[1] // c.frameskip, c.block_dim)

    def rollout(self, obs: Any, actions: Any) -> Tensor:
        """The ``Dynamics`` call in latent space: ``states[1, n, F // frameskip, D]``.

        Args:
            obs: the current observation ``[*obs_shape]``, or a history ``[h, *obs_shape]``
                (oldest first, ``frameskip`` env steps apart, ``h <= history``).
            actions: ``[n, F, A]`` env actions from the current step on; ``F`` is a multiple of
                ``frameskip``. Member axis k has size 1 (one model, no ensemble).
        """
        x = self.processor.check_obs(obs)
        shape = self.config.obs_shape
        if x.dim() == len(shape):
            x = x.unsqueeze(0)
        if x.dim() != len(shape) + 1 or not 1 <= x.shape[0] <= self.config.history:
            raise ValueError(f"obs must be one observation {list(shape)} or a history [h, {', '.join(map(str, shape))}]"
                             f" with 1 <= h <= history = {self.config.history}, got {list(x.shape)}")
        blocks = self.action_blocks(actions)
        z = self.embed(self.processor.normalize_obs(x))  # [h, D]
        return self.rollout_latent(z.unsqueeze(0).expand(blocks.shape[0], -1, -1), blocks).unsqueeze(0)

    def load_onnx(self, path: str | os.PathLike[str], threads: int | None = None,
                  providers: list[str] | None = None) -> None:
        """Attach the onnxruntime rollout exported to ``path`` (``onnx_rollout.export_rollout``).

        Raises ``ValueError`` if the file was exported from another config or other weights.
        """
        from forethought.models.world_model.onnx_rollout import OnnxRollout

        rollout = OnnxRollout(path, threads=threads, providers=providers)
        rollout.check_matches(self)
        self.onnx_rollout = rollout

    # ---- training ----------------------------------------------------------------------------

    def forward_sequence(self, obs: Tensor, blocks: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher-forced pass: normalised ``obs[B, T, ...]``, ``blocks[B, T-1, frameskip * A]`` ->
        ``(z[B, T, D], pred[B, T-1, D])``, ``pred[:, j]`` predicting ``z[:, j+1]`` from ``z[:, :j+1]``."""
        z = self.embed(obs)
        B, T, D = z.shape
        H = self.config.history
        # history windows ending at frames 0..T-2, zero-padded before the start
        padded = torch.cat([z.new_zeros(B, H - 1, D), z], dim=1)  # [B, T+H-1, D]
        windows = torch.stack([padded[:, j:j + H] for j in range(T - 1)], dim=1)  # [B, T-1, H, D]
        present = (torch.arange(T - 1, device=z.device)[:, None] + torch.arange(H, device=z.device)[None] >= H - 1)
        present = present.to(z.dtype).expand(B, -1, -1)  # [B, T-1, H]
        if self.config.contact_features:
            flat = blocks.reshape(B * (T - 1), -1)
            pred = self.next_latent(windows.reshape(B * (T - 1), H, D), present.reshape(B * (T - 1), H),
                                    self.predictor.condition(flat), flat)
            return z, pred.reshape(B, T - 1, D)
        pred = self.predictor(windows.reshape(B * (T - 1), H, D), present.reshape(B * (T - 1), H),
                              blocks.reshape(B * (T - 1), -1))
        return z, self.pred_projector(pred).reshape(B, T - 1, D)

    def compute_loss(self, batch: Mapping[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
        """``mse + rollout_weight * open-loop mse + state_weight * state readout + sigreg_weight * SIGReg`` for
        ``batch["obs"][B, T, *obs_shape]`` (raw observations) and ``batch["actions"][B, T-1, frameskip, A]``
        (env units).

        ``mse`` is the teacher-forced next-embedding error; the open-loop term rolls the predictor out
        from frame 0 alone over the ``T - 1`` blocks, its own predictions fed back as history (as a
        planner uses it), against the encoded frames. The state readout is the mean of
        ``((state_head(latent) - s_norm) / delta_scale)^2`` over the encoded frames ``z[:, 0..T-1]``, the
        teacher-forced ``pred`` and (with ``rollout_weight``) the open-loop latents, each against the
        normalised state of its frame. The terms are appended to ``loss_log``.
        """
        obs, actions = batch["obs"], batch["actions"]
        c = self.config
        blocks = self.processor.normalize_actions(actions).reshape(*actions.shape[:2], c.block_dim)
        x = self.processor.normalize_obs(obs)
        z, pred = self.forward_sequence(x, blocks)
        mse = (pred - z[:, 1:]).square().mean()
        loss = mse
        openloop = readout = mse.new_zeros(())
        latents, targets = [z, pred], [x, x[:, 1:]]  # the state readout's inputs and normalised states
        if c.rollout_weight > 0:
            rolled = self.rollout_latent(z[:, :1], blocks)
            openloop = (rolled - z[:, 1:]).square().mean()
            loss = loss + c.rollout_weight * openloop
            latents.append(rolled)
            targets.append(x[:, 1:])
        if c.state_weight > 0:
            err = (self.state_head(torch.cat(latents, 1)) - torch.cat(targets, 1)) / self.processor.delta_scale
            readout = err.square().mean()
            loss = loss + c.state_weight * readout
        reg = sigreg(z.transpose(0, 1), c.sigreg_slices, c.sigreg_knots, c.sigreg_t_max, generator)  # [T, B, D]
        if self.training:
            self.loss_log.append((float(mse.detach()), float(reg.detach()), float(openloop.detach()),
                                  float(readout.detach())))
        return loss + c.sigreg_weight * reg if c.sigreg_weight > 0 else loss

    @torch.no_grad()
    def diagnostics(self, obs: Tensor, actions: Tensor) -> dict[str, float]:
        """Evaluation-mode prediction error and collapse diagnostics on one batch (as ``compute_loss`` takes)."""
        was_training = self.training
        self.eval()
        c = self.config
        z, pred = self.forward_sequence(
            self.processor.normalize_obs(obs),
            self.processor.normalize_actions(actions).reshape(*actions.shape[:2], c.block_dim),
        )
        self.train(was_training)
        out = {"mse": float((pred - z[:, 1:]).square().mean()),
               "copy_last_mse": float((z[:, :-1] - z[:, 1:]).square().mean())}
        out.update(collapse_diagnostics(z[:, 0]))
        return out
