"""``forethought export``: write a checkpoint's inference graph as one ONNX file for onnxruntime.

Examples::

    forethought export --model models/pretrained/proposer-pushblocks --out data/proposer.onnx       # the denoiser
    forethought export --model models/pretrained/proposer-pushblocks-fast --out data/student.onnx  # the student's
    forethought export --model models/pretrained/dynamics-pushblocks --out data/dynamics.onnx      # the ensemble
    forethought export --model models/pretrained/wm-pushblocks-state --out data/wm.onnx --horizon 5

The folder's ``config.json`` ``type`` picks the graph: a proposer's one denoising step
(``proposer.onnx_denoiser``), the dynamics ensemble's whole chained rollout with all members in
one graph (``dynamics.onnx_ensemble``) or the world model's latent rollout
(``world_model.onnx_rollout``). Each file records the config and a fingerprint of the weights it
was made from, and the loaders refuse it for any other checkpoint. The command checks
onnxruntime against torch on random inputs: exit code 1 above ``--tol``, 2 for a bad folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

from forethought.models.onnx_session import OPSET, run_export

KINDS = ("diffusion_proposer", "dynamics_ensemble", "sigreg_world_model")
"""``config.json`` types that export."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``forethought export``."""
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("--model", type=Path, required=True,
                        help="a proposer, dynamics-ensemble or world-model checkpoint directory")
    parser.add_argument("--out", type=Path, required=True, help="output .onnx file (written atomically)")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    parser.add_argument("--tol", type=float, default=1e-4, help="largest allowed |torch - onnxruntime| (default 1e-4)")
    parser.add_argument("--horizon", type=int, help="world models only: action blocks per rollout")


def model_kind(directory: Path) -> str:
    """The ``type`` in ``directory/config.json``; ``FileNotFoundError``/``ValueError`` name the file."""
    path = directory / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {directory}: missing {path}")
    try:
        kind = json.loads(path.read_text()).get("type")
    except (ValueError, AttributeError) as e:
        raise ValueError(f"corrupt config {path}: {e}") from e
    if kind not in KINDS:
        raise ValueError(f"{path} has type {kind!r}: forethought export takes one of {list(KINDS)}")
    return kind


def exporter(args: argparse.Namespace) -> Callable[[], float]:
    """The export of ``args.model``: writes ``args.out`` and returns max |torch - onnxruntime|."""

    def export() -> float:
        kind = model_kind(args.model)
        if args.horizon is not None and kind != "sigreg_world_model":
            raise ValueError(f"--horizon only applies to world models; {args.model} is a {kind}")
        if kind == "diffusion_proposer":
            from forethought.models.proposer.modeling_proposer import DiffusionProposer
            from forethought.models.proposer.onnx_denoiser import OnnxDenoiser, export_denoiser, max_abs_difference

            proposer = DiffusionProposer.from_pretrained(args.model)
            export_denoiser(proposer, args.out, args.opset)
            return max_abs_difference(proposer, OnnxDenoiser(args.out, threads=1))
        if kind == "dynamics_ensemble":
            from forethought.models.dynamics import DynamicsEnsemble
            from forethought.models.dynamics import onnx_ensemble

            dynamics = DynamicsEnsemble.from_pretrained(args.model)
            onnx_ensemble.export_ensemble(dynamics, args.out, args.opset)
            return onnx_ensemble.max_abs_difference(dynamics, onnx_ensemble.OnnxEnsemble(args.out, threads=1))
        from forethought.models.world_model.configuration_world_model import DEFAULT_HORIZON
        from forethought.models.world_model.modeling_world_model import LatentWorldModel
        from forethought.models.world_model.onnx_rollout import OnnxRollout, export_rollout, max_abs_difference

        model = LatentWorldModel.from_pretrained(args.model)
        export_rollout(model, args.out, args.horizon or DEFAULT_HORIZON, args.opset)
        return max_abs_difference(model, OnnxRollout(args.out, threads=1))

    return export


def run(args: argparse.Namespace) -> int:
    """Run ``forethought export``."""
    return run_export(args, exporter(args))
