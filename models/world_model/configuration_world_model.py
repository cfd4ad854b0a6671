"""Configuration of the SIGReg latent world model (LeWorldModel recipe), plus named presets.

The model (``modeling_world_model.LatentWorldModel``) encodes an observation (the task state or a
64x64 top-down render) into an embedding ``z[D]``, and a predictor maps the last ``history``
embeddings and one *action block* (``frameskip`` consecutive env actions) to the embedding
``frameskip`` env steps later. It is trained end to end on next-embedding MSE plus
``sigreg_weight`` times SIGReg of the encoder embeddings (``sigreg.py``), with no EMA target,
stop-gradient or decoder.
"""

from __future__ import annotations

from dataclasses import dataclass

from forethought.models.configuration import ModelConfig, Preset, PresetRegistry

DEFAULT_HORIZON = 5
"""Action blocks per latent plan (LeWorldModel's 5 blocks = 25 env steps at frameskip 5)."""
OBS_TYPES: tuple[str, ...] = ("state", "pixels")


@dataclass
class WorldModelConfig(ModelConfig):
    """Everything needed to rebuild a ``LatentWorldModel``; saved as its ``config.json``.

    Inputs:
        obs_type: ``"state"`` (``float32[obs_dim]``) or ``"pixels"`` (``uint8[image_size,
            image_size, 3]`` renders of the env's top-down camera).
        obs_dim: ``S``, width of a state observation (16 for PushBlocks); also the width of
            the task state a linear probe reads out, for both observation types.
        image_size: side of a square pixel observation (pixels only).
        action_dim: ``A``, width of one env action.
        action_low, action_high: the env's action box; actions are scaled to [-1, 1] with it.
        env_id: gymnasium id the training data came from (informational).

    Time:
        frameskip: env steps per model step; one action block holds ``frameskip`` actions.
        history: embeddings the predictor sees (the current one and ``history - 1`` earlier,
            ``frameskip`` env steps apart).
        num_frames: frames per training sub-trajectory (LeWM: 4); the predictor is trained
            frame-causally on the ``num_frames - 1`` next-embedding targets.

    Architecture:
        embed_dim: ``D``, the latent size.
        encoder_hidden: width of the state MLP, or of the fully connected layer after the CNN.
        cnn_channels: channels of the pixel encoder's stride-2 4x4 convolutions.
        projector_hidden: hidden width of the BatchNorm MLP projectors (encoder and predictor).
        predictor_hidden: width of the predictor's residual AdaLN-zero MLP blocks.
        predictor_blocks: number of those blocks.
        action_embed_dim: width of the action-block embedding that conditions every block.
        predictor_dropout: dropout inside the predictor blocks (LeWM found 0 hurts).

    Objective:
        sigreg_weight: lambda of ``loss = mse + lambda * SIGReg`` (LeWM configs: 0.09; 0 is the
            no-regulariser ablation, which collapses).
        rollout_weight: weight of an open-loop term: the predictor rolled out from a window's first
            frame over its ``num_frames - 1`` blocks, its own predictions fed back, against the
            encoded frames (0: teacher forcing only, as LeWM; issue #18's multi-step loss).
        state_weight: weight of a state-readout term: a linear head ``state_head`` (``D -> S``) reads
            the normalised task state from every encoded, teacher-forced and (with ``rollout_weight``)
            open-loop latent, its error scaled per dimension by the spread of one block's state change
            (``WorldModelProcessor.delta_scale``), so a block's motion weighs as much as the pusher's
            (0: no head, the LeWM objective; state observations only; issue #18).
        sigreg_slices, sigreg_knots, sigreg_t_max: SIGReg's random directions and quadrature.

    Contact features (issue #18; state observations with ``state_weight > 0`` only):
        contact_features: give the predictor relational contact features (``contact_feature_dim``
            of them), computed differentiably from ``state_head``'s readout of the current latent
            and the action block in env units (``LatentWorldModel.contact_inputs``): the planned
            displacement of the pusher, and for every object its position relative to the pusher,
            along- and cross-track in the frame of that displacement, the closest approach of the
            planned path (the pusher's position, then the block's ``frameskip`` targets), how deep
            the path cuts into the contact disc, and a quasi-static push estimate (how far, and
            which way, a pusher moving straight along the displacement would carry the object).
            They are concatenated to the predictor's input and also enter the predicted latent
            through a zero-initialised linear skip (``contact_skip``). False: no features, the
            model and its objective are exactly those without these fields.
        agent_xy: state indices of the pusher's ``(x, y)`` (metres).
        object_slots: ``(presence flag, x, y)`` state indices of every object (metres); an object's
            features are multiplied by its read-out presence flag clipped to [0, 1].
        contact_radius: centre distance at which the pusher touches an object (PushBlocks: block
            half side 0.02 + pusher radius 0.015).
    """

    # inputs
    obs_type: str = "state"
    obs_dim: int = 16
    image_size: int = 64
    action_dim: int = 2
    action_low: tuple[float, ...] = (-0.27, -0.27)
    action_high: tuple[float, ...] = (0.27, 0.27)
    env_id: str | None = None
    # time
    frameskip: int = 5
    history: int = 3
    num_frames: int = 4
    # architecture
    embed_dim: int = 32
    encoder_hidden: int = 256
    cnn_channels: tuple[int, ...] = (16, 32, 64, 128)
    projector_hidden: int = 256
    predictor_hidden: int = 128
    predictor_blocks: int = 2
    action_embed_dim: int = 64
    predictor_dropout: float = 0.1
    # objective
    sigreg_weight: float = 0.09
    rollout_weight: float = 0.0
    state_weight: float = 0.0
    sigreg_slices: int = 256
    sigreg_knots: int = 17
    sigreg_t_max: float = 3.0
    # contact features
    contact_features: bool = False
    agent_xy: tuple[int, ...] = (0, 1)
    object_slots: tuple[tuple[int, ...], ...] = ((4, 5, 6), (8, 9, 10), (12, 13, 14))
    contact_radius: float = 0.035

    config_type = "sigreg_world_model"
    model_name = "world-model"

    def __post_init__(self) -> None:
        self._as_tuples("cnn_channels", "agent_xy", "object_slots")
        self.object_slots = tuple(tuple(s) if isinstance(s, (list, tuple)) else s for s in self.object_slots)
        if self.obs_type not in OBS_TYPES:
            raise ValueError(f"obs_type {self.obs_type!r} is not one of {list(OBS_TYPES)}")
        self._check_positive_ints("obs_dim", "image_size", "action_dim", "frameskip", "history", "embed_dim",
                                  "encoder_hidden", "projector_hidden", "predictor_hidden", "predictor_blocks",
                                  "action_embed_dim", "sigreg_slices")
        if not isinstance(self.num_frames, int) or self.num_frames < 2:
            raise ValueError(f"num_frames must be an integer >= 2 (a frame and its successor), got {self.num_frames!r}")
        if self.history > self.num_frames - 1:
            raise ValueError(f"history ({self.history}) must be <= num_frames - 1 ({self.num_frames - 1}): training "
                             "sub-trajectories must hold a full history before the last target")
        self._check_action_box()
        if self.obs_type == "pixels":
            if not self.cnn_channels or any(not isinstance(c, int) or c < 1 for c in self.cnn_channels):
                raise ValueError(f"cnn_channels must be positive integers, got {self.cnn_channels}")
            if self.image_size % 2 ** len(self.cnn_channels):
                raise ValueError(f"image_size ({self.image_size}) must be divisible by 2 ** len(cnn_channels) = "
                                 f"{2 ** len(self.cnn_channels)}: every convolution halves the image")
        if not 0.0 <= self.predictor_dropout < 1.0:
            raise ValueError(f"predictor_dropout must lie in [0, 1), got {self.predictor_dropout}")
        if not self.sigreg_weight >= 0.0:
            raise ValueError(f"sigreg_weight must be >= 0 (0 disables the regulariser), got {self.sigreg_weight}")
        if not self.rollout_weight >= 0.0:
            raise ValueError(f"rollout_weight must be >= 0 (0: teacher forcing only), got {self.rollout_weight}")
        if not self.state_weight >= 0.0:
            raise ValueError(f"state_weight must be >= 0 (0: no state-readout term), got {self.state_weight}")
        if self.state_weight > 0 and self.obs_type == "pixels":
            raise ValueError("state_weight > 0 needs the task state of every frame, which pixel batches do not carry; "
                             "use state_weight 0 with obs_type 'pixels'")
        if self.contact_features:
            self._check_contact_features()
        if self.sigreg_knots < 2 or not self.sigreg_t_max > 0:
            raise ValueError(f"sigreg_knots must be >= 2 and sigreg_t_max > 0, got {self.sigreg_knots}, "
                             f"{self.sigreg_t_max}")

    def _check_contact_features(self) -> None:
        if not isinstance(self.contact_features, bool):
            raise ValueError(f"contact_features must be true or false, got {self.contact_features!r}")
        if not self.state_weight > 0:
            raise ValueError("contact_features reads the state with state_head, which exists only with state_weight > 0")
        if self.action_dim != 2:
            raise ValueError(f"contact_features treats an action as a planar (x, y) pusher target, but action_dim is "
                             f"{self.action_dim}")
        if len(self.agent_xy) != 2 or not self.object_slots or any(
                not isinstance(s, tuple) or len(s) != 3 for s in self.object_slots):
            raise ValueError(f"agent_xy must be (x, y) and object_slots non-empty (flag, x, y) triples, got "
                             f"{self.agent_xy} and {self.object_slots}")
        dims = [*self.agent_xy, *(d for s in self.object_slots for d in s)]
        if any(not isinstance(d, int) or isinstance(d, bool) or not 0 <= d < self.obs_dim for d in dims):
            raise ValueError(f"agent_xy and object_slots must index the state (obs_dim {self.obs_dim}), got "
                             f"{self.agent_xy} and {self.object_slots}")
        if not self.contact_radius > 0:
            raise ValueError(f"contact_radius must be > 0 (metres), got {self.contact_radius}")

    @property
    def contact_feature_dim(self) -> int:
        """Width of the contact features: 3 for the planned displacement (x, y, length), 10 per object
        (``LatentWorldModel.contact_inputs``); 0 without ``contact_features``."""
        return 3 + 10 * len(self.object_slots) if self.contact_features else 0

    @property
    def block_dim(self) -> int:
        """Width of one flattened action block: ``frameskip * action_dim``."""
        return self.frameskip * self.action_dim

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """Shape of one observation: ``(S,)`` or ``(H, W, 3)``."""
        return (self.obs_dim,) if self.obs_type == "state" else (self.image_size, self.image_size, 3)


