"""Export the dynamics ensemble's whole rollout to ONNX and run it on onnxruntime.

The exported graph is **the full chained rollout of all K members** (one graph; the members are
already fused into one batched matmul per layer, ``EnsembleMLP``)::

    states[B, K, F, S] = rollout(obs_history[B, n_obs, S] float32, actions[B, F, A] float32)

with a dynamic batch ``B`` and ``F = max_horizon`` (16 for the shipped models): the
``F / horizon`` network calls, each member continuing from its own prediction, are unrolled in
the graph. Shorter chunks are padded with their last action, which is what ``imagine`` does with
its last piece, so the first ``F'`` states are unchanged. The file records the ensemble's config
and a fingerprint of its weights and normaliser; ``DynamicsEnsemble.load_onnx`` refuses a file
made from another ensemble.

Example::

    forethought export --model models/pretrained/dynamics-pushblocks --out data/dynamics-pushblocks.onnx

    dynamics = DynamicsEnsemble.from_pretrained("models/pretrained/dynamics-pushblocks")
    dynamics.load_onnx("data/dynamics-pushblocks.onnx")
    dynamics.backend = "onnx"
    states = dynamics.rollout(obs_history, actions)      # [K, n, F, S], on onnxruntime
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from forethought.models.dynamics.modeling_dynamics import DynamicsEnsemble
from forethought.models.onnx_session import META_WEIGHTS, OPSET, ExportedGraph, weights_fingerprint, write_graph

META_CONFIG = "forethought.dynamics_config"
EXPORT_HINT = "`forethought export --model DIR --out FILE.onnx` (a dynamics-ensemble folder)"


def fingerprint(dynamics: DynamicsEnsemble) -> str:
    """sha256 of the ensemble's weights (both networks of a relational one) and its normaliser's statistics."""
    stats = {} if dynamics.normalizer is None else dict(dynamics.normalizer.stats)
    if dynamics.object_core is not None:
        stats.update({f"object_core.{k}": v for k, v in dynamics.object_core.state_dict().items()})
    return weights_fingerprint(dynamics.core, stats)


class EnsembleRollout(nn.Module):
    """``DynamicsEnsemble.imagine`` over ``max_horizon`` steps, batch first (ONNX needs axis 0 dynamic)."""

    def __init__(self, dynamics: DynamicsEnsemble) -> None:
        super().__init__()
        self.dynamics = dynamics

    def forward(self, obs_history: Tensor, actions: Tensor) -> Tensor:
        """``obs_history[B, n_obs, S]``, ``actions[B, F, A]`` -> ``states[B, K, F, S]``."""
        return self.dynamics.imagine(obs_history.unsqueeze(0), actions.unsqueeze(0)).transpose(0, 1)


def example_inputs(dynamics: DynamicsEnsemble, batch: int = 2, seed: int = 0) -> dict[str, Tensor]:
    """Random rollout inputs (states around the normaliser's mean, actions in [-0.3, 0.3])."""
    g = torch.Generator().manual_seed(seed)
    S, A, o, F = dynamics.state_dim, dynamics.action_dim, dynamics.n_obs_steps, dynamics.max_horizon
    mean, std = dynamics.normalizer.stats["state.mean"], dynamics.normalizer.stats["state.std"]
    return {
        "obs_history": mean + std * torch.randn(batch, o, S, generator=g),
        "actions": (torch.rand(batch, F, A, generator=g) * 2 - 1) * 0.3,
    }


def export_ensemble(dynamics: DynamicsEnsemble, path: str | os.PathLike[str], opset: int = OPSET) -> Path:
    """Write ``dynamics``' whole rollout (all members, ``max_horizon`` steps, dynamic batch) to ``path``."""
    if dynamics.normalizer is None:
        raise ValueError("this DynamicsEnsemble has no normaliser: load it with from_pretrained or train it")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = EnsembleRollout(copy.deepcopy(dynamics).to("cpu")).eval()  # the caller keeps its device and mode
    inputs = example_inputs(dynamics)
    write_graph(graph, list(inputs.values()), path, opset, list(inputs), ["states"], "batch",
                {META_CONFIG: json.dumps(dynamics.config.to_dict(), sort_keys=True),
                 META_WEIGHTS: fingerprint(dynamics)})
    return path


class OnnxEnsemble(ExportedGraph):
    """An onnxruntime session over an exported ensemble rollout, called like ``imagine``.

    ``rollout(obs_history[B, n_obs, S], actions[B, F' <= F, A]) -> states[K, B, F', S]`` (torch in,
    torch out). Opens the file ``export_ensemble`` wrote with ``ExportedGraph``'s arguments.
    """

    what = "ONNX dynamics ensemble"
    writer = "export_ensemble"
    hint = EXPORT_HINT
    config_key = META_CONFIG

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None,
                 providers: list[str] | None = None) -> None:
        super().__init__(path, threads, providers)
        self.steps = int(self.config["rollout_horizon"])

    def check_matches(self, dynamics: DynamicsEnsemble) -> None:
        """Raise ``ValueError`` unless this file was exported from ``dynamics``' config, weights and normaliser."""
        ours = dynamics.config.to_dict()
        if json.loads(json.dumps(ours, sort_keys=True)) != self.config:
            diff = sorted(k for k in set(ours) | set(self.config) if json.loads(json.dumps(ours.get(k))) != self.config.get(k))
            raise ValueError(f"{self.what} {self.path} was exported from another dynamics config (differs in {diff})")
        if self.weights_sha256 != fingerprint(dynamics):
            raise ValueError(f"{self.what} {self.path} was exported from other weights than this ensemble's: re-export it")

    def run(self, obs_history: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """``obs_history[B, n_obs, S]``, ``actions[B, F, A]`` -> ``states[B, K, F, S]`` (numpy; ``run_batch``)."""
        return self.run_batch(["states"], {"obs_history": obs_history, "actions": actions})[0]

    def __call__(self, obs_history: Tensor, actions: Tensor) -> Tensor:
        """``obs_history[B, n_obs, S]``, ``actions[B, F', A]`` (``F' <= F``) -> ``states[K, B, F', S]``."""
        f = actions.shape[1]
        act = actions.detach().to("cpu", torch.float32)
        if f < self.steps:  # pad with the last action: imagine does the same with its last piece
            act = torch.cat([act, act[:, -1:].expand(-1, self.steps - f, -1)], dim=1)
        hist = obs_history.detach().to("cpu", torch.float32)
        out = self.run(np.ascontiguousarray(hist.numpy()), np.ascontiguousarray(act.numpy()))
        return torch.from_numpy(out[:, :, :f]).transpose(0, 1).to(actions.device)


def max_abs_difference(dynamics: DynamicsEnsemble, ensemble: OnnxEnsemble, batch: int = 8, seed: int = 0) -> float:
    """Largest ``|states_torch - states_onnx|`` over random inputs of batch ``batch``."""
    inputs = example_inputs(dynamics, batch, seed)
    with torch.no_grad():
        ref = EnsembleRollout(dynamics).eval()(*inputs.values())
    got = ensemble.run(*(v.numpy() for v in inputs.values()))
    return float(np.abs(ref.numpy() - got).max())
