"""Export the world model's latent rollout to ONNX and run it on onnxruntime for the latent planners.

The exported graph is the predictor's whole open-loop rollout over a fixed horizon of ``K``
action blocks (the loop is unrolled)::

    z[n, K, D] = rollout(window[n, history, D] float32, present[n, history] float32,
                         blocks[n, K, frameskip * A] float32)

with a dynamic ``n``: ``LatentWorldModel.rollout_window`` after ``pad_history`` (with ``contact_features``
the graph also holds the state head, the contact features and their skip). The encoder stays
in torch (one call per plan); the rollout is what a CEM plan repeats ``iterations`` times over
``samples`` rows, and onnxruntime runs its small matrix products on both cores of a 2-core CPU
where torch's intra-op threads do not pay off (``bench/world_model.py --only latency``). The file
records the model's config, the horizon and a fingerprint of the weights; ``OnnxRollout.check_matches``
refuses a file made from other weights.

Example::

    python -m forethought.models.world_model.onnx_rollout --model models/pretrained/wm-pushblocks-state \\
        --out data/wm-pushblocks-state.onnx

    model = LatentWorldModel.from_pretrained("models/pretrained/wm-pushblocks-state")
    model.load_onnx("data/wm-pushblocks-state.onnx", threads=2)
    planner = LatentCEM(model, backend="onnx")
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from forethought.models.onnx_session import (META_WEIGHTS, OPSET, ExportedGraph, export_parser, run_export, weights_fingerprint,
                                              write_graph)
from forethought.models.world_model.configuration_world_model import DEFAULT_HORIZON
from forethought.models.world_model.modeling_world_model import LatentWorldModel

META_CONFIG = "forethought.world_model_config"
META_HORIZON = "forethought.horizon"
EXPORT_HINT = "`python -m forethought.models.world_model.onnx_rollout --model DIR --out FILE.onnx`"


class RolloutGraph(nn.Module):
    """``LatentWorldModel.rollout_window`` as a module (predictor and its projector; with ``contact_features``
    also the state head, the processor's statistics and the contact skip)."""

    def __init__(self, model: LatentWorldModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, window: Tensor, present: Tensor, blocks: Tensor) -> Tensor:
        return self.model.rollout_window(window, present, blocks)


def rollout_fingerprint(model: LatentWorldModel) -> str:
    """sha256 of the weights the rollout graph holds: predictor and predictor projector, and with
    ``contact_features`` the state head, the contact skip and the processor's state and action statistics."""
    if not model.config.contact_features:
        return weights_fingerprint(nn.ModuleList([model.predictor, model.pred_projector]))
    p = model.processor
    return weights_fingerprint(nn.ModuleList([model.predictor, model.pred_projector, model.state_head,
                                              model.contact_skip]),
                               {"obs_mean": p.obs_mean, "obs_std": p.obs_std, "action_low": p.action_low,
                                "action_high": p.action_high})


def example_inputs(model: LatentWorldModel, horizon: int, n: int = 4, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Random ``(window, present, blocks)``; the first row has a one-frame history (absent slots)."""
    c = model.config
    g = torch.Generator().manual_seed(seed)
    window = torch.randn(n, c.history, c.embed_dim, generator=g)
    present = torch.ones(n, c.history)
    window[0, :-1] = 0.0
    present[0, :-1] = 0.0
    blocks = torch.rand(n, horizon, c.block_dim, generator=g) * 2 - 1
    return window, present, blocks


def export_rollout(model: LatentWorldModel, path: str | os.PathLike[str], horizon: int = DEFAULT_HORIZON,
                   opset: int = OPSET) -> Path:
    """Write ``model``'s ``horizon``-block latent rollout (dynamic batch) as one ONNX file at ``path``."""
    if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):  # initialising the copy must not move the caller's RNG
        clone = LatentWorldModel(model.config)  # on the CPU; the caller's model keeps its device, mode and session
    clone.load_state_dict(model.state_dict())
    graph = RolloutGraph(clone).eval()
    write_graph(graph, example_inputs(model, horizon), path, opset, ["window", "present", "blocks"], ["z"], "n",
                {META_CONFIG: model.config.to_json(), META_WEIGHTS: rollout_fingerprint(model),
                 META_HORIZON: str(horizon)})
    return path


class OnnxRollout(ExportedGraph):
    """An onnxruntime session over an exported rollout, called like ``LatentWorldModel.rollout_window``.

    Opens the file ``export_rollout`` wrote with ``ExportedGraph``'s arguments.
    """

    what = "ONNX world-model rollout"
    writer = "export_rollout"
    hint = EXPORT_HINT
    config_key = META_CONFIG
    extra_keys = (META_HORIZON,)

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None,
                 providers: list[str] | None = None) -> None:
        super().__init__(path, threads, providers)
        self.horizon = int(self.metadata[META_HORIZON])

    def check_matches(self, model: LatentWorldModel) -> None:
        """Raise ``ValueError`` unless this file was exported from ``model``'s config and weights."""
        ours = json.loads(model.config.to_json())
        if self.config != ours:
            diff = sorted(k for k in set(ours) | set(self.config) if ours.get(k) != self.config.get(k))
            raise ValueError(f"ONNX rollout {self.path} was exported from another world-model config "
                             f"(differs in {diff})")
        if self.weights_sha256 != rollout_fingerprint(model):
            raise ValueError(f"ONNX rollout {self.path} was exported from other weights than this model's: "
                             "re-export it")

    def __call__(self, window: Tensor, present: Tensor, blocks: Tensor) -> Tensor:
        """``window[n, history, D]``, ``present[n, history]``, ``blocks[n, K, block_dim]`` -> ``z[n, K, D]``."""
        if blocks.shape[1] != self.horizon:
            raise ValueError(f"ONNX rollout {self.path} was exported for a horizon of {self.horizon} blocks, got "
                             f"{blocks.shape[1]}: re-export it with --horizon {blocks.shape[1]}")
        feed = {k: np.ascontiguousarray(v.detach().to("cpu", torch.float32).numpy())
                for k, v in (("window", window), ("present", present), ("blocks", blocks))}
        return torch.from_numpy(self.run_batch(["z"], feed)[0]).to(blocks.device)


def max_abs_difference(model: LatentWorldModel, rollout: OnnxRollout, n: int = 16, seed: int = 0) -> float:
    """Largest ``|z_torch - z_onnx|`` over random inputs of ``n`` rows."""
    inputs = example_inputs(model, rollout.horizon, n, seed)
    with torch.no_grad():
        ref = model.eval().rollout_window(*inputs)
    return float((ref - rollout(*inputs)).abs().max())


def main(argv: list[str] | None = None) -> int:
    """``python -m forethought.models.world_model.onnx_rollout --model DIR --out FILE.onnx [--horizon K]``."""
    parser = export_parser(__doc__.splitlines()[0], "world-model checkpoint directory")
    parser.add_argument("--horizon", type=int, default=DEFAULT_HORIZON,
                        help=f"action blocks per rollout (the planner's horizon, {DEFAULT_HORIZON})")
    args = parser.parse_args(argv)

    def export() -> float:
        model = LatentWorldModel.from_pretrained(args.model)
        export_rollout(model, args.out, args.horizon, args.opset)
        return max_abs_difference(model, OnnxRollout(args.out, threads=1))

    return run_export(args, export, f", horizon {args.horizon}")


if __name__ == "__main__":
    raise SystemExit(main())
