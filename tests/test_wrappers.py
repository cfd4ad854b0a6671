"""Perturbation wrappers: each one measurably changes the physics (or reward), validates, restores."""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
import pytest

import forethought.sim.envs  # noqa: F401  (registers the envs)
from forethought.sim.scene import BLOCK_NAMES
from forethought.sim.wrappers import ActuatorGearScale, BodyMassScale, GeomFrictionScale, KeepOutReward

PUSH_BLOCKS, REACHER, PUSHER = "forethought/PushBlocks-v0", "forethought/Reacher-v5", "forethought/Pusher-v5"
TASK = {"skill": "push", "object": "red_block", "target": "right"}
MODEL_FIELDS = (
    "body_mass", "body_inertia", "body_subtreemass", "dof_invweight0", "geom_friction",
    "dof_frictionloss", "actuator_gear", "actuator_acc0",
)  # fmt: skip


def place(env, pusher, block, block_vel=(0.0, 0.0)):
    """Reset PushBlocks with only the red block, then put pusher and block where the test wants them."""
    env.reset(seed=0, options={"task": TASK, "n_blocks": 1})
    m, d = env.unwrapped.model, env.unwrapped.data
    d.qvel[:] = 0.0
    for j, v in zip(("pusher_x", "pusher_y", "red_block_x", "red_block_y", "red_block_yaw"), (*pusher, *block, 0.0)):
        d.qpos[m.joint(j).qposadr[0]] = v
    for j, v in zip(("red_block_x", "red_block_y"), block_vel):
        d.qvel[m.joint(j).dofadr[0]] = v
    mujoco.mj_forward(m, d)


def push_blocks_run(wrap, actions, **scene):
    """Pusher and red-block x after each step: ``[T, 2]``."""
    env = gym.make(PUSH_BLOCKS)
    env = wrap(env) if wrap else env
    place(env, **scene)
    out = [env.step(np.asarray(a, np.float32))[0][[0, 5]] for a in actions]
    env.close()
    return np.array(out)


def random_run(env_id, wrap, steps=15):
    """Observations ``[T, O]`` under fixed random actions from a fixed seed."""
    env = gym.make(env_id)
    env = wrap(env) if wrap else env
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    out = [env.step(rng.uniform(-1, 1, env.action_space.shape))[0] for _ in range(steps)]
    env.close()
    return np.array(out)


# -- PushBlocks: each wrapper changes the motion in the physically expected direction ---------------------
PUSH = [(0.2, 0.0)]  # one step (0.1 s) of pushing the block, which starts 7 cm ahead of the pusher
PUSH_SCENE = {"pusher": (-0.15, 0.0), "block": (-0.08, 0.0)}


def test_heavier_block_moves_less_under_the_same_push():
    start = PUSH_SCENE["block"][0]
    base = push_blocks_run(None, PUSH, **PUSH_SCENE)[-1, 1] - start
    heavy = push_blocks_run(lambda e: BodyMassScale(e, 5.0), PUSH, **PUSH_SCENE)[-1, 1] - start
    assert base > 0.06  # measured 0.091 m
    assert heavy < 0.75 * base  # measured 0.048 m


def test_lower_friction_slides_further():
    # the block is flicked at 0.6 m/s with the pusher parked in a corner: it coasts, then stops
    scene = {"pusher": (-0.25, -0.25), "block": (-0.1, 0.0), "block_vel": (0.6, 0.0)}
    hold = [(-0.25, -0.25)] * 8
    slide = {
        s: push_blocks_run(lambda e, s=s: GeomFrictionScale(e, s), hold, **scene)[-1, 1] + 0.1 for s in (0.2, 1.0, 3.0)
    }
    assert slide[1.0] > 0.01  # measured 0.029 m
    assert slide[0.2] > slide[1.0] + 0.01  # measured 0.047 m
    assert slide[3.0] < slide[1.0] - 0.005  # measured 0.015 m


