"""The learned dynamics ensemble: K multi-step MLPs evaluated in one batched pass.

Each member maps the last ``n_obs_steps`` states (with their step-to-step changes and a few
relative positions) and the actions ``a[t .. t+H-1]`` to the next ``H`` states ``s[t+1 .. t+H]`` at
once (D-MPC's multi-step dynamics, with a regression MLP in place of a diffusion model). Longer
chunks, up to ``rollout_horizon``, are rolled out by chaining calls, each member continuing from
its own prediction; the shipped models predict H = 4 per call, chained to 16 (a 16-at-once model
ranked D-MPC's proposals far worse). It predicts normalised residuals ``s[t+1+j] - s[t]``; entries
the state layout marks as fixed (presence flags, absent objects, a goal) are copied, not predicted.
Members differ by initialisation and by a bootstrap resample of the training windows; their
weights are stacked ``[K, in, out]`` and applied with ``torch.baddbmm``, so the whole ensemble
costs one batched matmul per layer (PETS, arXiv 1805.12114).

A **relational** ensemble (``DynamicsConfig.relational``) predicts the objects with a second
network shared by every object slot, fed each object's view of the scene in its own frame
(``object_features``: the pusher, the action targets and the other objects, nearest first,
relative to it), in the spirit of interaction networks (Battaglia et al., arXiv 1612.00222): a
block-on-block contact learned for one pair of blocks, anywhere on the table, holds for every
pair and everywhere. The flat network then predicts only the agent (the pusher). A
``separation`` (``separate``) keeps present objects that far apart in every predicted step, so an
imagined push shoves a block in its way instead of passing through it.

Example::

    from forethought.models.dynamics import DynamicsEnsemble

    dynamics = DynamicsEnsemble.from_pretrained("models/pretrained/dynamics-pushblocks")
    states = dynamics.rollout(obs_history, actions)    # [K, n, F, S] for actions[n, F, A]
    mean, spread = states.mean(0), states.std(0)        # prediction and disagreement
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from forethought.models.checkpoint import PretrainedModel
from forethought.models.dynamics.configuration_dynamics import DynamicsConfig
from forethought.models.dynamics.processor_dynamics import DynamicsNormalizer

BACKENDS: tuple[str, ...] = ("torch", "onnx")
"""Who evaluates ``rollout``: torch, or onnxruntime (``load_onnx``, then ``backend = "onnx"``)."""


def linear_map(rows: int, columns: list[list[tuple[int, float]]]) -> Tensor:
    """``[rows, len(columns)]``: column ``c`` holds ``coef`` at each ``(row, coef)`` of ``columns[c]``.

    ``x @ linear_map(...)`` picks entries (coefficient 1) and differences of two entries (1, -1) in
    one matmul. Products with 0 and +-1 are exact and each column sums at most two non-zero terms,
    so the result equals indexing and subtracting bit for bit (for finite ``x``).
    """
    out = torch.zeros(rows, len(columns))
    for c, terms in enumerate(columns):
        for row, coef in terms:
            out[row, c] = coef
    return out


def outer_norm(x: Tensor) -> Tensor:
    """``x.norm(dim=0)``: one ``ReduceL2`` in an ONNX export; in torch the square root of the sum of
    squares, since torch's norm over an outer axis is about 20x slower (95 vs 5 us on ``[2, 3, 320]``)."""
    if torch.onnx.is_in_onnx_export():
        return x.norm(dim=0)
    return (x * x).sum(0).sqrt()


