"""What the ONNX exports share: the opset, a weights fingerprint, opening an onnxruntime session and
the export command's skeleton.

``onnx_export`` (the proposer's denoiser) and ``world_model.onnx_rollout`` (the latent rollout)
both record a fingerprint of the weights they were made from and open their files here.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

OPSET = 18
"""ONNX opset of the exports (18 has ``Mish`` and ``GroupNormalization``)."""


def weights_fingerprint(module: nn.Module) -> str:
    """sha256 over a module's parameter and buffer names, shapes and float32 bytes."""
    h = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        t = value.detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def open_session(path: Path, threads: int | None, providers: list[str] | None, what: str, hint: str) -> Any:
    """An onnxruntime session over the ONNX file ``path`` (a ``what``, e.g. "ONNX denoiser").

    ``threads``: intra-op threads (default ``torch.get_num_threads()``); ``providers``: execution
    providers (default CPU). Raises ``FileNotFoundError`` (with ``hint``, the export command) for a
    missing file, ``ValueError`` for one onnxruntime cannot read, ``ImportError`` without onnxruntime.
    """
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ImportError(
            "the ONNX backend needs onnxruntime: pip install -e '.[cpu]' (or '.[gpu]' on a CUDA host)"
        ) from e
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}: export one with {hint}")
    n = torch.get_num_threads() if threads is None else int(threads)
    if n < 1:
        raise ValueError(f"onnxruntime threads must be >= 1, got {threads!r}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = n
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for unreadable models
        raise ValueError(f"corrupt {what} {path}: {type(e).__name__}: {e}") from e


def export_parser(description: str, model_help: str) -> argparse.ArgumentParser:
    """The export command's arguments: ``--model``, ``--out``, ``--opset`` and ``--tol``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", type=Path, required=True, help=model_help)
    parser.add_argument("--out", type=Path, required=True, help="output .onnx file (written atomically)")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    parser.add_argument("--tol", type=float, default=1e-4, help="largest allowed |torch - onnxruntime| (default 1e-4)")
    return parser


def run_export(args: argparse.Namespace, export: Callable[[], float], detail: str = "") -> int:
    """Run ``export`` (it writes ``args.out`` and returns the largest |torch - onnxruntime| on random
    inputs) on one thread and report it: exit code 0, 1 above ``--tol``, 2 for a bad input."""
    torch.set_num_threads(1)
    try:
        diff = export()
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"exported {args.model} -> {args.out} ({args.out.stat().st_size / 1e6:.2f} MB{detail}, opset {args.opset}); "
          f"max |torch - onnxruntime| = {diff:.2e} on random inputs")
    if not diff <= args.tol:
        print(f"error: onnxruntime differs from torch by {diff:.2e} > --tol {args.tol:.0e}", file=sys.stderr)
        return 1
    return 0
