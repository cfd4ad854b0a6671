"""One ``save_pretrained`` / ``from_pretrained`` for every model: a checkpoint folder and its errors.

A checkpoint is a folder::

    config.json               the model's ModelConfig (configuration.py), tagged with its type
    model.safetensors         the weights (and any buffers the model saves, e.g. the world
                              model's normalisation statistics)
    normalizer.safetensors    normalisation statistics (stats_file.py), for models that keep them
                              beside the weights (proposer, dynamics)

Every file is written atomically, and every load error names the file: a missing folder or file
(``FileNotFoundError``), or a corrupt config, corrupt weights, weights that do not match the
config, or NaN/inf weights (``ValueError``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from forethought.files import atomic_path
from forethought.models.configuration import ModelConfig
from forethought.models.stats_file import NORMALIZER_FILE

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
M = TypeVar("M", bound="PretrainedModel")


class StatsNormalizer(Protocol):
    """A normaliser kept in ``normalizer.safetensors`` (``MinMaxNormalizer``, ``DynamicsNormalizer``)."""

    def save(self, path: str | os.PathLike[str]) -> None: ...

    @classmethod
    def load(cls, path: str | os.PathLike[str], config: Any) -> StatsNormalizer: ...


class PretrainedModel(nn.Module):
    """An ``nn.Module`` built as ``cls(config, normalizer)`` and persisted as a checkpoint folder.

    Subclasses set:
        config_class: their ``ModelConfig`` subclass.
        normalizer_class: the ``StatsNormalizer`` kept in ``normalizer.safetensors``, or ``None``
            for a model whose statistics are buffers in its weights; with one, the model holds
            it as ``self.normalizer``.
        pretrained_prefix: the prefix of its shipped folders in ``models/pretrained/``.
    and may override ``weights_module`` when only part of the model is saved.
    """

    config_class: ClassVar[type[ModelConfig]]
    normalizer_class: ClassVar[type[StatsNormalizer] | None] = None
    pretrained_prefix: ClassVar[str]
    config: ModelConfig

    def weights_module(self) -> nn.Module:
        """The module whose ``state_dict`` is ``model.safetensors`` (the whole model by default)."""
        return self

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.weights_module().parameters())

    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        """Write ``config.json``, ``model.safetensors`` and the normaliser's statistics into ``directory``."""
        normalizer = getattr(self, "normalizer", None)
        if self.normalizer_class is not None and normalizer is None:
            raise ValueError(f"cannot save a {type(self).__name__} without its normaliser")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / CONFIG_FILE) as tmp:
            tmp.write_text(self.config.to_json())
        weights = {k: v.detach().cpu().contiguous() for k, v in self.weights_module().state_dict().items()}
        with atomic_path(directory / WEIGHTS_FILE) as tmp:
            save_file(weights, str(tmp), metadata={"format": "pt"})
        if self.normalizer_class is not None:
            normalizer.save(directory / NORMALIZER_FILE)

    @classmethod
    def from_pretrained(cls: type[M], directory: str | os.PathLike[str], device: str | torch.device = "cpu") -> M:
        """Load a model saved by ``save_pretrained``, in eval mode; every error names the offending file."""
        name = cls.config_class.model_name
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"no {name} checkpoint at {directory}: the directory does not exist (train one with "
                                    f"`forethought train {name}` or use models/pretrained/{cls.pretrained_prefix}-*)")
        config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(f"missing {path.name} in {name} checkpoint {directory}: expected {path}")
        try:
            config = cls.config_class.from_dict(json.loads(config_path.read_text()))
        except (ValueError, TypeError) as e:
            raise ValueError(f"corrupt or invalid {name} config {config_path}: {e}") from e
        normalizer = None
        if cls.normalizer_class is not None:
            normalizer = cls.normalizer_class.load(directory / NORMALIZER_FILE, config)
        model = cls(config, normalizer)
        try:
            state = load_file(str(weights_path))
        except (SafetensorError, OSError, ValueError) as e:
            raise ValueError(f"corrupt {name} weights {weights_path}: {e}") from e
        try:
            model.weights_module().load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ValueError(f"{name} weights {weights_path} do not match {config_path}: {e}") from e
        bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise ValueError(f"{name} weights {weights_path} hold NaN or inf in {bad[:3]}: the checkpoint is corrupt")
        return model.to(device).eval()
