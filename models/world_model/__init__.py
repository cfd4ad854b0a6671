"""The SIGReg latent world model (LeJEPA / LeWorldModel): SIGReg, model, latent planners, surprise, probe."""

from forethought.models.world_model.configuration_world_model import PRESETS, WorldModelConfig
from forethought.models.world_model.modeling_world_model import LatentWorldModel
from forethought.models.world_model.processor_world_model import WorldModelProcessor
from forethought.models.world_model.sigreg import SIGReg, collapse_diagnostics, sigreg

__all__ = ["PRESETS", "LatentWorldModel", "SIGReg", "WorldModelConfig", "WorldModelProcessor", "collapse_diagnostics",
           "sigreg"]
