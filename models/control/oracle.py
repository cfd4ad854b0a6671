"""Oracle dynamics: roll candidate chunks out in a private copy of the live MuJoCo simulation.

``OracleDynamics`` has the learned ensemble's ``rollout`` interface with one member (K = 1). Bind
it to the live env once (``bind(env)``); every ``rollout`` then copies the live ``MjData`` (qpos,
qvel, act, ctrl, warm start, time) into a private ``MjData`` per candidate and steps the env's own
``step`` on it, so predictions are the env's true next observations, bit for bit. Planning with it
is "oracle MPC", the upper bound for any learned model. The copy shares the live ``MjModel`` (and
so any perturbation of mass, friction or gear) and the live env's task and scene.

Example::

    oracle = OracleDynamics(horizon=16)
    oracle.bind(env)                               # a PushBlocks-v0 or Reacher-v5 env
    states = oracle.rollout(obs, actions)          # [1, n, F, S], the env's own future observations
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import torch
from torch import Tensor


class OracleDynamics:
    """Rollouts in a copy of a live MuJoCo env (see the module docstring).

    Args:
        horizon: the longest chunk accepted (as the learned model's ``horizon``).
    """

    ensemble_size = 1
    n_obs_steps = 1

    def __init__(self, horizon: int = 16) -> None:
        if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
            raise ValueError(f"oracle horizon must be a positive integer, got {horizon!r}")
        self.horizon = horizon
        self._live: Any = None
        self._data: mujoco.MjData | None = None

    def bind(self, env: gym.Env) -> None:
        """Follow ``env`` (any wrapper around a MuJoCo env with ``model``, ``data``, ``step``, ``_get_obs``)."""
        live = env.unwrapped
        if not isinstance(getattr(live, "model", None), mujoco.MjModel) or not hasattr(live, "_get_obs"):
            raise ValueError("oracle dynamics needs a MuJoCo env with model, data and _get_obs, "
                             f"got {type(live).__name__}")
        self._live = live
        self._data = mujoco.MjData(live.model)

    @property
    def state_dim(self) -> int:
        return int(np.prod(self._bound().observation_space.shape))

    @property
    def action_dim(self) -> int:
        return int(np.prod(self._bound().action_space.shape))

    def _bound(self) -> Any:
        if self._live is None:
            raise ValueError("oracle dynamics is not bound to an env: call bind(env) first (the dmpc policy "
                             "does this when the harness hands it the env)")
        return self._live

    def _clone(self) -> Any:
        """A shallow copy of the live env whose ``data`` is the private ``MjData``."""
        live = self._bound()
        if self._data is None or self._data.model is not live.model:
            self._data = mujoco.MjData(live.model)
        sim = object.__new__(type(live))
        sim.__dict__.update(live.__dict__)
        sim.data = self._data
        return sim

    @torch.inference_mode()
    def rollout(self, state: np.ndarray | Tensor, actions: np.ndarray | Tensor) -> Tensor:
        """The live env's true futures ``states[1, n, F, S]`` (float32) for ``actions[n, F, A]`` (env units).

        ``state`` (``[S]`` or a history ``[h, S]``, latest last) must be the live env's current
        observation: the rollout starts from the live simulation, and a mismatch raises ``ValueError``.
        """
        live = self._bound()
        obs = np.asarray(state, dtype=np.float32)
        obs = obs[-1] if obs.ndim == 2 else obs
        now = np.asarray(live._get_obs(), dtype=np.float32)
        if obs.shape != now.shape or not np.allclose(obs, now, atol=1e-5):
            raise ValueError("state is not the bound env's current observation: the oracle rolls out from the live "
                             "simulation, so bind it to the env the observations come from")
        act = np.asarray(actions.cpu() if isinstance(actions, Tensor) else actions, dtype=np.float64)
        if act.ndim != 3 or act.shape[2] != self.action_dim or not 1 <= act.shape[1] <= self.horizon:
            raise ValueError(f"actions must have shape [n, F <= {self.horizon}, {self.action_dim}], "
                             f"got {list(act.shape)}")
        sim = self._clone()
        out = np.empty((act.shape[0], act.shape[1], now.shape[0]), dtype=np.float32)
        for i, chunk in enumerate(act):
            mujoco.mj_copyData(sim.data, live.model, live.data)
            for t, a in enumerate(chunk):
                out[i, t] = sim.step(a)[0]
        return torch.from_numpy(out).unsqueeze(0)
