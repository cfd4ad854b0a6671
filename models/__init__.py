"""Learned models and the control built on them.

One package per model, each with the same files (``configuration_X.py``, ``modeling_X.py``,
``processor_X.py``, ``train_X.py``):

- ``proposer/``: the diffusion action proposer (``DiffusionProposer``);
- ``dynamics/``: the learned dynamics ensemble (``DynamicsEnsemble``);
- ``world_model/``: the SIGReg latent world model (``LatentWorldModel``), its latent planners,
  surprise monitor and probe;
- ``control/``: the planners (SSR, CEM, MPPI), objectives and policies that use them.

What the models share sits here: ``configuration`` (the config base class and the preset
registry), ``checkpoint`` (``save_pretrained``/``from_pretrained``), ``stats_file`` (normaliser
statistics), ``training`` (the trainer), ``onnx_session`` (ONNX export and onnxruntime), and the
command lines ``cli_train``, ``cli_eval`` and ``cli_adapt`` with the evaluation harness
(``evaluation``).

The three proposer names below are imported on first use, so importing a light submodule does
not pull in torch and diffusers.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ProposerConfig": "forethought.models.proposer.configuration_proposer",
    "DiffusionProposer": "forethought.models.proposer.modeling_proposer",
    "MinMaxNormalizer": "forethought.models.proposer.processor_proposer",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
