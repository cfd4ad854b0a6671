"""Configuration of the learned dynamics ensemble (``DynamicsEnsemble``), its presets and state layouts.

``DynamicsConfig`` is saved as the model's ``config.json``. ``forethought train dynamics --config
NAME`` fills it from the data (sizes, action box, env id), the per-env state layout (which
entries are copied unchanged) and a named preset.
"""

from __future__ import annotations

from dataclasses import dataclass

from forethought.models.configuration import ModelConfig, Preset, PresetRegistry
from forethought.sim import PUSH_BLOCKS_ID, REACHER_ID, scene, task_env_id

CONTACTS: tuple[str, ...] = ("circle", "square")
"""Object shapes for the separation step (``DynamicsConfig.contact``)."""


@dataclass
class DynamicsConfig(ModelConfig):
    """Everything needed to rebuild a ``DynamicsEnsemble``; saved as its ``config.json``.

    Sizes:
        state_dim: ``S``, width of one state (16 for PushBlocks, 10 for Reacher-v5).
        action_dim: ``A``, width of one action.
        horizon: ``H``, steps predicted per call of the network.
        rollout_horizon: the longest action chunk ``rollout`` accepts (``None``: ``horizon``); longer
            than ``horizon``, the network is chained: each call continues from the last predicted
            states (``horizon=1`` is a one-step model rolled out autoregressively, as in PETS).
        n_obs_steps: states the model is conditioned on, oldest first.

    Architecture:
        ensemble_size: ``K``, independent members.
        hidden_dim, num_layers: width and number of hidden layers of each member's MLP.
        relational: predict the objects (``presence_groups``: ``(flag, x, y, rest...)`` slots of one
            width) with one network shared by every slot, in the object's own frame: its inputs are
            the object's position, rest and velocity, the agent and the action targets relative to
            it, and the other present objects relative to it, nearest first
            (``DynamicsEnsemble.object_features``); a second network predicts the agent's entries
            from the flat inputs. Contacts learned on one pair of objects then hold for every pair
            and everywhere on the table. Needs ``agent_position``.
        agent_position: the agent's ``(x, y)`` entries; the actions are position targets in the
            same frame (PushBlocks: the pusher's target).
        separation: how close (m) the centres of two present objects may come, along the line
            between them, in a predicted step; a step that brings them closer is projected apart
            along that line, the object that moved less in that step yielding more (``DynamicsEnsemble.separate``, a
            position-based contact projection after Mueller et al. 2007). 0 turns it off. Needs
            ``presence_groups`` of ``(flag, x, y, ...)`` slots.
        contact: the objects' shape for the separation: ``"circle"`` (``separation`` apart in every
            direction) or ``"square"`` (squares of side ``separation`` whose yaw is each slot's
            fourth entry, ``(flag, x, y, yaw, ...)``: two must be their half-extents along the line
            between the centres apart, from ``separation`` face to face to ``sqrt(2) * separation``
            corner to corner).

    State layout (``StateLayout``):
        passthrough_dims: state entries copied from the current state.
        presence_groups: ``(flag, d1, ...)`` per object slot; ``d1, ...`` are copied while the
            object is absent (``flag < 0.5``).
        relative_pairs: ``(a, b)`` pairs; ``s[t][a] - s[t][b]`` is an extra input.

    Data:
        action_low, action_high: the env's action box (informational: ``rollout`` does not clamp,
            so that planners can probe the model outside it).
        env_id: the gymnasium id of the training data.
    """

    # sizes
    state_dim: int
    action_dim: int
    horizon: int = 16
    rollout_horizon: int | None = None
    n_obs_steps: int = 2
    # architecture
    ensemble_size: int = 5
    hidden_dim: int = 160
    num_layers: int = 3
    relational: bool = False
    agent_position: tuple[int, ...] = ()
    separation: float = 0.0
    contact: str = "circle"
    # state layout
    passthrough_dims: tuple[int, ...] = ()
    presence_groups: tuple[tuple[int, ...], ...] = ()
    relative_pairs: tuple[tuple[int, int], ...] = ()
    # data
    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None
    env_id: str | None = None

    config_type = "dynamics_ensemble"
    model_name = "dynamics"

    def __post_init__(self) -> None:
        self._check_positive_ints("state_dim", "action_dim", "horizon", "n_obs_steps", "ensemble_size", "hidden_dim",
                                  "num_layers")
        r = self.rollout_horizon
        if r is not None and (not isinstance(r, int) or isinstance(r, bool) or r < self.horizon):
            raise ValueError(f"dynamics rollout_horizon must be None or an integer >= horizon ({self.horizon}), "
                             f"got {r!r}")
        self._as_tuples("passthrough_dims", "presence_groups", "relative_pairs", "agent_position")
        self.presence_groups = tuple(tuple(g) for g in self.presence_groups)
        self.relative_pairs = tuple(tuple(p) for p in self.relative_pairs)
        dims = [d for g in (*self.presence_groups, *self.relative_pairs) for d in g] + list(self.passthrough_dims)
        if any(not isinstance(d, int) or not 0 <= d < self.state_dim for d in dims):
            raise ValueError(f"passthrough_dims, presence_groups and relative_pairs must index the state "
                             f"(0..{self.state_dim - 1}), got {list(self.passthrough_dims)}, "
                             f"{[list(g) for g in self.presence_groups]} and {[list(p) for p in self.relative_pairs]}")
        if any(len(g) < 2 for g in self.presence_groups):
            raise ValueError(f"each presence group needs a flag and at least one gated entry, got "
                             f"{self.presence_groups}")
        if any(len(p) != 2 for p in self.relative_pairs):
            raise ValueError(f"relative_pairs must be (a, b) pairs, got {self.relative_pairs}")
        if self.action_low is not None or self.action_high is not None:
            self._check_action_box()
        if not (isinstance(self.separation, (int, float)) and 0.0 <= self.separation < 1.0):
            raise ValueError(f"dynamics separation must be a distance in [0, 1) m, got {self.separation!r}")
        if self.contact not in CONTACTS:
            raise ValueError(f"dynamics contact must be one of {list(CONTACTS)}, got {self.contact!r}")
        if self.contact == "square" and (not self.separation or any(len(g) < 4 for g in self.presence_groups)):
            raise ValueError("a square contact needs a separation and presence_groups (flag, x, y, yaw, ...), got "
                             f"separation {self.separation!r} and {[list(g) for g in self.presence_groups]}")
        if self.relational or self.separation:
            widths = {len(g) for g in self.presence_groups}
            if len(widths) != 1 or min(widths) < 3 or len(self.presence_groups) < 2:
                raise ValueError(f"a relational dynamics config or a separation needs at least two presence_groups "
                                 f"of one width >= 3 (flag, x, y, ...), got {[list(g) for g in self.presence_groups]}")
        if self.relational:
            self._check_relational()

    def _check_relational(self) -> None:
        if (len(self.agent_position) != 2 or self.action_dim != 2
                or any(not isinstance(d, int) or not 0 <= d < self.state_dim for d in self.agent_position)):
            raise ValueError(f"a relational dynamics config needs agent_position = (x, y) entries of the state and "
                             f"2-D position-target actions, got agent_position {list(self.agent_position)} and "
                             f"action_dim {self.action_dim}")
        if set(self.agent_position) - set(self.agent_dims):
            raise ValueError(f"agent_position {list(self.agent_position)} must index the agent's entries "
                             f"{list(self.agent_dims)} (not an object's or a copied one)")

    @property
    def max_horizon(self) -> int:
        """The longest chunk ``rollout`` accepts (chained calls beyond ``horizon``)."""
        return self.rollout_horizon or self.horizon

    @property
    def agent_dims(self) -> tuple[int, ...]:
        """Entries that belong to no object slot and are not copied: the agent's (pusher xy, vxy)."""
        taken = {d for g in self.presence_groups for d in g} | set(self.passthrough_dims)
        return tuple(d for d in range(self.state_dim) if d not in taken)

    @property
    def object_width(self) -> int:
        """``G``: entries per object slot, its presence flag included (relational configs)."""
        return len(self.presence_groups[0])

    @property
    def object_input_dim(self) -> int:
        """Width of one object's inputs (``DynamicsEnsemble.object_features``; relational configs)."""
        G, o, P = self.object_width, self.n_obs_steps, len(self.presence_groups)
        own = 2 + (G - 3) + (o - 1) * (G - 1)  # position, rest, velocity
        agent = 2 * o + len(self.agent_dims) - 2  # agent position relative to the object over the history; the rest
        return own + agent + 2 * self.horizon + (P - 1) * (1 + own)  # actions; other objects (flag, relative)


