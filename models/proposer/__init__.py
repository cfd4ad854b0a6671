"""The diffusion action proposer: Diffusion Policy's conditional 1-D U-Net over action chunks.

``ProposerConfig`` (``configuration_proposer.py``), ``DiffusionProposer`` (``modeling_proposer.py``),
its normaliser and goal encoder (``processor_proposer.py``), ``forethought train proposer``
(``train_proposer.py``) and the denoiser's ONNX export (``onnx_denoiser.py``).
"""

from forethought.models.proposer.configuration_proposer import PRESETS, ProposerConfig
from forethought.models.proposer.modeling_proposer import DiffusionProposer
from forethought.models.proposer.processor_proposer import GoalEncoder, MinMaxNormalizer

__all__ = ["PRESETS", "DiffusionProposer", "GoalEncoder", "MinMaxNormalizer", "ProposerConfig"]