_TRAIN = {"ema": False, "weight_decay": 1e-3, "grad_clip_norm": 1.0, "betas": (0.9, 0.999)}
"""LeWM's optimiser settings (AdamW, wd 1e-3, clip 1.0); no weight EMA (BatchNorm statistics would not follow it)."""

_STATE = Preset(
    "PushBlocks task state (S = 16), D = 32, about 0.3 M parameters; a few minutes on 2 cores",
    model={"obs_type": "state", "embed_dim": 32},
    train={**_TRAIN, "steps": 4000, "batch_size": 256, "lr": 1e-3, "warmup_steps": 200, "checkpoint_every": 1000},
)

PRESETS = PresetRegistry("world-model", {
    "tiny": Preset(
        "seconds-long state run for tests and smoke checks",
        model={"obs_type": "state", "embed_dim": 16, "encoder_hidden": 64, "projector_hidden": 64,
               "predictor_hidden": 64, "predictor_blocks": 1, "action_embed_dim": 32, "sigreg_slices": 64},
        train={**_TRAIN, "steps": 150, "batch_size": 64, "lr": 3e-3, "warmup_steps": 10, "checkpoint_every": 50,
               "log_every": 25},
    ),
    "state": _STATE,
    "state-contact": Preset(
        "the state preset with 6-frame windows (5 blocks, a plan's horizon) and an open-loop term of weight 1: "
        "trained for contact-rich data (issue #18)",
        model={**_STATE.model, "num_frames": 6, "rollout_weight": 1.0}, train=_STATE.train),
    "state-contact-wide": Preset(
        "state-contact with a wider, deeper predictor (width 256, 3 blocks): the capacity check of issue #18",
        model={**_STATE.model, "num_frames": 6, "rollout_weight": 1.0, "predictor_hidden": 256,
               "predictor_blocks": 3}, train=_STATE.train),
    "state-contact-lowreg": Preset(
        "state-contact with SIGReg weight 0.02 (LeWM: Push-T holds above 80 % for 0.01-0.2)",
        model={**_STATE.model, "num_frames": 6, "rollout_weight": 1.0, "sigreg_weight": 0.02}, train=_STATE.train),
    "state-contact-readout": Preset(
        "state-contact plus a state-readout term of weight 1 (block motion weighted per dimension as the D-MPC "
        "dynamics weigh state deltas; issue #18)",
        model={**_STATE.model, "num_frames": 6, "rollout_weight": 1.0, "state_weight": 1.0}, train=_STATE.train),
    "state-contact-relational": Preset(
        "state-contact-readout plus relational contact features from the read-out state and the action block, "
        "into the predictor's input and a linear skip to its output (issue #18: a predictor told about contact)",
        model={**_STATE.model, "num_frames": 6, "rollout_weight": 1.0, "state_weight": 1.0, "contact_features": True},
        train=_STATE.train),
    "state-noreg": Preset("ablation: the state preset without SIGReg (sigreg_weight 0); expected to collapse",
                          model={**_STATE.model, "sigreg_weight": 0.0}, train=_STATE.train),
    "pixels": Preset(
        "64x64 top-down renders, 4-layer CNN, D = 64, about 1 M parameters; 7 minutes on 2 cores; undertrained (see its README)",
        model={"obs_type": "pixels", "embed_dim": 64},
        train={**_TRAIN, "steps": 1500, "batch_size": 32, "lr": 1e-3, "warmup_steps": 100, "checkpoint_every": 500},
    ),
    "gpu-pixels": Preset(
        "wider pixel model for a GPU host (D = 192, LeWM's width); too slow to train on 2 cores",
        model={"obs_type": "pixels", "embed_dim": 192, "encoder_hidden": 512, "cnn_channels": [32, 64, 128, 256],
               "projector_hidden": 2048, "predictor_hidden": 1024, "predictor_blocks": 4, "action_embed_dim": 256,
               "sigreg_slices": 1024},
        train={**_TRAIN, "steps": 30_000, "batch_size": 128, "lr": 5e-4, "warmup_steps": 1000,
               "checkpoint_every": 5000},
    ),
})