class EnsembleMLP(nn.Module):
    """``K`` independent MLPs ``x[K, B, in] -> [K, B, out]`` with stacked weights ``[K, in, out]``.

    Hidden layers are Linear -> LayerNorm (no affine) -> SiLU. The last layer starts small, so
    an untrained member predicts residuals near zero (copy-last).
    """

    def __init__(self, ensemble_size: int, in_dim: int, hidden_dim: int, num_layers: int, out_dim: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * num_layers + [out_dim]
        self.widths = dims[1:]  # plain ints, so a traced graph (ONNX export) keeps static LayerNorm shapes
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            bound = 1.0 / math.sqrt(d_in)  # nn.Linear's default, drawn per member
            scale = 0.1 if i == len(dims) - 2 else 1.0
            self.weights.append(nn.Parameter(torch.empty(ensemble_size, d_in, d_out).uniform_(-bound, bound) * scale))
            self.biases.append(nn.Parameter(torch.empty(ensemble_size, 1, d_out).uniform_(-bound, bound) * scale))

    def forward(self, x: Tensor) -> Tensor:
        """``x[K, B, in]`` (or ``[1, B, in]``, shared by all members) -> ``[K, B, out]``."""
        K = self.weights[0].shape[0]
        h = x.expand(K, -1, -1)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)  # [K, B, d_out]
            if i < last:
                h = F.silu(F.layer_norm(h, (self.widths[i],)))
        return h