def test_weaker_gear_moves_the_pusher_slower():
    scene = {"pusher": (-0.15, 0.0), "block": (0.0, 0.2)}  # block out of the way
    base = push_blocks_run(None, PUSH, **scene)[-1, 0] + 0.15
    weak = push_blocks_run(lambda e: ActuatorGearScale(e, 0.3), PUSH, **scene)[-1, 0] + 0.15
    assert base > 0.12  # measured 0.163 m
    assert weak < 0.5 * base  # measured 0.049 m


@pytest.mark.parametrize(
    "wrap",
    [lambda e: BodyMassScale(e, 3.0), lambda e: GeomFrictionScale(e, 0.3), lambda e: ActuatorGearScale(e, 0.5)],
    ids=["mass", "friction", "gear"],
)
def test_push_blocks_trajectory_differs(wrap):
    actions = [(0.2, 0.0), (0.2, 0.05), (-0.1, 0.05)]
    base = push_blocks_run(None, actions, **PUSH_SCENE)
    assert np.abs(push_blocks_run(wrap, actions, **PUSH_SCENE) - base).max() > 0.005


# -- the standard envs ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "env_id, wrap, threshold",
    [
        (REACHER, lambda e: BodyMassScale(e, 10.0), 0.02),  # measured 0.08 (armature 1 dominates the links)
        (REACHER, lambda e: ActuatorGearScale(e, 0.5), 1.0),  # measured 6.7 (velocities)
        (PUSHER, lambda e: ActuatorGearScale(e, 0.5), 0.5),  # measured 1.7
    ],
    ids=["reacher-mass", "reacher-gear", "pusher-gear"],
)
def test_standard_env_trajectory_differs(env_id, wrap, threshold):
    base = random_run(env_id, None)
    assert np.abs(random_run(env_id, wrap) - base).max() > threshold


@pytest.mark.parametrize("env_id", [PUSH_BLOCKS, REACHER, PUSHER])
def test_model_scaled_then_restored_exactly_on_close(env_id):
    env = gym.make(env_id)
    model = env.unwrapped.model
    before = {f: getattr(model, f).copy() for f in MODEL_FIELDS}
    env = ActuatorGearScale(GeomFrictionScale(BodyMassScale(env, 2.0), 0.5), 0.25)
    mass, fric, gear = env.env.env, env.env, env
    ids = mass.body_ids
    np.testing.assert_allclose(model.body_mass[ids], 2.0 * before["body_mass"][ids])
    np.testing.assert_allclose(model.body_inertia[ids], 2.0 * before["body_inertia"][ids])
    assert model.body_subtreemass[0] > before["body_subtreemass"][0]  # derived constants recomputed
    np.testing.assert_allclose(model.geom_friction[:, 0], 0.5 * before["geom_friction"][:, 0])
    np.testing.assert_array_equal(model.geom_friction[:, 1:], before["geom_friction"][:, 1:])
    np.testing.assert_allclose(model.actuator_gear, 0.25 * before["actuator_gear"])
    env.reset(seed=0)
    np.testing.assert_allclose(model.actuator_gear, 0.25 * before["actuator_gear"])  # survives reset
    env.close()
    for f in MODEL_FIELDS:
        np.testing.assert_allclose(getattr(model, f), before[f], rtol=1e-12, err_msg=f)
    assert fric.geoms and gear.actuators


def test_default_selections():
    cases = {PUSH_BLOCKS: BLOCK_NAMES, PUSHER: ("object",), REACHER: ("body0", "body1", "fingertip")}
    for env_id, bodies in cases.items():
        env = BodyMassScale(gym.make(env_id), 2.0)
        assert set(env.bodies) == set(bodies)
        env.close()
    assert KeepOutReward(gym.make(PUSH_BLOCKS), [0, 0], radius=0.1).body == "pusher"
    assert KeepOutReward(gym.make(REACHER), [0, 0], radius=0.1).body == "fingertip"
    assert KeepOutReward(gym.make(PUSHER), [0, 0], radius=0.1).body == "tips_arm"
    env = GeomFrictionScale(gym.make(PUSH_BLOCKS), 0.5)
    assert "red_block" in env.geoms and env.dof_ids.size > 0  # block joints' frictionloss (table friction)
    env.close()


