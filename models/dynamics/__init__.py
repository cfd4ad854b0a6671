"""The learned dynamics ensemble: K multi-step MLPs, batched in one pass, with training and adaptation."""

from forethought.models.dynamics.configuration_dynamics import PRESETS, StateLayout, state_layout
from forethought.models.dynamics.modeling_dynamics import DynamicsEnsemble
from forethought.models.dynamics.processor_dynamics import DynamicsNormalizer

__all__ = ["PRESETS", "DynamicsEnsemble", "DynamicsNormalizer", "StateLayout", "state_layout"]
