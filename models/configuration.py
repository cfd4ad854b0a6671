"""What every model's configuration shares: the ``config.json`` round trip, field checks and presets.

Each model has one typed dataclass config (``ProposerConfig``, ``DynamicsConfig``,
``WorldModelConfig``) that subclasses ``ModelConfig``: it is saved as the model's
``config.json``, tagged with the config's ``type``, and read back with ``from_dict``, which
refuses unknown keys. Each model also names its training recipes in one ``PresetRegistry`` of
``Preset`` entries, which ``forethought train MODEL --config NAME`` looks up.

This module is light (no torch), so configurations import without the models.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Mapping, TypeVar

C = TypeVar("C", bound="ModelConfig")


@dataclass
class ModelConfig:
    """Base of the model configs: JSON round trip and the checks their ``__post_init__`` share.

    Subclasses set ``config_type`` (the ``type`` tag in ``config.json``) and ``model_name`` (how
    messages and ``forethought train`` name the model).
    """

    config_type: ClassVar[str]
    model_name: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists), tagged with ``type``."""
        return json.loads(json.dumps({"type": self.config_type, **asdict(self)}))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        """Inverse of ``to_dict``; a non-object, unknown keys or a different ``type`` raise ``ValueError``."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a {cls.model_name} config must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        if "_diffusers_version" in data:
            raise ValueError(f"this is a diffusers-format {data.get('_class_name')} config: convert its folder with "
                             "`python scripts/convert_checkpoints.py DIR`")
        kind = data.pop("type", cls.config_type)
        if kind != cls.config_type:
            raise ValueError(f"config type is {kind!r}, expected {cls.config_type!r}: this is not a {cls.model_name} "
                             "config")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.model_name} config keys {unknown}; valid keys are {sorted(known)}")
        return cls(**data)

    # ---- checks for __post_init__ ------------------------------------------------------------

    def _as_tuples(self, *names: str) -> None:
        """Store each list field of ``names`` as a tuple; a string or a scalar raises ``ValueError``."""
        for name in names:
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise ValueError(f"{name} must be a list, got {value!r}")
            setattr(self, name, tuple(value))

    def _check_positive_ints(self, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    def _check_action_box(self) -> None:
        """``action_low``/``action_high`` as float tuples of ``action_dim`` entries, low below high."""
        self._as_tuples("action_low", "action_high")
        self.action_low = tuple(float(v) for v in self.action_low)
        self.action_high = tuple(float(v) for v in self.action_high)
        if len(self.action_low) != self.action_dim or len(self.action_high) != self.action_dim:
            raise ValueError(f"action_low/action_high need action_dim = {self.action_dim} entries, got "
                             f"{len(self.action_low)}/{len(self.action_high)}")
        if any(lo >= hi for lo, hi in zip(self.action_low, self.action_high)):
            raise ValueError(f"action_low {self.action_low} must be below action_high {self.action_high} entrywise")


@dataclass(frozen=True)
class Preset:
    """A named recipe: model settings that the data does not fix, and training settings (``TrainConfig``)."""

    description: str
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)


class PresetRegistry(dict[str, Preset]):
    """The presets of one model by name; ``lookup`` refuses an unknown name with the valid ones."""

    def __init__(self, model_name: str, presets: Mapping[str, Preset]) -> None:
        super().__init__(presets)
        self.model_name = model_name

    def lookup(self, name: str) -> Preset:
        """The preset called ``name``, else ``ValueError`` listing the valid names."""
        if name not in self:
            raise ValueError(f"unknown {self.model_name} config {name!r}: valid configs are {sorted(self)}")
        return self[name]
