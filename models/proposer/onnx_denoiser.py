"""Export the proposer's denoiser to ONNX and run it on onnxruntime inside the diffusers loop.

The exported graph is **one denoising step** of ``ConditionalUnet1D``::

    eps[B, F, A] = denoiser(sample[B, F, A] float32, timestep[B_c] int64,
                            obs_cond[B_c, n_obs * S] float32, goal[B_c, G] float32)

with a dynamic batch ``B`` and a conditioning batch ``B_c`` of 1 (one conditioning shared by
all samples, as in ``propose``: the timestep embedding and the FiLM layers run once) or ``B``.
``obs_cond`` is the normalised, flattened observation history and ``goal`` the encoded plan step
(all zeros for "no goal"; the input is absent when the proposer has no goal). The graph is the
U-Net rewritten for onnxruntime's CPU provider (``DenoiserStep``: 2-D convolutions, flattened
elementwise ops, a polyphase upsampling, a one-``Exp`` Mish), the same function to float32
rounding. The sampling loop stays in Python with the same diffusers ``DDIMScheduler``, so
``DiffusionProposer.propose(..., backend="onnx")`` differs from the torch path only in who
evaluates the network. The file records the proposer's config and a fingerprint of its
weights; ``load_onnx`` refuses a file made from other weights.

Example::

    python -m forethought.models.proposer.onnx_denoiser --model models/pretrained/proposer-pushblocks \\
        --out data/proposer-pushblocks.onnx

    proposer = DiffusionProposer.from_pretrained("models/pretrained/proposer-pushblocks")
    proposer.load_onnx("data/proposer-pushblocks.onnx")
    chunks = proposer.propose(obs_history, n=64, goal=step, backend="onnx")
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from forethought.models.onnx_session import (META_WEIGHTS, OPSET, ExportedGraph, export_parser, run_export, weights_fingerprint,
                                              write_graph)
from forethought.models.proposer.modeling_proposer import (ConditionalResidualBlock1D, ConditionalUnet1D, Conv1dBlock,
                                                           DiffusionProposer)

META_CONFIG = "forethought.proposer_config"
COND_AXIS = "cond_batch"
"""The ONNX axis of the conditioning inputs: 1 (shared by the batch) or ``batch``."""
INFERENCE_ONLY: tuple[str, ...] = ("num_inference_steps", "n_action_steps")
"""Config fields a proposer may change after export without invalidating the ONNX file."""


def _structural_config(config_dict: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config_dict.items() if k not in INFERENCE_ONLY}


class ExpMish(nn.Module):
    """``x * tanh(softplus(x))`` written as ``x * n / (n + 2)`` with ``n = e^x (e^x + 2)``.

    The same function (to float32 rounding) with one ``Exp`` in place of ``Softplus`` and ``Tanh``:
    onnxruntime's CPU Softplus alone took a fifth of the exported denoiser's time. ``x`` is capped
    at 20 inside the exponential, where ``tanh(softplus(x))`` is 1 in float32.
    """

    def forward(self, x: Tensor) -> Tensor:
        e = torch.exp(torch.clamp(x, max=20.0))
        n = e * (e + 2.0)
        return x * n / (n + 2.0)


MISH = ExpMish()


def conv_as_2d(conv: nn.Conv1d, x: Tensor) -> Tensor:
    """``conv`` applied to ``x[B, C_in, 1, L]`` as a 2-D convolution -> ``[B, C_out, 1, L']`` (same weights,
    same result): onnxruntime's CPU provider rewrites 2-D convolutions into its blocked NCHWc layout,
    not 1-D ones, which halves their time."""
    return F.conv2d(x, conv.weight.unsqueeze(2), conv.bias, (1, conv.stride[0]), (0, conv.padding[0]),
                    (1, conv.dilation[0]), conv.groups)


class FlatConvBlock(nn.Module):
    """``Conv1dBlock`` at a fixed chunk length ``L``: ``x[B, C_in, 1, L]`` -> ``[B, C * L]``.

    GroupNorm is an ``InstanceNormalization`` over ``[B, groups, C / groups * L]``, and its affine is
    applied on the flattened ``[B, C * L]`` view with weight and bias repeated ``L`` times:
    onnxruntime's CPU broadcast of a ``[C, 1]`` operand over ``[B, C, L]`` runs in spans of ``L``
    (4 to 16 here) and took a third of the graph's time; over ``[B, C * L]`` it is one long span.
    """

    def __init__(self, block: Conv1dBlock, length: int) -> None:
        super().__init__()
        self.conv, norm = block.block[0], block.block[1]
        self.groups, self.eps, self.channels, self.length = norm.num_groups, norm.eps, norm.num_channels, length
        self.register_buffer("weight", norm.weight.detach().repeat_interleave(length)[None])  # [1, C * L]
        self.register_buffer("bias", norm.bias.detach().repeat_interleave(length)[None])
        self.register_buffer("unit", torch.ones(norm.num_groups))  # InstanceNormalization's own affine: none
        self.register_buffer("zero", torch.zeros(norm.num_groups))

    def forward(self, x: Tensor) -> Tensor:
        h = conv_as_2d(self.conv, x).reshape(-1, self.groups, self.channels // self.groups * self.length)
        h = F.instance_norm(h, weight=self.unit, bias=self.zero, eps=self.eps).reshape(-1, self.channels * self.length)
        return MISH(h * self.weight + self.bias)


class FlatResidualBlock(nn.Module):
    """``ConditionalResidualBlock1D`` at a fixed length ``L`` on ``x[B, C_in, 1, L]`` -> ``[B, C, 1, L]``.

    ``forward`` takes the conditioning after the FiLM encoder's Mish, ``cond[B_c, E]`` with ``B_c`` 1
    (one conditioning shared by all ``B`` samples, computed once) or ``B``; the FiLM scale and bias
    are expanded to the flattened ``[B_c, C * L]`` view and broadcast over the batch.
    """

    def __init__(self, block: ConditionalResidualBlock1D, length: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = FlatConvBlock(block.conv1, length), FlatConvBlock(block.conv2, length)
        self.film = block.cond_encoder[1]  # the Linear after the encoder's Mish: [scale | bias]
        self.residual = None if isinstance(block.residual_conv, nn.Identity) else block.residual_conv
        self.channels, self.length = block.out_channels, length

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        C, L = self.channels, self.length
        film = self.film(cond).reshape(-1, 2 * C, 1).expand(-1, -1, L).reshape(-1, 2 * C * L)
        h = self.conv1(x) * film[:, : C * L] + film[:, C * L :]  # [B, C * L]
        h = self.conv2(h.reshape(-1, C, 1, L))
        r = x if self.residual is None else conv_as_2d(self.residual, x)
        return (h + r.reshape(-1, C * L)).reshape(-1, C, 1, L)


class PolyphaseUpsample(nn.Module):
    """``ConvTranspose1d(C, C, 4, stride=2, padding=1)`` as one ``[2C, C, 1, 3]`` convolution whose
    two output halves (the even and the odd output positions) are interleaved: ``x[B, C, 1, L]`` ->
    ``[B, C, 1, 2L]``. onnxruntime's CPU ConvTranspose took as long as the four convolutions of a level.
    """

    def __init__(self, up: nn.ConvTranspose1d) -> None:
        super().__init__()
        if (up.kernel_size[0], up.stride[0], up.padding[0], up.output_padding[0], up.groups) != (4, 2, 1, 0, 1):
            raise ValueError(f"PolyphaseUpsample takes ConvTranspose1d(kernel 4, stride 2, padding 1), got {up}")
        w = up.weight.detach()  # [C_in, C_out, 4]: y[2j] = w1 x[j] + w3 x[j-1], y[2j+1] = w2 x[j] + w0 x[j+1]
        zero = torch.zeros_like(w[..., 0])
        even = torch.stack([w[..., 3], w[..., 1], zero], dim=-1)  # taps on x[j-1], x[j], x[j+1]
        odd = torch.stack([zero, w[..., 2], w[..., 0]], dim=-1)
        self.register_buffer("weight", torch.cat([even, odd], dim=1).transpose(0, 1).unsqueeze(2).contiguous())
        self.register_buffer("bias", up.bias.detach().repeat(2))
        self.channels = w.shape[1]

    def forward(self, x: Tensor) -> Tensor:
        L = x.shape[-1]
        y = F.conv2d(x, self.weight, self.bias, padding=(0, 1))  # [B, 2C, 1, L]: even outputs, then odd
        return y.reshape(-1, 2, self.channels, L).permute(0, 2, 3, 1).reshape(-1, self.channels, 1, 2 * L)


class DenoiserStep(nn.Module):
    """``ConditionalUnet1D`` rewritten for onnxruntime's CPU provider, with the ONNX inputs' split conditioning.

    ``forward(sample[B, F, A], timestep[B_c], obs_cond[B_c, n_obs * S], goal[B_c, G]) -> eps[B, F, A]``
    with ``B_c`` 1 (one conditioning for all samples, as in ``propose``: the timestep embedding and the
    FiLM layers run once) or ``B``. The same function as the U-Net to float32 rounding, built from its
    modules (weights shared; ``PolyphaseUpsample`` and the flattened GroupNorm affines hold rearranged
    copies). Activations are ``[B, C, 1, L]`` between blocks, so the convolutions are 2-D ones, and every
    elementwise op runs over a flattened ``[B, C * L]`` view; ``horizon`` fixes the length ``L`` of each level.
    """

    def __init__(self, unet: ConditionalUnet1D, horizon: int) -> None:
        super().__init__()
        levels = len(unet.down_blocks)
        if horizon % 2 ** (levels - 1):
            raise ValueError(f"horizon {horizon} is not divisible by 2^{levels - 1} (the U-Net's down-samplings)")
        self.time_proj, self.time_embedding = unet.time_proj, unet.time_embedding
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        length = horizon
        for res1, res2, down in unet.down_blocks:
            self.down.append(nn.ModuleList([FlatResidualBlock(res1, length), FlatResidualBlock(res2, length)]))
            self.downsample.append(down)
            length //= 1 if isinstance(down, nn.Identity) else 2
        self.mid = nn.ModuleList([FlatResidualBlock(res, length) for res in unet.mid_blocks])
        self.up = nn.ModuleList()
        for res1, res2, up in unet.up_blocks:
            self.up.append(nn.ModuleList([FlatResidualBlock(res1, length), FlatResidualBlock(res2, length),
                                          PolyphaseUpsample(up)]))
            length *= 2
        self.final_block, self.final_conv = FlatConvBlock(unet.final_conv[0], length), unet.final_conv[1]
        self.horizon = horizon

    def forward(self, sample: Tensor, timestep: Tensor, obs_cond: Tensor, goal: Tensor | None = None) -> Tensor:
        """``sample[B, F, A]``, ``timestep[B_c]``, ``obs_cond[B_c, n_obs * S]``, ``goal[B_c, G]``
        -> ``eps[B, F, A]``."""
        t_emb = self.time_embedding(self.time_proj(timestep).to(sample.dtype))
        cond = torch.cat([t_emb, obs_cond] if goal is None else [t_emb, obs_cond, goal], dim=-1)  # [B_c, E + D]
        cond = MISH(cond)  # every FiLM encoder starts with it
        x = sample.transpose(1, 2).unsqueeze(2)  # [B, A, 1, F]
        skips = []
        for (res1, res2), down in zip(self.down, self.downsample):
            x = res2(res1(x, cond), cond)
            skips.append(x)
            x = x if isinstance(down, nn.Identity) else conv_as_2d(down, x)
        for res in self.mid:
            x = res(x, cond)
        for res1, res2, up in self.up:
            x = up(res2(res1(torch.cat([x, skips.pop()], dim=1), cond), cond))
        x = self.final_block(x).reshape(-1, self.final_block.channels, 1, self.horizon)
        return conv_as_2d(self.final_conv, x).squeeze(2).transpose(1, 2)  # [B, F, A]


def example_inputs(proposer: DiffusionProposer, batch: int = 2, seed: int = 0,
                   shared: bool = False) -> dict[str, Tensor]:
    """Random denoiser inputs of the exported names (``goal`` only when the proposer takes one).

    ``shared``: one conditioning (``timestep``, ``obs_cond``, ``goal`` of batch 1) for the ``batch``
    samples, as ``propose`` passes it; otherwise one per sample.
    """
    c = proposer.config
    g = torch.Generator().manual_seed(seed)
    n = 1 if shared else batch
    inputs = {
        "sample": torch.randn(batch, c.horizon, c.action_dim, generator=g),
        "timestep": torch.randint(0, c.num_train_timesteps, (n,), generator=g),
        "obs_cond": torch.rand(n, c.n_obs_steps * c.obs_dim, generator=g) * 2 - 1,
    }
    if c.use_goal:
        inputs["goal"] = (torch.rand(n, c.goal_width, generator=g) > 0.7).float()
    return inputs


def reference_eps(proposer: DiffusionProposer, inputs: dict[str, Tensor]) -> Tensor:
    """The proposer's own U-Net on ``example_inputs``-style inputs (conditioning broadcast to the batch)."""
    B = inputs["sample"].shape[0]
    cond = torch.cat([inputs[k].expand(B, -1) for k in ("obs_cond", "goal") if k in inputs], dim=-1)
    with torch.no_grad():
        return proposer.unet(inputs["sample"], inputs["timestep"].expand(B), cond)


