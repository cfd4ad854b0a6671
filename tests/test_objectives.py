"""Objectives built from plan steps: values on hand-made states."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from forethought.models.control.objectives import EDGE_LIMIT, KeepOut, Objective
from forethought.sim import REACHER_ID, scene

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PUSH = {"skill": "push", "object": "red_block", "target": "left"}


def pushblocks_states(pusher: tuple[float, float], red: tuple[float, float],
                      green: tuple[float, float] | None = None, steps: int = 4) -> torch.Tensor:
    """``states[steps, S]``: the same PushBlocks observation repeated (red present, green optional)."""
    obs = np.zeros(scene.OBS_DIM, dtype=np.float32)
    obs[scene.PUSHER_POS] = pusher
    for name, xy in (("red_block", red), ("green_block", green)):
        if xy is not None:
            s = scene.block_slice(name).start
            obs[s : s + 3] = (1.0, *xy)
    return torch.from_numpy(np.tile(obs, (steps, 1)))


def cost(objective: Objective, states: torch.Tensor) -> float:
    return float(objective.cost(states, torch.zeros(states.shape[0], 2)))


def test_push_to_region_is_zero_inside_and_grows_with_distance() -> None:
    objective = Objective.from_step(PUSH, ("red_block",), shaping_weight=0.0)
    left = scene.REGIONS["left"].center
    assert cost(objective, pushblocks_states((0.2, 0.2), left)) == 0.0
    far = [cost(objective, pushblocks_states((0.2, 0.2), (left[0] + dx, 0.0))) for dx in (0.1, 0.2, 0.3)]
    assert 0 < far[0] < far[1] < far[2]
    # a block inside the region but within the safety margin of its edge still costs a little
    edge = (left[0] + scene.REGIONS["left"].half[0] - 0.002, 0.0)
    assert 0 < cost(objective, pushblocks_states((0.2, 0.2), edge)) < 0.05


def test_edge_term_charges_a_push_past_where_the_pusher_can_bring_the_block_back() -> None:
    """Both blocks end inside the (margin-shrunk) left region; the one beyond ``EDGE_LIMIT`` (the
    pusher no longer fits between it and the table's edge) costs ``edge_weight`` per metre past it,
    at its furthest step; without the term the two tie. A reach has no pushed block to charge."""
    objective = Objective.from_step(PUSH, ("red_block",), shaping_weight=0.0)
    plain = Objective.from_step(PUSH, ("red_block",), shaping_weight=0.0, edge_weight=0.0)
    assert EDGE_LIMIT == pytest.approx(scene.WORKSPACE_HALF - scene.BLOCK_HALF - scene.PUSHER_RADIUS)
    safe, deep = pushblocks_states((0.2, 0.2), (-0.22, 0.0)), pushblocks_states((0.2, 0.2), (-0.245, 0.03))
    assert cost(plain, safe) == cost(plain, deep) == 0.0
    assert cost(objective, safe) == 0.0
    assert cost(objective, deep) == pytest.approx(objective.edge_weight * (0.245 - EDGE_LIMIT), rel=1e-4)
    passing = deep.clone()
    passing[-1] = safe[-1]  # beyond the limit on the way, back inside at the end: still charged
    assert cost(objective, passing) > cost(objective, safe)
    reach = Objective.from_step({"skill": "reach", "target": "left"}, ("red_block",))
    assert float(reach.edge(deep)) == 0.0
    with pytest.raises(ValueError, match="edge_weight"):
        Objective.from_step(PUSH, ("red_block",), edge_weight=-1.0)


def test_push_shaping_prefers_the_pusher_behind_the_block() -> None:
    objective = Objective.from_step(PUSH, ("red_block",))
    block = (0.0, 0.0)  # target "left" is at -x, so "behind" is at +x
    behind = cost(objective, pushblocks_states((0.04, 0.0), block))
    in_front = cost(objective, pushblocks_states((-0.04, 0.0), block))
    assert behind < in_front


def test_push_next_to_a_block() -> None:
    step = {"skill": "push", "object": "red_block", "target": "green_block"}
    objective = Objective.from_step(step, scene.scene_description(("red_block", "green_block")), shaping_weight=0.0)
    assert cost(objective, pushblocks_states((0.2, 0.2), (0.0, 0.0), green=(0.05, 0.0))) == 0.0
    near, far = (cost(objective, pushblocks_states((0.2, 0.2), (0.0, 0.0), green=(d, 0.0))) for d in (0.1, 0.2))
    assert 0 < near < far
    with pytest.raises(ValueError, match="green_block"):
        Objective.from_step(step, ("red_block",))  # green is not in this scene


def test_reach_point_and_region() -> None:
    point = Objective.from_step({"skill": "reach", "target": [0.1, 0.1]}, ("red_block",))
    assert cost(point, pushblocks_states((0.1, 0.1), (0.0, 0.0))) == 0.0
    assert cost(point, pushblocks_states((0.1, 0.2), (0.0, 0.0))) == pytest.approx(0.3, abs=1e-6)  # 1x mean + 2x final
    region = Objective.from_step({"skill": "reach", "target": "top_right"}, ("red_block",))
    assert cost(region, pushblocks_states((0.2, 0.2), (0.0, 0.0))) == 0.0


def test_terminal_weight_counts_the_last_step_more() -> None:
    objective = Objective.from_step({"skill": "reach", "target": [0.0, 0.0]}, ("red_block",))
    early = pushblocks_states((0.0, 0.0), (0.1, 0.1))
    early[:2, 0] = 0.1  # away at the start, at the point at the end
    late = pushblocks_states((0.0, 0.0), (0.1, 0.1))
    late[2:, 0] = 0.1  # at the point at the start, away at the end
    assert cost(objective, early) < cost(objective, late)


def test_keepout_penalty_is_positive_inside_and_zero_outside() -> None:
    zone = KeepOut.parse("circle:0.1,0.0,0.03")
    objective = Objective.from_step({"skill": "reach", "target": [0.2, 0.0]}, ("red_block",), keepouts=(zone,))
    plain = Objective.from_step({"skill": "reach", "target": [0.2, 0.0]}, ("red_block",))
    inside, outside = pushblocks_states((0.1, 0.01), (-0.1, -0.1)), pushblocks_states((0.1, 0.1), (-0.1, -0.1))
    assert cost(objective, inside) - cost(plain, inside) > 0
    assert cost(objective, outside) == cost(plain, outside)
    assert objective.violated(inside[0].numpy()) and not objective.violated(outside[0].numpy())
    rect = KeepOut.parse("rect:0,0,0.05,0.02")
    assert rect.contains(np.array([0.04, 0.01])) and not rect.contains(np.array([0.0, 0.03]))
    for bad in ("circle:0,0", "square:0,0,1", "circle:0,0,-1", "rect:0,0,a,b"):
        with pytest.raises(ValueError):
            KeepOut.parse(bad)


def test_keepout_guards_the_pushed_block_too() -> None:
    zone = KeepOut("circle", (0.0, 0.0), (0.03,))
    objective = Objective.from_step(PUSH, ("red_block",), keepouts=(zone,))
    assert objective.violated(pushblocks_states((0.2, 0.2), (0.0, 0.01))[0].numpy())


def test_energy_term_and_ensemble_pessimism() -> None:
    step = {"skill": "reach", "target": [0.0, 0.0]}
    objective = Objective.from_step(step, ("red_block",), energy_weight=1.0, beta=1.0)
    states = pushblocks_states((0.0, 0.0), (0.1, 0.1))
    still, jerky = torch.zeros(4, 2), torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.0], [0.1, 0.0]])
    assert float(objective.cost(states, jerky)) > float(objective.cost(states, still)) == 0.0
    agree = torch.stack([states, states])[:, None]  # [K=2, n=1, F, S]
    disagree = agree.clone()
    disagree[1, ..., 0] += 0.1
    mean_only = Objective.from_step(step, ("red_block",))
    c_mean = float(mean_only.score(disagree, still[None]))
    assert float(objective.score(disagree, still[None])) > c_mean > float(objective.score(agree, still[None])) == 0.0


def test_reacher_objective_reads_the_fingertip_from_the_observation() -> None:
    objective = Objective.from_step({"skill": "reach", "target": [0.1, 0.05]}, env_id=REACHER_ID)
    obs = torch.zeros(3, 10)
    obs[:, 4:6] = torch.tensor([0.1, 0.05])  # goal
    assert cost(objective, obs) == 0.0  # fingertip - goal = 0
    obs[:, 8] = 0.02
    assert cost(objective, obs) == pytest.approx(0.06, abs=1e-6)
    with pytest.raises(ValueError, match="Reacher"):
        Objective.from_step({"skill": "push", "object": "red_block", "target": "left"}, env_id=REACHER_ID)
    with pytest.raises(ValueError, match="no objective"):
        Objective.from_step(PUSH, env_id="Hopper-v5")


def test_an_env_with_changed_physics_shares_the_pushblocks_objective() -> None:
    """``forethought/PushBlocksShifted-v0`` has PushBlocks' tasks: the same objective, the same costs."""
    states = torch.zeros(2, scene.OBS_DIM)
    states[:, :2] = torch.tensor([0.2, -0.1])
    step = {"skill": "reach", "target": "left"}
    shifted = Objective.from_step(step, env_id="forethought/PushBlocksShifted-v0")
    nominal = Objective.from_step(step, env_id="forethought/PushBlocks-v0")
    assert type(shifted) is type(nominal)
    assert cost(nominal, states) > 0
    assert cost(shifted, states) == pytest.approx(cost(nominal, states))


def push_chunk(red_end: tuple[float, float], green_end: tuple[float, float], steps: int = 8) -> torch.Tensor:
    """``states[steps, S]``: red (pushed) and green move on straight lines from (0.05, 0) and
    (-0.03, 0) to their end points, with the pusher just behind red."""
    red0, green0 = np.array([0.05, 0.0]), np.array([-0.03, 0.0])
    frames = []
    for t in np.linspace(1.0 / steps, 1.0, steps):
        red = red0 + t * (np.asarray(red_end) - red0)
        green = green0 + t * (np.asarray(green_end) - green0)
        frames.append(pushblocks_states(tuple(red + (0.04, 0.0)), tuple(red), tuple(green), steps=1)[0])
    return torch.stack(frames)


def test_disturbance_ranks_pushing_through_a_block_worse_than_going_around() -> None:
    scene_blocks = ("red_block", "green_block")
    start = push_chunk((0.05, 0.0), (-0.03, 0.0))[0].numpy()  # where both blocks are now
    through = push_chunk((-0.14, 0.0), (-0.21, 0.0))  # red gets further, but carries green with it
    around = push_chunk((-0.10, 0.04), (-0.03, 0.0))  # red goes round green, which stays put
    tidy = Objective.from_step(PUSH, scene_blocks)
    messy = Objective.from_step(PUSH, scene_blocks, disturbance_weight=0.0)
    for objective in (tidy, messy):
        objective.observe(start)
    assert cost(tidy, around) < cost(tidy, through)
    assert cost(messy, through) < cost(messy, around)  # without the term, the shortcut wins
    assert cost(tidy, around) == pytest.approx(cost(messy, around))  # green did not move: no charge
    # the charge is the weight times green's largest displacement beyond the dead-band
    moved = 0.18 - tidy.disturbance_deadband
    assert cost(tidy, through) - cost(messy, through) == pytest.approx(tidy.disturbance_weight * moved, rel=1e-4)


def test_disturbance_dead_band_origin_and_named_blocks() -> None:
    blocks = ("red_block", "green_block")
    still = pushblocks_states((0.2, 0.2), (0.0, 0.0), green=(0.1, 0.1))
    objective = Objective.from_step(PUSH, blocks, disturbance_deadband=0.005)
    objective.observe(still[0].numpy())
    nudged = still.clone()
    nudged[:, scene.block_slice("green_block").start + 1] += 0.004  # inside the dead-band
    assert float(objective.disturbance(nudged)) == 0.0
    nudged[:, scene.block_slice("green_block").start + 1] += 0.006
    assert float(objective.disturbance(nudged)) == pytest.approx(0.005, abs=1e-6)
    # measured from the observed origin, not the first imagined step: a move in step 1 counts
    moved_early = still.clone()
    moved_early[:, scene.block_slice("green_block").start + 1] += 0.03
    assert float(objective.disturbance(moved_early)) == pytest.approx(0.025, abs=1e-6)
    # the block a "next to" step names as its target is not a bystander; a reach names no block
    next_to = Objective.from_step({"skill": "push", "object": "red_block", "target": "green_block"}, blocks)
    next_to.observe(still[0].numpy())
    assert float(next_to.disturbance(moved_early)) == 0.0
    reach = Objective.from_step({"skill": "reach", "target": "top_right"}, blocks, disturbance_deadband=0.005)
    reach.observe(still[0].numpy())
    assert float(reach.disturbance(moved_early)) == pytest.approx(0.025, abs=1e-6)
    for bad in ({"disturbance_weight": -1.0}, {"disturbance_deadband": float("nan")}):
        with pytest.raises(ValueError, match="disturbance"):
            Objective.from_step(PUSH, blocks, **bad)


def test_disturbance_goes_through_the_ensemble_and_beta_charges_its_spread() -> None:
    blocks = ("red_block", "green_block")
    states = pushblocks_states((0.2, 0.2), (-0.2, 0.0), green=(0.1, 0.1))  # red already in "left": d = 0
    agree = torch.stack([states, states, states])[:, None]  # [K=3, n=1, F, S]
    unsure = agree.clone()
    unsure[0, ..., scene.block_slice("green_block").start + 1] += 0.05  # one member foresees a knock
    actions = torch.zeros(1, states.shape[0], 2)
    plain = Objective.from_step(PUSH, blocks, shaping_weight=0.0)
    pessimist = Objective.from_step(PUSH, blocks, shaping_weight=0.0, beta=1.0)
    for objective in (plain, pessimist):
        objective.observe(states[0].numpy())
    assert float(plain.score(agree, actions)) == pytest.approx(0.0, abs=1e-6)
    mean = float(plain.score(unsure, actions))
    assert mean == pytest.approx(plain.disturbance_weight * (0.05 - plain.disturbance_deadband) / 3, rel=1e-4)
    assert float(pessimist.score(unsure, actions)) > mean


def test_disturbance_weight_yields_while_the_task_stalls_and_returns_step_by_step_with_progress() -> None:
    objective = Objective.from_step(PUSH, ("red_block", "green_block"), disturbance_patience=2)
    stuck = pushblocks_states((0.1, 0.0), (0.05, 0.0), green=(-0.03, 0.0))[0].numpy()
    weights = []
    for _ in range(5):  # red never gets closer to "left"
        objective.observe(stuck)
        weights.append(objective.effective_disturbance_weight)
    w = objective.disturbance_weight
    assert weights == [w, w, w, w / 2, w / 4]  # first observation sets the mark; patience 2; then halving
    moved = stuck.copy()
    restored = []
    for _ in range(3):  # red 2 cm nearer its region at every replan: progress
        moved[scene.block_slice("red_block").start + 1] -= 0.02
        objective.observe(moved)
        restored.append(objective.effective_disturbance_weight)
    assert restored == [w / 2, w, w]  # doubled back once per progressing replan, never above the weight
    for _ in range(2):  # stuck again: the patience starts over from the full weight
        objective.observe(moved)
    assert objective.effective_disturbance_weight == w
    objective.observe(moved)
    assert objective.effective_disturbance_weight == w / 2
    with pytest.raises(ValueError, match="disturbance_patience"):
        Objective.from_step(PUSH, ("red_block",), disturbance_patience=-1)
