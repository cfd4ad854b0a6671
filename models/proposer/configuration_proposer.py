"""Configuration of the diffusion action proposer, plus named presets for ``forethought train``.

The proposer is Diffusion Policy's conditional 1-D U-Net (Chi et al. 2023) over action chunks,
as LeRobot packages it: ``ProposerConfig`` (this file), ``DiffusionProposer``
(``modeling_proposer.py``) and the normaliser and goal encoder (``processor_proposer.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forethought.models.configuration import ModelConfig, Preset, PresetRegistry
from forethought.sim import PUSH_BLOCKS_ID, REACHER_ID
from forethought.sim.scene import BLOCK_NAMES, REGION_NAMES, REGIONS

BETA_SCHEDULES: tuple[str, ...] = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTION_TYPES: tuple[str, ...] = ("epsilon", "sample")
TIMESTEP_SPACINGS: tuple[str, ...] = ("leading", "trailing", "linspace")
UNET_FIELDS: tuple[str, ...] = ("down_dims", "kernel_size", "n_groups", "diffusion_step_embed_dim")
"""Config fields that are ``ConditionalUnet1D`` arguments of the same name."""
SCHEDULER_FIELDS: tuple[str, ...] = ("num_train_timesteps", "beta_schedule", "prediction_type", "clip_sample",
                                     "clip_sample_range", "timestep_spacing")
"""Config fields that are diffusers scheduler arguments of the same name."""


@dataclass
class ProposerConfig(ModelConfig):
    """Everything needed to rebuild a ``DiffusionProposer``; saved as its ``config.json``.

    Inputs and outputs:
        obs_dim: ``S``, width of one observation (16 for PushBlocks, 10 for Reacher-v5).
        action_dim: ``A``, width of one action.
        action_low, action_high: the env's action box (``A`` floats each); proposals are
            clamped to it after un-normalisation.
        n_obs_steps: observations the model is conditioned on, oldest first (Diffusion Policy's
            ``T_o``).
        horizon: ``F``, actions per proposed chunk ``actions[n, F, A]``; the chunk starts at the
            current step (``a[t .. t+F-1]``), as MPC needs.
        n_action_steps: actions of a chunk that ``select_action`` executes before it proposes
            again (``T_a``); at most ``horizon``.
        env_id: the gymnasium id the training data came from (informational; evaluation warns
            when it differs).

    Goal (the active plan step, see ``forethought.sim.scene``):
        use_goal: whether the model takes a goal at all.
        goal_skills, goal_objects, goal_regions: the vocabulary of the one-hot goal encoding.
        goal_region_xy: the centre ``[x, y]`` of each of ``goal_regions``; a region target is
            encoded by its one-hot and its centre, so the model sees the geometry directly.
        goal_dropout: probability, per training sample, of replacing the goal with "no goal",
            so one model serves goal-directed policies and broad unconditional proposals.

    Architecture (``ConditionalUnet1D``):
        down_dims: channels of each U-Net level; the chunk is halved ``len(down_dims) - 1``
            times, so ``horizon`` must be divisible by ``2 ** (len(down_dims) - 1)``.
        kernel_size: odd temporal kernel of every convolution.
        n_groups: GroupNorm groups; divides every entry of ``down_dims``.
        diffusion_step_embed_dim: width of the sinusoidal timestep embedding.

    Scheduler (diffusers ``DDPMScheduler`` for training, ``DDIMScheduler`` for sampling):
        num_train_timesteps, beta_schedule, prediction_type, clip_sample, clip_sample_range,
        timestep_spacing: passed to the scheduler unchanged. Actions are min-max normalised to
        [-1, 1], so ``clip_sample_range`` must be at least 1 or clipping would cut real actions.
        ``timestep_spacing="trailing"`` starts few-step DDIM sampling at the last train step
        (pure noise) rather than part way.

    Inference:
        num_inference_steps: default DDIM steps of ``propose``; at most ``num_train_timesteps``.
    """

    # inputs / outputs
    obs_dim: int = 16
    action_dim: int = 2
    action_low: tuple[float, ...] = (-0.27, -0.27)
    action_high: tuple[float, ...] = (0.27, 0.27)
    n_obs_steps: int = 2
    horizon: int = 16
    n_action_steps: int = 8
    env_id: str | None = None
    # goal
    use_goal: bool = True
    goal_skills: tuple[str, ...] = ("push", "reach")
    goal_objects: tuple[str, ...] = BLOCK_NAMES
    goal_regions: tuple[str, ...] = REGION_NAMES
    goal_region_xy: tuple[tuple[float, float], ...] = tuple(REGIONS[r].center for r in REGION_NAMES)
    goal_dropout: float = 0.2
    # architecture
    down_dims: tuple[int, ...] = (64, 128, 256)
    kernel_size: int = 5
    n_groups: int = 8
    diffusion_step_embed_dim: int = 64
    # scheduler
    num_train_timesteps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "epsilon"
    clip_sample: bool = True
    clip_sample_range: float = 1.0
    timestep_spacing: str = "trailing"
    # inference
    num_inference_steps: int = 10

    config_type = "diffusion_proposer"
    model_name = "proposer"

    def __post_init__(self) -> None:
        self._as_tuples("goal_skills", "goal_objects", "goal_regions", "down_dims")
        try:
            self.goal_region_xy = tuple((float(x), float(y)) for x, y in self.goal_region_xy)
        except (TypeError, ValueError):
            raise ValueError(f"goal_region_xy must be a list of [x, y] pairs, got {self.goal_region_xy!r}") from None
        if len(self.goal_region_xy) != len(self.goal_regions):
            raise ValueError(
                f"goal_region_xy has {len(self.goal_region_xy)} centres for {len(self.goal_regions)} goal_regions: "
                "give one [x, y] per region"
            )
        self._check_positive_ints("obs_dim", "action_dim", "n_obs_steps", "horizon", "n_action_steps", "kernel_size",
                                  "n_groups", "diffusion_step_embed_dim", "num_train_timesteps", "num_inference_steps")
        if self.n_action_steps > self.horizon:
            raise ValueError(
                f"n_action_steps ({self.n_action_steps}) must be <= horizon ({self.horizon}): a chunk cannot execute "
                "more actions than it holds"
            )
        self._check_action_box()
        if not self.down_dims or any(not isinstance(d, int) or d < 1 for d in self.down_dims):
            raise ValueError(f"down_dims must be positive integers, got {self.down_dims}")
        factor = 2 ** (len(self.down_dims) - 1)
        if self.horizon % factor:
            raise ValueError(
                f"horizon ({self.horizon}) must be divisible by 2 ** (len(down_dims) - 1) = {factor}: the U-Net "
                "halves the chunk at every level but the last; change horizon or down_dims"
            )
        if any(d % self.n_groups for d in self.down_dims):
            raise ValueError(f"n_groups ({self.n_groups}) must divide every entry of down_dims {self.down_dims}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same-length convolutions), got {self.kernel_size}")
        if not 0.0 <= self.goal_dropout <= 1.0:
            raise ValueError(f"goal_dropout must lie in [0, 1], got {self.goal_dropout}")
        if self.use_goal and not self.goal_skills:
            raise ValueError("goal_skills is empty but use_goal is True: list the skills or set use_goal false")
        for name in ("goal_skills", "goal_objects", "goal_regions"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"{name} has duplicates: {values}")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"beta_schedule {self.beta_schedule!r} is not one of {list(BETA_SCHEDULES)}")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type {self.prediction_type!r} is not one of {list(PREDICTION_TYPES)}")
        if self.timestep_spacing not in TIMESTEP_SPACINGS:
            raise ValueError(f"timestep_spacing {self.timestep_spacing!r} is not one of {list(TIMESTEP_SPACINGS)}")
        if self.clip_sample and self.clip_sample_range < 1.0:
            raise ValueError(
                f"clip_sample_range = {self.clip_sample_range} with clip_sample on would clip min-max normalised "
                "actions, which fill [-1, 1]: use clip_sample_range >= 1.0"
            )
        self.check_inference_steps(self.num_inference_steps)

    def check_inference_steps(self, steps: int) -> int:
        """Return ``steps`` if it is a valid DDIM step count, else raise ``ValueError``."""
        if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= self.num_train_timesteps:
            raise ValueError(
                f"num_inference_steps must be an integer in 1..num_train_timesteps = {self.num_train_timesteps}, "
                f"got {steps!r}: DDIM cannot take more steps than the model was trained with"
            )
        return steps

    @property
    def goal_width(self) -> int:
        """``G``, width of the encoded goal (0 when ``use_goal`` is off)."""
        if not self.use_goal:
            return 0
        # present flag, skill, object, target region, target block, target point flag + xy
        return 1 + len(self.goal_skills) + 2 * len(self.goal_objects) + len(self.goal_regions) + 3

    @property
    def global_cond_dim(self) -> int:
        """Width of the U-Net's FiLM conditioning input: flattened obs history plus goal."""
        return self.n_obs_steps * self.obs_dim + self.goal_width

    def subset(self, names: tuple[str, ...]) -> dict[str, Any]:
        """``{name: value}`` of the fields ``names`` (``UNET_FIELDS``, ``SCHEDULER_FIELDS``)."""
        return {name: getattr(self, name) for name in names}