def export_denoiser(proposer: DiffusionProposer, path: str | os.PathLike[str], opset: int = OPSET) -> Path:
    """Write ``proposer``'s denoiser (one step) as a single ONNX file at ``path``.

    Axis 0 of ``sample`` and ``eps`` is ``batch``; that of ``timestep``, ``obs_cond`` and ``goal`` is
    ``cond_batch``, 1 or ``batch`` (``DenoiserStep``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    unet = copy.deepcopy(proposer.unet).to("cpu")  # the proposer's own U-Net is left as it is
    step = DenoiserStep(unet, proposer.config.horizon).eval()
    inputs = example_inputs(proposer, shared=True)
    with warnings.catch_warnings():
        # instance_norm normalises by the input's own statistics (GroupNorm's), which torch calls train=True
        warnings.filterwarnings("ignore", message=".*operator 'instance_norm' is set to train=True")
        write_graph(step, list(inputs.values()), path, opset, list(inputs), ["eps"], "batch",
                    {META_CONFIG: proposer.config.to_json(), META_WEIGHTS: weights_fingerprint(proposer.unet)},
                    axis_names={name: COND_AXIS for name in inputs if name != "sample"})
    return path


class OnnxDenoiser(ExportedGraph):
    """An onnxruntime session over an exported denoiser, called like ``ConditionalUnet1D``.

    ``denoiser(sample[B, F, A], timestep, global_cond[B, D]) -> eps[B, F, A]`` (torch in,
    torch out), so ``DiffusionProposer.conditional_sample`` can use it in place of the U-Net.
    Opens the file ``export_denoiser`` wrote with ``ExportedGraph``'s arguments.
    """

    what = "ONNX denoiser"
    writer = "export_denoiser"
    hint = "`python -m forethought.models.proposer.onnx_denoiser --model DIR --out FILE.onnx`"
    config_key = META_CONFIG

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None,
                 providers: list[str] | None = None) -> None:
        super().__init__(path, threads, providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.obs_width = int(self.config["n_obs_steps"]) * int(self.config["obs_dim"])

    def check_matches(self, proposer: DiffusionProposer) -> None:
        """Raise ``ValueError`` unless this file was exported from ``proposer``'s config and weights."""
        ours, theirs = _structural_config(self.config), _structural_config(proposer.config.to_dict())
        if ours != theirs:
            diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
            raise ValueError(f"ONNX denoiser {self.path} was exported from another proposer config (differs in {diff})")
        if self.weights_sha256 != weights_fingerprint(proposer.unet):
            raise ValueError(
                f"ONNX denoiser {self.path} was exported from other weights than this proposer's: re-export it"
            )

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """``eps`` for numpy inputs named as in the export (``run_batch``)."""
        return self.run_batch(["eps"], {k: inputs[k] for k in self.input_names})[0]

    def __call__(self, sample: Tensor, timestep: Tensor | int, global_cond: Tensor) -> Tensor:
        """``sample[B, F, A]``, ``timestep`` (scalar or ``[B]``), ``global_cond[B, D]`` -> ``eps[B, F, A]``.

        When every row of ``global_cond`` and ``timestep`` is the same (``propose``'s case), only the
        first is passed: the graph computes the conditioning once for the whole batch.
        """
        B = sample.shape[0]
        t = torch.as_tensor(timestep).to("cpu", torch.int64).reshape(-1)
        cond = global_cond.detach().to("cpu", torch.float32)
        if bool((cond == cond[:1]).all()) and bool((t == t[:1]).all()):
            cond, t = cond[:1], t[:1]
        else:
            t = t.expand(B)
        cond_np = cond.numpy()
        inputs = {
            "sample": sample.detach().to("cpu", torch.float32).numpy(),
            "timestep": np.ascontiguousarray(t.numpy()),
            "obs_cond": np.ascontiguousarray(cond_np[:, : self.obs_width]),
            "goal": np.ascontiguousarray(cond_np[:, self.obs_width :]),
        }
        return torch.from_numpy(self.run(inputs)).to(sample.device)


def max_abs_difference(proposer: DiffusionProposer, denoiser: OnnxDenoiser, batch: int = 8, seed: int = 0) -> float:
    """Largest ``|eps_torch - eps_onnx|`` of the proposer's U-Net and ``denoiser`` over random inputs of
    batch ``batch``, with one conditioning per sample and with one shared by all."""
    diffs = []
    for shared in (False, True):
        inputs = example_inputs(proposer, batch, seed, shared=shared)
        got = denoiser.run({k: v.numpy() for k, v in inputs.items()})
        diffs.append(float(np.abs(reference_eps(proposer, inputs).numpy() - got).max()))
    return max(diffs)


def main(argv: list[str] | None = None) -> int:
    """``python -m forethought.models.proposer.onnx_denoiser --model DIR --out FILE.onnx``."""
    args = export_parser(__doc__.splitlines()[0], "proposer checkpoint directory").parse_args(argv)

    def export() -> float:
        proposer = DiffusionProposer.from_pretrained(args.model)
        export_denoiser(proposer, args.out, args.opset)
        return max_abs_difference(proposer, OnnxDenoiser(args.out, threads=1))

    return run_export(args, export)


if __name__ == "__main__":
    raise SystemExit(main())
