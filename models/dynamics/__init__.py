"""The learned dynamics ensemble: K multi-step MLPs, batched in one pass, with training and adaptation.

``DynamicsConfig`` (``configuration_dynamics.py``), ``DynamicsEnsemble`` (``modeling_dynamics.py``),
``DynamicsNormalizer`` (``processor_dynamics.py``) and ``forethought train dynamics`` /
``forethought adapt`` (``train_dynamics.py``); ``metrics.py`` scores k-step prediction error.
"""

from forethought.models.dynamics.configuration_dynamics import PRESETS, DynamicsConfig, StateLayout, state_layout
from forethought.models.dynamics.modeling_dynamics import DynamicsEnsemble
from forethought.models.dynamics.processor_dynamics import DynamicsNormalizer

__all__ = ["PRESETS", "DynamicsConfig", "DynamicsEnsemble", "DynamicsNormalizer", "StateLayout", "state_layout"]