GOAL_VOCABULARIES: dict[str, dict[str, Any]] = {
    PUSH_BLOCKS_ID: {"goal_skills": ("push", "reach"), "goal_objects": BLOCK_NAMES, "goal_regions": REGION_NAMES,
                     "goal_region_xy": tuple(REGIONS[r].center for r in REGION_NAMES)},
    REACHER_ID: {"goal_skills": ("reach",), "goal_objects": (), "goal_regions": (), "goal_region_xy": ()},
}
"""Goal encoding vocabulary per env id: fixed, so that models trained on different subsets of an
env's tasks share one encoding. The data fixes the rest of a proposer's inputs (``obs_dim``,
``action_dim``, the action box, ``env_id``), so one preset serves every env."""

PRESETS = PresetRegistry("proposer", {
    "tiny": Preset(
        "seconds-long run for tests and smoke checks",
        model={"down_dims": [16, 32], "n_groups": 4, "diffusion_step_embed_dim": 16, "kernel_size": 3},
        train={"steps": 150, "batch_size": 64, "lr": 3e-3, "warmup_steps": 10, "checkpoint_every": 50,
               "log_every": 25},
    ),
    "pushblocks": Preset(
        "PushBlocks (1-3 blocks, push and reach), 1.2 M parameters (4.8 MB), about 70 ms a step on 2 cores; "
        "executes 4 of 16 target positions (contact needs the faster feedback: push 0.98 vs 0.86 at 8)",
        model={"down_dims": [32, 64, 128], "n_groups": 8, "diffusion_step_embed_dim": 64, "n_action_steps": 4},
        train={"steps": 10000, "batch_size": 128, "lr": 1e-3, "weight_decay": 1e-6, "warmup_steps": 300,
               "checkpoint_every": 1000},
    ),
    "reacher": Preset(
        "Reacher-v5 reach, 1.2 M parameters (4.8 MB); executes 4 of 16 torques (joint torques need faster feedback)",
        model={"down_dims": [32, 64, 128], "n_groups": 8, "diffusion_step_embed_dim": 64, "n_action_steps": 4},
        train={"steps": 6000, "batch_size": 128, "lr": 1e-3, "weight_decay": 1e-6, "warmup_steps": 300,
               "checkpoint_every": 1000},
    ),
    "gpu": Preset(
        "Diffusion Policy's size (down_dims 256/512/1024) for a GPU host; too big to ship",
        model={"down_dims": [256, 512, 1024], "n_groups": 8, "diffusion_step_embed_dim": 256},
        train={"steps": 100_000, "batch_size": 256, "lr": 1e-4, "weight_decay": 1e-6, "warmup_steps": 500,
               "checkpoint_every": 5000},
    ),
})