# -- validation -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [0, -1.0, float("nan"), float("inf"), True, "2", None])
@pytest.mark.parametrize("cls", [BodyMassScale, GeomFrictionScale, ActuatorGearScale])
def test_scale_validated(cls, scale):
    with pytest.raises(ValueError, match="scale"):
        cls(gym.make(REACHER), scale)


@pytest.mark.parametrize(
    "cls, kw", [(BodyMassScale, "bodies"), (GeomFrictionScale, "geoms"), (ActuatorGearScale, "actuators")]
)
def test_unknown_names_list_the_valid_ones(cls, kw):
    with pytest.raises(ValueError, match=r"unknown .*'nope'.*valid names are .*pusher"):
        cls(gym.make(PUSH_BLOCKS), 2.0, **{kw: ["nope"]})
    with pytest.raises(ValueError, match="at least one"):
        cls(gym.make(PUSH_BLOCKS), 2.0, **{kw: []})


def test_named_selection_scales_only_those():
    env = gym.make(PUSH_BLOCKS)
    m = env.unwrapped.model
    before = m.body_mass.copy()
    env = BodyMassScale(env, 4.0, bodies="green_block")
    changed = np.flatnonzero(m.body_mass != before)
    assert changed.tolist() == [m.body("green_block").id]
    env.close()


def test_non_mujoco_env_rejected():
    with pytest.raises(TypeError, match="not a MuJoCo env"):
        BodyMassScale(gym.make("CartPole-v1"), 2.0)


# -- KeepOutReward --------------------------------------------------------------------------------------
def test_keep_out_penalises_only_inside_the_zone():
    plain, wrapped = gym.make(PUSH_BLOCKS), gym.make(PUSH_BLOCKS)
    zone = {"center": [0.1, 0.0], "half_size": [0.03, 0.05], "penalty": 2.5}
    wrapped = KeepOutReward(wrapped, **zone)
    for env in (plain, wrapped):
        place(env, pusher=(-0.2, 0.2), block=(0.0, -0.2))
    # go into the zone and out again; the plain env gives the reference reward
    seen = []
    for a in [(-0.2, 0.2), (0.1, 0.0), (0.1, 0.0), (0.1, 0.0), (-0.2, 0.2), (-0.2, 0.2)]:
        _, r0, *_ = plain.step(np.asarray(a, np.float32))
        obs, r1, _, _, info = wrapped.step(np.asarray(a, np.float32))
        inside = bool(abs(obs[0] - 0.1) <= 0.03 and abs(obs[1]) <= 0.05)
        assert info["keep_out_violation"] == inside
        assert r1 == pytest.approx(r0 - (2.5 if inside else 0.0))
        assert info["reward_keep_out"] == (-2.5 if inside else 0.0)
        seen.append(inside)
    assert seen[0] is False and True in seen and seen[-1] is False
    plain.close(), wrapped.close()


def test_keep_out_disc_on_reacher_fingertip():
    env = KeepOutReward(gym.make(REACHER), center=[0.21, 0.0], radius=0.03, penalty=1.0)
    _, info = env.reset(seed=0)  # the arm starts near straight along +x: fingertip near (0.21, 0)
    assert info["keep_out_violation"] is True
    env.close()


@pytest.mark.parametrize(
    "kw",
    [
        {"center": [0, 0]},  # neither shape
        {"center": [0, 0], "radius": 0.1, "half_size": 0.1},  # both
        {"center": [0, 0], "radius": -0.1},
        {"center": [0, 0], "half_size": [0.1, 0.0]},
        {"center": [0, 0], "half_size": [0.1, 0.1, 0.1]},
        {"center": [0, np.nan], "radius": 0.1},
        {"center": [0, 0, 0], "radius": 0.1},
        {"center": [0, 0], "radius": 0.1, "penalty": -1.0},
        {"center": [0, 0], "radius": 0.1, "body": "nope"},
    ],
)
def test_keep_out_validated(kw):
    with pytest.raises(ValueError):
        KeepOutReward(gym.make(PUSH_BLOCKS), **kw)
