"""Learned models: the diffusion proposer (and, later, dynamics, world model, planners), the shared
trainer (``training``) and the shared evaluation harness (``evaluation``).

The three proposer names are imported on first use, so importing a light submodule does not pull
in torch and diffusers.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ProposerConfig": "forethought.models.configuration_proposer",
    "DiffusionProposer": "forethought.models.modeling_proposer",
    "MinMaxNormalizer": "forethought.models.processor_proposer",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