@dataclass(frozen=True)
class StateLayout:
    """Entries of the state that the model copies instead of predicting.

    Attributes:
        passthrough_dims: entries that never change within an episode (a presence flag, the
            Reacher goal); the prediction copies the current value.
        presence_groups: ``(flag, d1, d2, ...)`` per object slot: when entry ``flag`` is below
            0.5 (object absent) entries ``d1, d2, ...`` are copied too (they hold zeros).
        relative_pairs: ``(a, b)`` pairs whose difference ``s[a] - s[b]`` is an extra input (an
            object's position relative to the pusher, where contacts happen).
        agent_position: the agent's ``(x, y)`` entries, the frame of position-target actions
            (what a relational model needs).
    """

    passthrough_dims: tuple[int, ...] = ()
    presence_groups: tuple[tuple[int, ...], ...] = ()
    relative_pairs: tuple[tuple[int, int], ...] = ()
    agent_position: tuple[int, ...] = ()


def _pushblocks_layout() -> StateLayout:
    slots = [scene.block_slice(b) for b in scene.BLOCK_NAMES]
    return StateLayout(
        passthrough_dims=tuple(s.start for s in slots),
        presence_groups=tuple(tuple(range(s.start, s.stop)) for s in slots),
        relative_pairs=tuple((s.start + 1 + i, i) for s in slots for i in (0, 1)),  # block xy - pusher xy
        agent_position=(scene.PUSHER_POS.start, scene.PUSHER_POS.start + 1),
    )


