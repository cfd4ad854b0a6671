"""The SIGReg world model as planner dynamics: in latent space (the latent planners' state and
rollout), and through the probe as D-MPC dynamics (shapes, block-end states from the probe,
interpolation, padding, refusals, and a D-MPC episode planned through it)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from forethought.models.control.objectives import Objective
from forethought.models.control.policy import DMPCPolicy
from forethought.models.evaluation import PolicySpec, evaluate
from forethought.models.world_model import LatentWorldModel, WorldModelConfig
from forethought.models.world_model.latent_dynamics import (LatentDynamics, LatentEnsembleDynamics, ProbedLatentDynamics,
                                                            is_world_model_dir)
from forethought.models.world_model.latent_objectives import ProbeObjective
from forethought.models.world_model.probe import LinearProbe
from forethought.sim import scene

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PRETRAINED = Path(__file__).resolve().parents[1] / "models" / "pretrained"
STATE_MODEL = PRETRAINED / "wm-pushblocks-state"


@pytest.fixture(scope="module")
def dynamics() -> ProbedLatentDynamics:
    return ProbedLatentDynamics.from_pretrained(STATE_MODEL)


def start_state() -> np.ndarray:
    s = np.zeros(16, np.float32)
    s[0:2] = (-0.1, 0.05)
    s[4:7] = (1.0, 0.05, 0.02)  # red block present at (0.05, 0.02)
    return s


def test_latent_state_is_the_padded_embedding_history(dynamics: ProbedLatentDynamics) -> None:
    """One observation: the window holds its embedding last, zero slots flagged absent before it;
    a longer history keeps its last ``history`` frames; the rollout is the model's from that history."""
    model = dynamics.model
    H, D = model.config.history, model.config.embed_dim
    latent = LatentDynamics(model, horizon=2)
    assert (latent.n_obs_steps, latent.state_dim, latent.action_dim) == (H, D + 1, model.config.block_dim)
    frames = np.stack([start_state() + np.float32(0.01 * i) for i in range(H + 2)])
    with torch.inference_mode():
        one, many = latent.start(frames[-1]), latent.start(frames)
        z = model.encode(torch.from_numpy(frames))
    assert one.shape == many.shape == (H, D + 1)
    assert torch.equal(one[:, D], torch.tensor([0.0] * (H - 1) + [1.0])) and not one[:-1, :D].any()
    assert torch.allclose(one[-1, :D], z[-1], atol=1e-6)  # encoded alone, not in a batch of H + 2
    assert torch.equal(many[:, :D], z[-H:]) and bool(many[:, D].all())
    blocks = torch.rand(3, 2, model.config.block_dim, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        got = latent.rollout(many, blocks)
        want = model.rollout_latent(z[-H:].expand(3, -1, -1), blocks)
    assert got.shape == (1, 3, 2, D) and torch.equal(got[0], want)
    with pytest.raises(ValueError, match="normalised blocks"):
        latent.rollout(many, torch.zeros(3, 2, 2))
    with pytest.raises(ValueError, match="backend 'tvm'"):
        LatentDynamics(model, backend="tvm")


def test_probe_objective_scores_the_probed_states(dynamics: ProbedLatentDynamics) -> None:
    """The plan step's own objective (D-MPC's) on the probed block ends, corrected by the probe's error
    at the current state, with the current state's presence flags."""
    z = torch.randn(1, 4, 5, dynamics.model.config.embed_dim, generator=torch.Generator().manual_seed(1))
    start = start_state()
    z0 = dynamics.model.encode(start)
    want_states = dynamics.probe(z) + (torch.from_numpy(start) - dynamics.probe(z0))
    want_states[..., dynamics.flags] = torch.from_numpy(start)[dynamics.flags]
    for step in ({"skill": "reach", "target": [0.1, -0.1]}, {"skill": "push", "object": "red_block", "target": "left"}):
        objective = ProbeObjective(dynamics.probe, step, start, z0)
        task = Objective.from_step(step, scene.present_blocks(start), disturbance_weight=0.0)
        task.observe(start)
        want = task.cost(want_states, torch.zeros(1, 4, 5, 10))
        assert torch.allclose(objective.cost(z, torch.zeros(1, 4, 5, 10)), want)
        assert torch.allclose(objective.score(z, torch.zeros(4, 5, 10)), want[0])
    assert (want_states[..., 5:7] - dynamics.probe(z)[..., 5:7]).abs().max() > 1e-3  # the correction is not a no-op


def perturbed_copy(model: LatentWorldModel, seed: int) -> LatentWorldModel:
    """Another ensemble member: ``model`` with its predictor's weights moved by 5% noise."""
    other = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in other.predictor.parameters():
            p.add_(0.05 * p.abs().mean() * torch.randn(p.shape, generator=g))
    return other.eval()


def test_ensemble_stacks_each_members_state_and_rollout(dynamics: ProbedLatentDynamics) -> None:
    """The ensemble's state is the members' side by side, its rollout each member's own on the member axis."""
    a, b = dynamics.model, perturbed_copy(dynamics.model, 0)
    H, D = a.config.history, a.config.embed_dim
    members = [LatentDynamics(a, horizon=2), LatentDynamics(b, horizon=2)]
    ensemble = LatentEnsembleDynamics(members)
    assert (ensemble.n_obs_steps, ensemble.state_dim, ensemble.action_dim) == (H, 2 * (D + 1), a.config.block_dim)
    frames = np.stack([start_state() + np.float32(0.01 * i) for i in range(H)])
    blocks = torch.rand(3, 2, a.config.block_dim, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        state = ensemble.start(frames)
        z = ensemble.rollout(state, blocks)
        want = [m.rollout(m.start(frames), blocks)[0] for m in members]
        encoded = ensemble.encode(frames[-1])
    assert torch.equal(state, torch.cat([m.start(frames) for m in members], dim=-1))
    assert z.shape == (2, 3, 2, D) and torch.equal(z[0], want[0]) and torch.equal(z[1], want[1])
    assert (z[0] - z[1]).abs().max() > 1e-4  # the members differ
    assert torch.equal(encoded, torch.stack([a.encode(frames[-1]), b.encode(frames[-1])]))
    assert torch.equal(members[0].encode(frames[-1]), a.encode(frames[-1])[None])
    with pytest.raises(ValueError, match="at least two"):
        LatentEnsembleDynamics(members[:1])
    with pytest.raises(ValueError, match="horizon"):
        LatentEnsembleDynamics([members[0], LatentDynamics(b, horizon=3)])


def test_probe_objective_reads_each_member_through_its_own_probe(dynamics: ProbedLatentDynamics) -> None:
    """Member ``m``'s latents are scored through probe ``m`` from its own embedding of the state; the
    score is the members' mean cost plus ``beta`` times their std."""
    D = dynamics.model.config.embed_dim
    probes = [dynamics.probe, LinearProbe(dynamics.probe.weight * 1.1, dynamics.probe.bias + 0.01)]
    z = torch.randn(2, 4, 5, D, generator=torch.Generator().manual_seed(1))
    start = start_state()
    z0 = torch.stack([dynamics.model.encode(start), dynamics.model.encode(start) + 0.1])
    step = {"skill": "push", "object": "red_block", "target": "left"}
    objective = ProbeObjective(probes, step, start, z0, beta=0.5)
    actions = torch.zeros(4, 5, 10)
    costs = objective.cost(z, actions.unsqueeze(0))
    for m in range(2):
        alone = ProbeObjective(probes[m], step, start, z0[m]).cost(z[m:m + 1], actions.unsqueeze(0))[0]
        assert torch.allclose(costs[m], alone)
    assert not torch.allclose(costs[0], costs[1])
    assert torch.allclose(objective.score(z, actions), costs.mean(0) + 0.5 * costs.std(0))
    with pytest.raises(ValueError, match="3 members for 2 probes"):
        objective.cost(torch.zeros(3, 4, 5, D), actions.unsqueeze(0))


def test_block_ends_are_the_probed_latent_rollout(dynamics: ProbedLatentDynamics) -> None:
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.2, 0.2, (4, 15, 2)).astype(np.float32)
    states = dynamics.rollout(start_state(), actions)
    assert states.shape == (1, 4, 15, 16) and torch.isfinite(states).all()
    start = torch.from_numpy(start_state())
    with torch.inference_mode():
        residual = start - dynamics.probe(dynamics.model.encode(start))  # the probe's error where the robot is
        want = dynamics.probe(dynamics.model.rollout(start_state(), actions)[0]) + residual  # [4, 3 blocks, 16]
        want[..., dynamics.flags] = start[dynamics.flags]
    assert residual.abs().max() > 1e-3  # the correction is not a no-op
    fs = dynamics.model.config.frameskip
    assert torch.allclose(states[0, :, fs - 1 :: fs], want, atol=1e-5)
    # presence flags are the state's (block 1 present, 2 and 3 absent), not the probe's
    assert (states[0, ..., dynamics.flags] == start[dynamics.flags]).all()
    # between block ends, the states lie on the straight line (step 1 is 1/fs of the way from the start)
    assert torch.allclose(states[0, :, 0], start + (want[:, 0] - start) / fs, atol=1e-5)
    # different actions, different futures
    assert (states[0, 0, -1] - states[0, 1, -1]).abs().max() > 1e-3


def test_chunks_off_the_block_grid_hold_the_last_action(dynamics: ProbedLatentDynamics) -> None:
    actions = np.random.default_rng(1).uniform(-0.2, 0.2, (2, 16, 2)).astype(np.float32)
    held = np.concatenate([actions, np.repeat(actions[:, -1:], 4, axis=1)], axis=1)  # 20 steps = 4 blocks
    other = np.concatenate([actions, np.zeros((2, 4, 2), np.float32)], axis=1)
    wide = ProbedLatentDynamics(dynamics.model, dynamics.probe, horizon=20)
    a, b, c = wide.rollout(start_state(), actions), wide.rollout(start_state(), held), wide.rollout(start_state(), other)
    assert a.shape == (1, 2, 16, 16)
    assert torch.allclose(a[0], b[0, :, :16], atol=1e-6)  # step 16 lies in block 4: the held last action
    assert not torch.allclose(a[0, :, 15], c[0, :, 15], atol=1e-4)  # other padding, other step 16
    # a two-frame history: only its last row is the start state
    assert torch.allclose(dynamics.rollout(np.stack([np.zeros(16, np.float32), start_state()]), actions), a)


def test_refusals(dynamics: ProbedLatentDynamics, tmp_path: Path) -> None:
    bad = start_state()
    bad[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dynamics.rollout(bad, np.zeros((1, 5, 2), np.float32))
    with pytest.raises(ValueError, match=r"actions must have shape"):
        dynamics.rollout(start_state(), np.zeros((1, 17, 2), np.float32))
    with pytest.raises(ValueError, match=r"actions must have shape"):
        dynamics.rollout(start_state(), np.zeros((5, 2), np.float32))
    pixels = LatentWorldModel(WorldModelConfig(obs_type="pixels", image_size=64))
    with pytest.raises(ValueError, match="needs a state model"):
        ProbedLatentDynamics(pixels, LinearProbe(torch.zeros(16, 32), torch.zeros(16)))
    with pytest.raises(ValueError, match="probe maps"):
        ProbedLatentDynamics(dynamics.model, LinearProbe(torch.zeros(16, 8), torch.zeros(16)))
    assert is_world_model_dir(STATE_MODEL) and not is_world_model_dir(PRETRAINED / "dynamics-pushblocks")
    assert not is_world_model_dir(tmp_path / "absent")


def test_dmpc_plans_a_push_through_the_world_model() -> None:
    env_id = "forethought/PushBlocks-v0"
    spec = PolicySpec(model=PRETRAINED / "proposer-pushblocks", env_id=env_id, observation_dim=16, action_dim=2,
                      num_inference_steps=2, action_steps=8, planner="ssr", dynamics=str(STATE_MODEL),
                      options={"samples": "8"})
    policy = DMPCPolicy(spec)
    assert isinstance(policy.dynamics, ProbedLatentDynamics)
    cem = DMPCPolicy(PolicySpec(**{**vars(spec), "planner": "cem", "options": {"samples": "8", "iterations": "1",
                                                                               "elites": "2"}}))
    ensemble = DMPCPolicy(PolicySpec(**{**vars(spec), "planner": "cem", "dynamics": str(PRETRAINED / "dynamics-pushblocks"),
                                        "options": {"samples": "8", "iterations": "1", "elites": "2"}}))
    assert cem.planner.horizon == ensemble.planner.horizon == 16  # without a proposer, the same plan length
    report = evaluate(policy, env_id, [0], policy_name="dmpc", env_kwargs={"n_blocks": 1},
                      task={"skill": "push", "object": "red_block", "target": "left"})
    assert report.episodes == 1 and report.replans >= 1