class DynamicsEnsemble(PretrainedModel):
    """``rollout(state, actions[n, F, A]) -> states[K, n, F, S]``: an ensemble of multi-step dynamics.

    Args:
        config: sizes, state layout and data of the ensemble (``DynamicsConfig``).
        normalizer: statistics of its inputs and residuals; ``None`` until fitted
            (``train_dynamics.fit_normalizer``) or loaded (``from_pretrained``).

    The sizes the planners read (``state_dim``, ``action_dim``, ``horizon``, ``max_horizon``,
    ``n_obs_steps``, ``ensemble_size``) are attributes, copied from ``config``. ``backend``
    (``BACKENDS``) says who evaluates ``rollout``: ``"onnx"`` needs ``load_onnx`` first.
    """

    config_class = DynamicsConfig
    normalizer_class = DynamicsNormalizer
    pretrained_prefix = "dynamics"

    def __init__(self, config: DynamicsConfig, normalizer: DynamicsNormalizer | None = None) -> None:
        super().__init__()
        c = self.config = config
        self.state_dim, self.action_dim, self.n_obs_steps = c.state_dim, c.action_dim, c.n_obs_steps
        self.horizon, self.max_horizon, self.ensemble_size = c.horizon, c.max_horizon, c.ensemble_size
        state_dim = c.state_dim
        fixed = torch.zeros(state_dim, dtype=torch.bool)
        fixed[list(c.passthrough_dims)] = True
        self.register_buffer("fixed", fixed, persistent=False)  # [S] always copied
        gates = torch.zeros(len(c.presence_groups), state_dim, dtype=torch.bool)
        for i, g in enumerate(c.presence_groups):
            gates[i, list(g[1:])] = True
        self.register_buffer("gates", gates, persistent=False)  # [P, S] copied while slot i is absent
        self.register_buffer("flags", torch.tensor([g[0] for g in c.presence_groups], dtype=torch.long),
                             persistent=False)  # [P]
        o, S = c.n_obs_steps, state_dim

        def at(t: int, d: int) -> int:  # entry d of step t in obs_history.flatten(-2)
            return t * S + d

        history = [[(at(t, d), 1.0)] for t in range(o) for d in range(S)]  # state
        history += [[(at(t, d), 1.0), (at(t - 1, d), -1.0)] for t in range(1, o) for d in range(S)]  # velocity
        history += [[(at(o - 1, a), 1.0), (at(o - 1, b), -1.0)] for a, b in c.relative_pairs]  # relative
        self.register_buffer("history_map", linear_map(o * S, history), persistent=False)  # [o * S, (2o - 1) S + R]
        in_dim = (2 * c.n_obs_steps - 1) * state_dim + len(c.relative_pairs) + c.horizon * c.action_dim
        self.object_core: EnsembleMLP | None = None
        if c.relational or c.separation:
            self.register_buffer("slots", torch.tensor(c.presence_groups, dtype=torch.long), persistent=False)  # [P, G]
            P = len(c.presence_groups)
            # [state entries, slot 0 x, y, slot 1 x, y, ...] @ positions: the state with the slots' xy replaced
            positions = [[(d, 1.0)] for d in range(state_dim)]
            for i, g in enumerate(c.presence_groups):
                positions[g[1]], positions[g[2]] = [(state_dim + 2 * i, 1.0)], [(state_dim + 2 * i + 1, 1.0)]
            self.register_buffer("positions", linear_map(state_dim + 2 * P, positions), persistent=False)  # [S + 2P, S]
            xy = [[(g[1 + k], 1.0)] for k in range(2) for g in c.presence_groups]
            self.register_buffer("slot_xy", linear_map(state_dim, xy), persistent=False)  # [S, 2P]: every x, then every y
            first, second = torch.triu_indices(P, P, 1)  # the Q = P(P-1)/2 pairs i < j
            eye = torch.eye(P)
            self.register_buffer("pair_first", eye[first], persistent=False)  # [Q, P]: one-hot of i
            self.register_buffer("pair_second", eye[second], persistent=False)  # [Q, P]: one-hot of j
            self.register_buffer("pair_line", eye[second] - eye[first], persistent=False)  # [Q, P]: j minus i
            if c.contact == "square":
                yaw = [[(g[3], 1.0)] for g in c.presence_groups]
                self.register_buffer("slot_yaw", linear_map(state_dim, yaw), persistent=False)  # [S, P]
        if c.relational:
            agent = c.agent_dims
            self.register_buffer("agent", torch.tensor(agent, dtype=torch.long), persistent=False)  # [Na]
            groups, last = c.presence_groups, o - 1

            def own(g: tuple[int, ...]) -> list[list[tuple[int, float]]]:  # position, rest, velocity of slot g
                return ([[(at(last, d), 1.0)] for d in g[1:]]
                        + [[(at(t, d), 1.0), (at(t - 1, d), -1.0)] for t in range(1, o) for d in g[1:]])

            def minus(a: int, g: tuple[int, ...], k: int) -> list[tuple[int, float]]:  # entry a minus slot g's x/y
                return [(a, 1.0), (at(last, g[1 + k]), -1.0)]

            objects = []  # per slot: own, agent position over the history, agent rest, action targets, each other slot
            for i, g in enumerate(groups):
                objects += own(g)
                objects += [minus(at(t, c.agent_position[k]), g, k) for t in range(o) for k in range(2)]
                objects += [[(at(last, d), 1.0)] for d in agent if d not in c.agent_position]
                objects += [minus(o * S + h * c.action_dim + k, g, k) for h in range(c.horizon) for k in range(2)]
                for j, other in enumerate(groups):
                    if j != i:
                        objects += [minus(at(last, other[1 + k]), g, k) for k in range(2)] + own(other)[2:]
            z = o * S + c.horizon * c.action_dim
            self.register_buffer("object_map", linear_map(z, objects), persistent=False)  # [Z, P * (I - (P - 1))]
            self.register_buffer("others", torch.tensor([[j for j in range(P) if j != i] for i in range(P)]),
                                 persistent=False)  # [P, P - 1]: the other slots of each slot
            # [agent residuals, slot 0 residuals, slot 1 ...] @ scatter: residuals of every state entry
            order = list(agent) + [d for g in groups for d in g[1:]]
            scatter = [[(order.index(d), 1.0)] if d in order else [] for d in range(state_dim)]
            self.register_buffer("scatter", linear_map(len(order), scatter), persistent=False)  # [Na + P(G-1), S]
            self.core = EnsembleMLP(c.ensemble_size, in_dim, c.hidden_dim, c.num_layers, c.horizon * len(agent))
            self.object_core = EnsembleMLP(c.ensemble_size, c.object_input_dim, c.hidden_dim, c.num_layers,
                                           c.horizon * (c.object_width - 1))
        else:
            self.core = EnsembleMLP(c.ensemble_size, in_dim, c.hidden_dim, c.num_layers, c.horizon * state_dim)
        self.normalizer = normalizer
        self.onnx_rollout: Any = None
        """An ``onnx_ensemble.OnnxEnsemble`` attached by ``load_onnx``."""
        self._backend = "torch"

    @property
    def backend(self) -> str:
        """``"torch"`` or ``"onnx"``: who evaluates ``rollout``."""
        return self._backend

    @backend.setter
    def backend(self, name: str) -> None:
        if name not in BACKENDS:
            raise ValueError(f"backend {name!r} is not one of {list(BACKENDS)}")
        if name == "onnx" and self.onnx_rollout is None:
            raise ValueError("backend 'onnx' needs an exported rollout: call dynamics.load_onnx(FILE) first "
                             "(export one with `forethought export --model DIR --out FILE.onnx`)")
        self._backend = name

    def load_onnx(self, path: str | os.PathLike[str], threads: int | None = None,
                  providers: list[str] | None = None) -> None:
        """Attach the onnxruntime rollout exported to ``path`` (``onnx_ensemble.export_ensemble``).

        Raises ``ValueError`` if the file was exported from another config, other weights or
        another normaliser; set ``backend = "onnx"`` to use it.
        """
        from forethought.models.dynamics.onnx_ensemble import OnnxEnsemble

        ensemble = OnnxEnsemble(path, threads=threads, providers=providers)
        ensemble.check_matches(self)
        self.onnx_rollout = ensemble

    def member(self, k: int) -> DynamicsEnsemble:
        """A one-member ensemble holding a copy of member ``k`` (same normaliser)."""
        if not 0 <= k < self.ensemble_size:
            raise ValueError(f"member must lie in 0..{self.ensemble_size - 1}, got {k}")
        one = type(self)(replace(self.config, ensemble_size=1), self.normalizer)
        one.load_state_dict({n: p[k : k + 1] for n, p in self.state_dict().items()})
        return one.to(self.fixed.device)

    # ---- math core ---------------------------------------------------------------------------

    def copy_mask(self, state: Tensor) -> Tensor:
        """``bool[..., S]``: entries of ``state[..., S]`` that are copied rather than predicted."""
        if not len(self.flags):
            return self.fixed.expand_as(state)
        absent = state[..., self.flags] < 0.5  # [..., P]
        return self.fixed | (absent.unsqueeze(-1) & self.gates).any(-2)

    def features(self, obs_history: Tensor) -> dict[str, Tensor]:
        """Unnormalised inputs from ``obs_history[..., n_obs, S]``: ``state`` (the history),
        ``velocity[..., n_obs - 1, S]`` (its step-to-step changes), ``relative[..., R]``."""
        o, S = self.n_obs_steps, self.state_dim
        x = self.history_inputs(obs_history)
        return {"state": x[..., : o * S].unflatten(-1, (o, S)), "velocity": x[..., o * S : (2 * o - 1) * S].unflatten(-1, (o - 1, S)),
                "relative": x[..., (2 * o - 1) * S :]}

    def history_inputs(self, obs_history: Tensor) -> Tensor:
        """``features`` of ``obs_history[..., n_obs, S]`` side by side: ``[..., (2 n_obs - 1) S + R]``."""
        o, S = self.n_obs_steps, self.state_dim
        return obs_history.reshape(*obs_history.shape[:-2], o * S) @ self.history_map

    def object_features(self, obs_history: Tensor, actions: Tensor) -> Tensor:
        """Each object's inputs in its own frame, ``[..., P, I]`` for ``obs_history[..., n_obs, S]`` and
        ``actions[..., H, 2]`` (position targets; relational configs, env units; same leading axes).

        Per object slot ``(flag, x, y, rest...)``: its position, rest and velocity (step changes of
        ``x, y, rest`` over the history); the agent's position minus the object's over the history
        and the agent's other entries; the action targets minus the object's position; then for
        each other slot, nearest present one first, its flag, position minus this object's, rest
        and velocity (all zeros where absent). ``I = config.object_input_dim``. Everything but the
        flags and the order is one matmul with ``object_map``.
        """
        (P, G), n = self.slots.shape, self.others.shape[1]
        o, S, H, A = self.n_obs_steps, self.state_dim, self.horizon, self.action_dim
        own, lead = (G - 1) * o, obs_history.shape[:-2]
        mine = self.config.object_input_dim - n * (1 + own)  # own, agent, action entries
        rows = obs_history.reshape(-1, o, S)
        z = torch.cat([rows.reshape(-1, o * S), actions.reshape(-1, H * A)], dim=-1)  # [R, Z]
        raw = (z @ self.object_map).reshape(-1, P, mine + n * own)  # [R, P, I - n]
        mine, other = raw[..., :mine], raw[..., mine:].reshape(-1, P, n, own)  # [R, P, mine], [R, P, n, Own]
        present = (rows[:, -1, self.flags] >= 0.5).to(raw.dtype)  # [R, P]
        flag = present[:, self.others].unsqueeze(-1)  # [R, P, n, 1]: is i's j-th other slot present
        order = torch.argsort(other[..., :2].norm(dim=-1) + (1 - flag[..., 0]) * 1e3, dim=-1)  # [R, P, n]
        other = torch.cat([flag, other], dim=-1) * flag  # [R, P, n, 1 + Own]
        other = torch.gather(other, -2, order.unsqueeze(-1).expand(-1, -1, -1, 1 + own))
        return torch.cat([mine, other.reshape(-1, P, n * (1 + own))], dim=-1).reshape(*lead, P, -1)

    def predict_deltas(self, obs_history: Tensor, actions: Tensor) -> Tensor:
        """Normalised residuals ``[K, B, F, S]`` for ``obs_history[K|1, B, n_obs, S]`` and
        ``actions[K|1, B, F, A]`` (env units)."""
        if self.normalizer is None:
            raise ValueError("this DynamicsEnsemble has no normaliser: load it with from_pretrained or train it")
        norm = self.normalizer
        # every member's inputs, [K, B, ...]: reshapes then name every size but B (no shape ops in an ONNX export)
        K, o, S, H, A = self.ensemble_size, self.n_obs_steps, self.state_dim, self.horizon, self.action_dim
        lead = torch.broadcast_shapes(obs_history.shape[:-2], actions.shape[:-2], (K, 1))
        if obs_history.shape[:-2] != lead:
            obs_history = obs_history.expand(*lead, o, S)
        if actions.shape[:-2] != lead:
            actions = actions.expand(*lead, H, A)
        x = torch.cat([self.history_inputs(obs_history.reshape(K, -1, o, S)), actions.reshape(K, -1, H * A)], dim=-1)
        mean, std = norm.input_stats(o, H)  # x: [K, B, In] in env units
        out = self.core((x - mean.to(x)) / std.to(x))  # [K, B, F * S], or [K, B, F * Na] (the agent) when relational
        if self.object_core is None:
            return out.reshape(K, -1, H, S)
        P, G = self.slots.shape
        objects = norm.normalize("object", self.object_features(obs_history, actions))  # [K, B, P, I]
        moved = self.object_core(objects.reshape(K, -1, objects.shape[-1]))  # [K, B * P, H * (G - 1)]
        moved = norm.unnormalize("object_delta", moved.reshape(K, -1, P, H, G - 1))  # [K, B, P, H, G - 1]
        agent = norm.unnormalize("delta", out.reshape(K, -1, H, len(self.agent)), entries=self.agent)  # [K, B, H, Na]
        residual = torch.cat([agent, moved.transpose(2, 3).reshape(K, -1, H, P * (G - 1))], -1)  # [K, B, H, Na + P(G-1)]
        return norm.normalize("delta", residual @ self.scatter)  # [K, B, H, S]

    def predict(self, obs_history: Tensor, actions: Tensor) -> Tensor:
        """States ``s[t+1 .. t+F]`` ``[K, B, F, S]`` (env units) for ``obs_history[K|1, B, n_obs, S]`` and
        ``actions[K|1, B, F, A]``; copied entries hold the current value; objects kept ``separation`` apart."""
        current = obs_history[..., -1:, :]  # [K|1, B, 1, S]
        deltas = self.predict_deltas(obs_history, actions)  # [K, B, F, S]
        states = current + self.normalizer.unnormalize("delta", deltas)
        states = torch.where(self.copy_mask(current), current, states)
        return self.separate(current, states) if self.config.separation else states

    def separate(self, current: Tensor, states: Tensor) -> Tensor:
        """``states[K, B, F, S]`` predicted from ``current[K|1, B, 1, S]`` with no two present objects
        closer than ``config.separation`` along the line between their centres (with ``contact``
        ``"square"``: than their half-extents along it, ``contact_distance``).

        Step by step: each pair (all at once, one pass) that comes closer than that along the line
        between their centres at the previous step is pushed apart along it by the overlap, shared
        in proportion to how far each moved in this step: the object that moved less (the one being
        shoved) yields more. A correction carries on to the later steps, so an object once shoved
        stays shoved and a chunk cannot carry one object through another between two steps.

        The work is laid out ``[2, P or Q, N]`` with the ``N = K * B`` rollouts last, and pairs are
        picked and summed back with one-hot ``[Q, P]`` matmuls: every op then runs over long
        contiguous spans (onnxruntime's CPU broadcast is slow on short trailing axes).
        """
        F, S, P = int(states.shape[-2]), self.state_dim, self.slots.shape[0]  # (a fixed F in an ONNX export)
        first, second = self.pair_first, self.pair_second  # [Q, P]
        pos = (states @ self.slot_xy).permute(2, 3, 0, 1).reshape(F, 2, P, -1)  # [F, 2, P, N]
        now = current[..., 0, :] + states[..., 0, :] * 0  # [K, B, S]
        prev = (now @ self.slot_xy).permute(2, 0, 1).reshape(2, P, -1)  # [2, P, N]
        present = (now[..., self.flags] >= 0.5).to(states.dtype).permute(2, 0, 1).reshape(P, -1)  # [P, N]
        pairs = (first @ present) * (second @ present)  # [Q, N]: both present
        if self.config.contact == "square":  # each slot's yaw at the step before each step
            yaw = torch.cat([now.unsqueeze(-2), states[..., :-1, :]], dim=-2) @ self.slot_yaw  # [K, B, F, P]
            yaw = yaw.permute(2, 3, 0, 1).reshape(F, 1, P, -1)  # [F, 1, P, N]
            axes = torch.cat([torch.cos(yaw), torch.sin(yaw)], dim=1)  # [F, 2, P, N]: each square's first axis
        carry = prev * 0  # corrections so far
        steps = []
        for k in range(F):
            points = pos[k] + carry  # [2, P, N]
            moved = outer_norm(points - prev)  # [P, N]
            line = self.pair_line @ prev  # [2, Q, N]: from i to j
            line = line / outer_norm(line).clamp_min(1e-6)
            gap = ((self.pair_line @ points) * line).sum(0)  # [Q, N]
            reach = self.config.separation if self.config.contact == "circle" else self.contact_distance(line, axes[k])
            push = line * ((reach - gap).clamp_min(0) * pairs)  # [2, Q, N]: moves j along the line
            moved_i, moved_j = first @ moved, second @ moved  # [Q, N]
            to_j = push * ((moved_i + 1e-6) / (moved_i + moved_j + 2e-6))  # j's part
            points = points + second.T @ to_j - first.T @ (push - to_j)
            carry, prev = points - pos[k], points
            steps.append(points)
        moved_xy = torch.stack(steps).permute(3, 0, 2, 1).reshape(-1, F, 2 * P)  # [N, F, 2P]
        return (torch.cat([states.reshape(-1, F, S), moved_xy], dim=-1) @ self.positions).reshape_as(states)

    def contact_distance(self, line: Tensor, axes: Tensor) -> Tensor:
        """``[Q, N]``: how far apart along the unit ``line[2, Q, N]`` (from ``i`` to ``j``) two squares of
        side ``separation`` touch, given each slot's first axis ``axes[2, P, N]`` (``cos``, ``sin`` of its
        yaw): the sum of both half-extents along the line, ``separation / 2 * (|u . e| + |u x e|)`` each.
        """
        extents = []
        for pick in (self.pair_first, self.pair_second):
            e = pick @ axes  # [2, Q, N]
            extents.append((line * e).sum(0).abs() + (line[0] * e[1] - line[1] * e[0]).abs())
        return (extents[0] + extents[1]) * (self.config.separation / 2)

    def imagine(self, obs_history: Tensor, actions: Tensor) -> Tensor:
        """``predict`` for chunks of any length ``F <= max_horizon``: ``[K, B, F, S]``.

        Calls the network on ``horizon``-step pieces of ``actions[K|1, B, F, A]`` (the last piece
        padded with its final action), each member continuing from its own predicted states.
        """
        H, o, F = self.horizon, self.n_obs_steps, actions.shape[-2]
        if F > self.max_horizon:
            raise ValueError(f"actions have {F} steps but this model rolls out at most {self.max_horizon}")
        K = self.ensemble_size
        hist, actions, pieces = obs_history.expand(K, -1, -1, -1), actions.expand(K, -1, -1, -1), []
        for start in range(0, F, H):
            piece = actions[..., start : start + H, :]
            if piece.shape[-2] < H:
                piece = torch.cat([piece, piece[..., -1:, :].expand(-1, -1, H - piece.shape[-2], -1)], -2)
            pred = self.predict(hist, piece)  # [K, B, H, S]
            pieces.append(pred)
            hist = torch.cat([hist, pred], dim=-2)[..., -o:, :]
        return torch.cat(pieces, dim=-2)[..., :F, :]

    def compute_loss(self, batch: Mapping[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
        """Masked MSE of normalised residuals for one batch per member.

        ``obs_history[K, B, n_obs, S]``, ``actions[K, B, F, A]``, ``future_states[K, B, F, S]`` and
        ``future_valid[K, B, F]`` (False past the episode end); copied entries are not scored.
        """
        obs, future, valid = batch["obs_history"], batch["future_states"], batch["future_valid"]
        pred = self.predict_deltas(obs, batch["actions"])
        target = self.normalizer.normalize("delta", future - obs[..., -1:, :])
        keep = valid.unsqueeze(-1) & ~self.copy_mask(obs[..., -1, :]).unsqueeze(-2)  # [K, B, F, S]
        err = (pred - target).square() * keep
        return err.sum() / keep.sum().clamp_min(1)

    # ---- inference API -----------------------------------------------------------------------

    def _check(self, x: Any, name: str) -> Tensor:
        t = x if isinstance(x, Tensor) else torch.from_numpy(np.array(x))  # a copy: inputs may be read-only
        if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
            raise ValueError(f"{name} must hold numbers, got dtype {t.dtype}")
        t = t.to(device=self.fixed.device, dtype=torch.float32)
        bad = ~torch.isfinite(t)
        if bad.any():
            raise ValueError(f"{name} contains NaN or inf (first at index {torch.nonzero(bad)[0].tolist()}): "
                             "refusing to roll it out")
        return t

    @torch.inference_mode()
    def rollout(self, state: np.ndarray | Tensor, actions: np.ndarray | Tensor) -> Tensor:
        """Imagined futures of every member for every action chunk.

        Args:
            state: the current state ``[S]`` (repeated as the history) or the last
                ``[n_obs_steps, S]`` states, oldest first; env units.
            actions: ``[n, F', A]`` chunks starting at the current step, ``F' <= max_horizon``; env
                units. A chunk is padded with its last action to a whole number of ``horizon`` steps.

        Returns:
            ``states[K, n, F', S]`` (float32, env units): ``s[t+1 .. t+F']`` per member and chunk.
        """
        S, A, o = self.state_dim, self.action_dim, self.n_obs_steps
        hist = self._check(state, "state")
        if hist.shape == (S,):
            hist = hist.expand(o, S)
        if hist.shape != (o, S):
            raise ValueError(f"state must have shape [{S}] or [n_obs_steps={o}, {S}], got {list(hist.shape)}")
        act = self._check(actions, "actions")
        if act.dim() != 3 or act.shape[0] < 1 or act.shape[1] < 1 or act.shape[2] != A:
            raise ValueError(f"actions must have shape [n, F, {A}] with n, F >= 1, got {list(act.shape)}")
        f = act.shape[1]
        if f > self.max_horizon:
            raise ValueError(f"actions have {f} steps but this model rolls out at most {self.max_horizon}: "
                             "split the chunk or retrain with a longer rollout_horizon")
        n = act.shape[0]
        if self._backend == "onnx":
            return self.onnx_rollout(hist.expand(n, o, S), act)
        return self.imagine(hist.expand(1, n, o, S), act.unsqueeze(0)).float()