STATE_LAYOUTS: dict[str, StateLayout] = {
    PUSH_BLOCKS_ID: _pushblocks_layout(),
    REACHER_ID: StateLayout(passthrough_dims=(4, 5)),  # goal_x, goal_y
}
"""env id -> the layout of its observation; envs not listed predict every entry."""


def state_layout(env_id: str | None) -> StateLayout:
    """The layout for data from ``env_id`` (an all-predicted layout for unknown envs)."""
    return STATE_LAYOUTS.get(task_env_id(env_id) or "", StateLayout())


PRESETS = PresetRegistry("dynamics", {
    "tiny": Preset(
        "seconds-long run for tests and smoke checks",
        model={"ensemble_size": 3, "hidden_dim": 32, "num_layers": 2},
        train={"steps": 150, "batch_size": 64, "lr": 3e-3, "weight_decay": 1e-4, "warmup_steps": 10,
               "checkpoint_every": 50, "log_every": 25, "ema_max_decay": 0.99},
    ),
    "pushblocks": Preset(
        "PushBlocks (1-3 blocks, every task), 5 members x 3 hidden layers of 160 (about 2 MB float32), "
        "4 steps per call chained to 16",
        model={"ensemble_size": 5, "hidden_dim": 160, "num_layers": 3, "horizon": 4, "rollout_horizon": 16},
        train={"steps": 8000, "batch_size": 128, "lr": 1e-3, "weight_decay": 1e-2, "warmup_steps": 200,
               "checkpoint_every": 1000, "ema_max_decay": 0.999},
    ),
    "pushblocks-relational": Preset(
        "PushBlocks with the blocks predicted by one network shared by every block, in the block's own frame "
        "(relational), and the pusher by a second; 5 members x 3 hidden layers of 160 each, 4 steps chained to 16; "
        "blocks kept apart as squares of a block's width (4 cm)",
        model={"ensemble_size": 5, "hidden_dim": 160, "num_layers": 3, "horizon": 4, "rollout_horizon": 16,
               "relational": True, "separation": 2 * scene.BLOCK_HALF, "contact": "square"},
        train={"steps": 8000, "batch_size": 128, "lr": 1e-3, "weight_decay": 1e-2, "warmup_steps": 200,
               "checkpoint_every": 1000, "ema_max_decay": 0.999},
    ),
    "reacher": Preset(
        "Reacher-v5, 5 members x 3 hidden layers of 160 (about 2 MB float32), 4 steps per call chained to 16",
        model={"ensemble_size": 5, "hidden_dim": 160, "num_layers": 3, "horizon": 4, "rollout_horizon": 16},
        train={"steps": 8000, "batch_size": 128, "lr": 1e-3, "weight_decay": 1e-2, "warmup_steps": 200,
               "checkpoint_every": 1000, "ema_max_decay": 0.999},
    ),
    "gpu": Preset(
        "for a GPU host: 5 members x 4 hidden layers of 512, large batches; too big to ship",
        model={"ensemble_size": 5, "hidden_dim": 512, "num_layers": 4, "horizon": 4, "rollout_horizon": 16},
        train={"steps": 50_000, "batch_size": 1024, "lr": 1e-3, "weight_decay": 1e-2, "warmup_steps": 1000,
               "checkpoint_every": 5000, "ema_max_decay": 0.999},
    ),
})
