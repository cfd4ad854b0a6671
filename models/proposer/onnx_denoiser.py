"""Export the proposer's denoiser to ONNX and run it on onnxruntime inside the diffusers loop.

The exported graph is **one denoising step** of ``ConditionalUnet1D``::

    eps[B, F, A] = denoiser(sample[B, F, A] float32, timestep[B] int64,
                            obs_cond[B, n_obs * S] float32, goal[B, G] float32)

with a dynamic batch ``B``. ``obs_cond`` is the normalised, flattened observation history and
``goal`` the encoded plan step (all zeros for "no goal"; the input is absent when the proposer
has no goal). The sampling loop stays in Python with the same diffusers ``DDIMScheduler``, so
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
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from forethought.models.onnx_session import (META_WEIGHTS, OPSET, ExportedGraph, export_parser, run_export, weights_fingerprint,
                                              write_graph)
from forethought.models.proposer.modeling_proposer import ConditionalUnet1D, DiffusionProposer

META_CONFIG = "forethought.proposer_config"
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


class Conv1dAs2d(nn.Module):
    """An ``nn.Conv1d`` run as a ``[B, C, 1, F]`` 2-D convolution (same weights, same result).

    onnxruntime's CPU provider rewrites 2-D convolutions into its blocked NCHWc layout, not 1-D
    ones; on the shipped denoiser this halves the exported graph's time.
    """

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: Tensor) -> Tensor:
        c = self.conv
        return F.conv2d(x.unsqueeze(2), c.weight.unsqueeze(2), c.bias, (1, c.stride[0]), (0, c.padding[0]),
                        (1, c.dilation[0]), c.groups).squeeze(2)


def for_onnxruntime(module: nn.Module) -> nn.Module:
    """``module`` with every ``nn.Mish`` replaced by ``ExpMish`` and every ``nn.Conv1d`` by
    ``Conv1dAs2d`` (in place; returns it): the same function, faster on onnxruntime's CPU provider."""
    for name, child in module.named_children():
        if isinstance(child, nn.Mish):
            setattr(module, name, ExpMish())
        elif isinstance(child, nn.Conv1d):
            setattr(module, name, Conv1dAs2d(child))
        else:
            for_onnxruntime(child)
    return module


class DenoiserStep(nn.Module):
    """``ConditionalUnet1D`` with the conditioning split into the ONNX inputs ``obs_cond`` and ``goal``."""

    def __init__(self, unet: ConditionalUnet1D) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, sample: Tensor, timestep: Tensor, obs_cond: Tensor, goal: Tensor | None = None) -> Tensor:
        """``sample[B, F, A]``, ``timestep[B]``, ``obs_cond[B, n_obs * S]``, ``goal[B, G]`` -> ``eps[B, F, A]``."""
        cond = obs_cond if goal is None else torch.cat([obs_cond, goal], dim=-1)
        return self.unet(sample, timestep, cond)


def example_inputs(proposer: DiffusionProposer, batch: int = 2, seed: int = 0) -> dict[str, Tensor]:
    """Random denoiser inputs of the exported names (``goal`` only when the proposer takes one)."""
    c = proposer.config
    g = torch.Generator().manual_seed(seed)
    inputs = {
        "sample": torch.randn(batch, c.horizon, c.action_dim, generator=g),
        "timestep": torch.randint(0, c.num_train_timesteps, (batch,), generator=g),
        "obs_cond": torch.rand(batch, c.n_obs_steps * c.obs_dim, generator=g) * 2 - 1,
    }
    if c.use_goal:
        inputs["goal"] = (torch.rand(batch, c.goal_width, generator=g) > 0.7).float()
    return inputs


def export_denoiser(proposer: DiffusionProposer, path: str | os.PathLike[str], opset: int = OPSET) -> Path:
    """Write ``proposer``'s denoiser (one step, dynamic batch) as a single ONNX file at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    unet = for_onnxruntime(copy.deepcopy(proposer.unet).to("cpu"))  # the proposer's own U-Net is left as it is
    step = DenoiserStep(unet).eval()
    inputs = example_inputs(proposer)
    write_graph(step, list(inputs.values()), path, opset, list(inputs), ["eps"], "batch",
                {META_CONFIG: proposer.config.to_json(), META_WEIGHTS: weights_fingerprint(proposer.unet)})
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
        """One session call on numpy inputs named as in the export."""
        return self.session.run(["eps"], {k: inputs[k] for k in self.input_names})[0]

    def __call__(self, sample: Tensor, timestep: Tensor | int, global_cond: Tensor) -> Tensor:
        """``sample[B, F, A]``, ``timestep`` (scalar or ``[B]``), ``global_cond[B, D]`` -> ``eps[B, F, A]``."""
        B = sample.shape[0]
        t = np.broadcast_to(np.asarray(torch.as_tensor(timestep).cpu(), dtype=np.int64), (B,))
        cond = global_cond.detach().to("cpu", torch.float32).numpy()
        inputs = {
            "sample": sample.detach().to("cpu", torch.float32).numpy(),
            "timestep": np.ascontiguousarray(t),
            "obs_cond": np.ascontiguousarray(cond[:, : self.obs_width]),
            "goal": np.ascontiguousarray(cond[:, self.obs_width :]),
        }
        return torch.from_numpy(self.run(inputs)).to(sample.device)


def max_abs_difference(proposer: DiffusionProposer, denoiser: OnnxDenoiser, batch: int = 8, seed: int = 0) -> float:
    """Largest ``|eps_torch - eps_onnx|`` over random inputs of batch ``batch``."""
    inputs = example_inputs(proposer, batch, seed)
    with torch.no_grad():
        ref = DenoiserStep(proposer.unet).eval()(*inputs.values())
    got = denoiser.run({k: v.numpy() for k, v in inputs.items()})
    return float(np.abs(ref.numpy() - got).max())


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
