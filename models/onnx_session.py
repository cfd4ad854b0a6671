"""What the ONNX exports share: the opset, a weights fingerprint, writing a traced graph with its
metadata, opening an onnxruntime session over it and the export command's skeleton.

``proposer.onnx_denoiser`` (the proposer's denoiser) and ``world_model.onnx_rollout`` (the latent
rollout) both record the config and a fingerprint of the weights they were made from, and open
their files here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from forethought.files import atomic_path

MIN_SHARD_ROWS = 8
"""A batch is split over ``ExportedGraph``'s CPU sessions only into parts of at least this many rows."""
OPSET = 18
"""ONNX opset of the exports (18 has ``Mish`` and ``GroupNormalization``)."""
META_WEIGHTS = "forethought.weights_sha256"
"""Metadata key of every export: the sha256 of the weights it was made from (``weights_fingerprint``)."""
CUDA_PROVIDERS = ["CUDAExecutionProvider", "CPUExecutionProvider"]
CPU_PROVIDERS = ["CPUExecutionProvider"]
log = logging.getLogger(__name__)


def weights_fingerprint(module: nn.Module, extra: Mapping[str, Tensor] | None = None) -> str:
    """sha256 over a module's parameter and buffer names, shapes and float32 bytes (and those of
    ``extra``, e.g. a normaliser's statistics kept outside the module)."""
    h = hashlib.sha256()
    for name, value in sorted({**module.state_dict(), **{f"extra.{k}": v for k, v in (extra or {}).items()}}.items()):
        t = value.detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def write_graph(graph: nn.Module, inputs: Sequence[Tensor], path: Path, opset: int, input_names: Sequence[str],
                output_names: Sequence[str], batch_axis: str, metadata: Mapping[str, str],
                axis_names: Mapping[str, str] | None = None) -> None:
    """Trace ``graph`` on ``inputs`` into the ONNX file ``path`` (atomically), checked by ``onnx.checker``.

    Uses the TorchScript-based exporter (``dynamo=False``): it handles Python control flow by
    tracing and needs no network access. Axis 0 of every input and output is dynamic, named
    ``batch_axis`` unless ``axis_names`` names it for that input or output; ``metadata`` is stored
    as the file's ``metadata_props``.
    """
    axes = {k: {0: (axis_names or {}).get(k, batch_axis)} for k in [*input_names, *output_names]}
    import onnx

    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        torch.onnx.export(
            graph, tuple(inputs), str(tmp), dynamo=False, opset_version=opset, input_names=list(input_names),
            output_names=list(output_names), dynamic_axes=axes,
        )
        proto = onnx.load(str(tmp))
        for key, value in metadata.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))


def providers_for(device: str | torch.device | None) -> list[str]:
    """Execution providers for a torch device name: CUDA then CPU for ``cuda[:i]``, else CPU only."""
    return list(CUDA_PROVIDERS if torch.device(device or "cpu").type == "cuda" else CPU_PROVIDERS)


def open_session(path: Path, threads: int | None, providers: list[str] | None, what: str, hint: str) -> Any:
    """An onnxruntime session over the ONNX file ``path`` (a ``what``, e.g. "ONNX denoiser").

    ``threads``: intra-op threads (default ``torch.get_num_threads()``); ``providers``: execution
    providers (default CPU). Tuned for a small CPU (the replan's graphs are small, so one
    sequential inter-op thread and ``threads`` intra-op threads that do not spin between calls,
    which would starve the sim and the other nodes on a 2-core machine). With
    ``CUDAExecutionProvider`` it first calls ``onnxruntime.preload_dlls()`` (the ``gpu`` extra's
    CUDA/cuDNN wheels) and logs a warning when onnxruntime fell back to the CPU. Raises
    ``FileNotFoundError`` (with ``hint``, the export command) for a missing file, ``ValueError``
    for one onnxruntime cannot read, ``ImportError`` without onnxruntime.
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
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = list(providers or CPU_PROVIDERS)
    if "CUDAExecutionProvider" in providers and hasattr(ort, "preload_dlls"):
        ort.preload_dlls()
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types for unreadable models
        raise ValueError(f"corrupt {what} {path}: {type(e).__name__}: {e}") from e
    if "CUDAExecutionProvider" in providers and "CUDAExecutionProvider" not in session.get_providers():
        log.warning("%s %s: CUDAExecutionProvider is unavailable (onnxruntime %s offers %s); running on the CPU",
                    what, path, ort.__version__, ort.get_available_providers())
    return session


class ExportedGraph:
    """An onnxruntime session over a file one of the exports wrote, and the metadata it recorded.

    Subclasses set ``what`` (how errors name the file, e.g. "ONNX denoiser"), ``writer`` (the
    export function), ``hint`` (the export command), ``config_key`` (the metadata key of the
    model's config JSON, read into ``config``) and ``extra_keys`` (any other metadata the file must
    hold). ``weights_sha256`` is the recorded weights fingerprint (``META_WEIGHTS``).

    Args:
        path: the ``.onnx`` file.
        threads: threads per call (default: ``torch.get_num_threads()``). On the CPU provider that
            many single-threaded sessions split each batch between them (``run_batch``): with
            intra-op threads that do not spin, the many small ops of these graphs gain nothing
            from a second thread (BENCHMARKS.md, "Fast D-MPC"). On CUDA, one session with that
            many intra-op threads.
        providers: onnxruntime execution providers (default: CPU).
    """

    what: ClassVar[str]
    writer: ClassVar[str]
    hint: ClassVar[str]
    config_key: ClassVar[str]
    extra_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None,
                 providers: list[str] | None = None) -> None:
        self.path = Path(path)
        n = torch.get_num_threads() if threads is None else int(threads)
        shards = 1 if "CUDAExecutionProvider" in (providers or CPU_PROVIDERS) else max(n, 1)
        self.sessions = [open_session(self.path, threads if shards == 1 else 1, providers, self.what, self.hint)
                         for _ in range(shards)]
        self.session = self.sessions[0]
        self._pool = ThreadPoolExecutor(shards - 1, thread_name_prefix="onnx-shard") if shards > 1 else None
        self.metadata: dict[str, str] = self.session.get_modelmeta().custom_metadata_map
        if not {self.config_key, META_WEIGHTS, *self.extra_keys} <= set(self.metadata):
            raise ValueError(f"{self.path} was not written by forethought's {self.writer} (no {self.what} metadata)")
        self.config: dict[str, Any] = json.loads(self.metadata[self.config_key])
        self.weights_sha256 = self.metadata[META_WEIGHTS]

    def run_batch(self, outputs: list[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """``session.run`` with the batch split over the CPU sessions, one thread each.

        The batch is axis 0 of the largest feed; feeds with another axis-0 length (one shared
        conditioning row) go to every shard whole. Rows are computed independently, so the
        result equals one session's (``tests/test_onnx_export.py``).
        """
        batch = max(len(v) for v in feeds.values())
        shards = min(len(self.sessions), batch // MIN_SHARD_ROWS)
        if shards <= 1:
            return self.session.run(outputs, dict(feeds))
        bounds = np.linspace(0, batch, shards + 1).round().astype(int)
        parts = [{k: v[lo:hi] if len(v) == batch else v for k, v in feeds.items()} for lo, hi in zip(bounds[:-1], bounds[1:])]
        futures = [self._pool.submit(s.run, outputs, p) for s, p in zip(self.sessions[1:], parts[1:])]
        first = self.session.run(outputs, parts[0])
        rest = [f.result() for f in futures]
        return [np.concatenate([out, *(r[i] for r in rest)]) for i, out in enumerate(first)]


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
