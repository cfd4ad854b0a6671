"""Normalisation statistics beside a checkpoint's weights: one safetensors file, written atomically,
read back with errors that name the file.

Used by the proposer's min-max normaliser and the dynamics ensemble's mean/std normaliser; each
checks its own keys and shapes through the ``build`` callable it passes to ``read_stats``. The
world model keeps its statistics (state mean/std, action box) as buffers of the model instead,
so they travel inside ``model.safetensors`` and every copy of its ``state_dict`` (the ONNX export
clones the model that way).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from forethought.files import atomic_path

NORMALIZER_FILE = "normalizer.safetensors"
"""The statistics' file name inside a checkpoint folder (``checkpoint.py``)."""
T = TypeVar("T")


def save_stats(path: str | os.PathLike[str], stats: Mapping[str, torch.Tensor], fmt: str) -> None:
    """Write ``stats`` to the safetensors file ``path`` (atomically), tagged with format ``fmt``."""
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in stats.items()}, str(tmp), metadata={"format": fmt})


def read_stats(path: str | os.PathLike[str], owner: str, build: Callable[[dict[str, torch.Tensor]], T]) -> T:
    """``build(stats)`` of the statistics in ``path``, kept beside a ``owner`` checkpoint's weights.

    Raises FileNotFoundError for a missing file and ValueError for a corrupt one or for statistics
    that ``build`` rejects; every message names ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing normaliser statistics {path}: a {owner} checkpoint keeps them beside its "
                                "weights (re-save it with save_pretrained or retrain)")
    try:
        stats = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"corrupt normaliser statistics {path}: {e}") from e
    try:
        return build(stats)
    except ValueError as e:
        raise ValueError(f"invalid normaliser statistics {path}: {e}") from e
