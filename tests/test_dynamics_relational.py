"""The relational dynamics ensemble: object frames, nearest-first neighbours, slot symmetry, training, ONNX."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from forethought.cli import main as cli_main
from forethought.models.dynamics import DynamicsConfig, DynamicsEnsemble
from forethought.models.dynamics.metrics import block_motion
from forethought.models.dynamics.onnx_ensemble import OnnxEnsemble, export_ensemble, max_abs_difference
from forethought.models.dynamics.train_dynamics import build_dynamics_run
from forethought.sim import scene
from forethought.sim.collect import collect
from forethought.sim.dataset import Dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PRETRAINED = Path(__file__).resolve().parents[1] / "models" / "pretrained"


@pytest.fixture(scope="module")
def pushblocks_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight short PushBlocks episodes (half play, noisy expert), 1-3 blocks."""
    return collect("forethought/PushBlocks-v0", 8, 0.1, 0.5, 0, tmp_path_factory.mktemp("rel") / "pb.parquet",
                   progress=False, max_steps=40)


@pytest.fixture(scope="module")
def relational(pushblocks_data: Path) -> DynamicsEnsemble:
    """An untrained relational ``tiny`` ensemble with random (non-trivial) weights and fitted statistics."""
    model, *_ = build_dynamics_run(pushblocks_data, "tiny", ["expert", "play"], seed=0,
                                   model_overrides={"relational": True})
    for p in model.parameters():  # every output depends on every input
        torch.nn.init.normal_(p, std=0.3, generator=torch.Generator().manual_seed(p.numel()))
    return model.eval()


def _state(blocks: dict[str, tuple[float, float, float]], pusher: tuple[float, float] = (0.0, -0.1)) -> torch.Tensor:
    """``[2, S]``: the same state twice (no motion) with ``blocks[name] = (x, y, yaw)``."""
    s = torch.zeros(scene.OBS_DIM)
    s[:2] = torch.tensor(pusher)
    for name, (x, y, yaw) in blocks.items():
        sl = scene.block_slice(name)
        s[sl] = torch.tensor([1.0, x, y, yaw])
    return s.expand(2, -1).clone()


def test_config_refuses_what_a_relational_model_cannot_use() -> None:
    with pytest.raises(ValueError, match="two presence_groups"):
        DynamicsConfig(state_dim=4, action_dim=2, relational=True, agent_position=(0, 1))
    groups = ((4, 5, 6, 7), (8, 9, 10, 11))
    with pytest.raises(ValueError, match="agent_position"):
        DynamicsConfig(state_dim=12, action_dim=2, relational=True, presence_groups=groups)
    with pytest.raises(ValueError, match="agent's entries"):
        DynamicsConfig(state_dim=12, action_dim=2, relational=True, presence_groups=groups, agent_position=(5, 6))
    config = DynamicsConfig(state_dim=12, action_dim=2, relational=True, presence_groups=groups, agent_position=(0, 1))
    assert config.agent_dims == (0, 1, 2, 3) and config.object_width == 4


def test_object_features_put_the_nearest_present_neighbour_first(relational: DynamicsEnsemble) -> None:
    H = relational.horizon
    obs = _state({"red_block": (0.0, 0.0, 0.1), "green_block": (0.2, 0.0, 0.0), "blue_block": (0.05, 0.01, -0.2)})
    actions = torch.full((H, 2), 0.1)
    feats = relational.object_features(obs, actions)  # [P, I]
    assert feats.shape == (3, relational.config.object_input_dim)
    own = 2 + 1 + 3  # position, yaw, velocity of x, y, yaw
    first = feats[0, -2 * (1 + own):-(1 + own)]  # red's nearest neighbour: blue
    torch.testing.assert_close(first[:4], torch.tensor([1.0, 0.05, 0.01, -0.2]))
    second = feats[0, -(1 + own):]  # then green
    torch.testing.assert_close(second[:4], torch.tensor([1.0, 0.2, 0.0, 0.0]))
    # the pusher and the action targets in red's frame
    agent_at = own
    torch.testing.assert_close(feats[0, agent_at:agent_at + 2], torch.tensor([0.0, -0.1]))
    act_at = own + 2 * relational.n_obs_steps + 2
    torch.testing.assert_close(feats[1, act_at:act_at + 2], torch.tensor([0.1 - 0.2, 0.1]))

    absent = relational.object_features(_state({"red_block": (0.0, 0.0, 0.0), "blue_block": (0.3, 0.0, 0.0)}), actions)
    assert absent[0, -(1 + own):].abs().sum() == 0  # green is absent: last, and all zeros
    assert absent[0, -2 * (1 + own)] == 1.0  # blue, though far, comes first


def test_object_features_do_not_depend_on_where_the_scene_is(relational: DynamicsEnsemble) -> None:
    blocks = {"red_block": (0.0, 0.0, 0.1), "green_block": (0.05, 0.02, 0.0), "blue_block": (-0.1, 0.1, -0.2)}
    actions = torch.linspace(-0.05, 0.05, relational.horizon * 2).reshape(-1, 2)
    shift = torch.tensor([0.07, -0.03])
    here = relational.object_features(_state(blocks), actions)
    moved_blocks = {k: (x + 0.07, y - 0.03, yaw) for k, (x, y, yaw) in blocks.items()}
    there = relational.object_features(_state(moved_blocks, pusher=(0.07, -0.13)), actions + shift)
    torch.testing.assert_close(there[:, :2] - here[:, :2], shift.expand(3, 2))  # only the absolute position moves
    torch.testing.assert_close(there[:, 2:], here[:, 2:])


def test_swapping_two_block_slots_swaps_their_predictions(relational: DynamicsEnsemble) -> None:
    obs = _state({"red_block": (0.02, 0.0, 0.1), "green_block": (0.1, 0.03, 0.0), "blue_block": (-0.1, 0.1, -0.2)})
    obs[0, :2] -= 0.01  # some pusher motion
    actions = torch.linspace(0.0, 0.1, relational.horizon * 2).reshape(1, -1, 2)
    red, green = scene.block_slice("red_block"), scene.block_slice("green_block")
    perm = list(range(scene.OBS_DIM))
    perm[red], perm[green] = list(range(green.start, green.stop)), list(range(red.start, red.stop))
    with torch.no_grad():
        a = relational.predict(obs[None, None], actions[None])  # [K, 1, H, S]
        b = relational.predict(obs[None, None][..., perm], actions[None])[..., perm]
    blocks = slice(4, scene.OBS_DIM)
    torch.testing.assert_close(a[..., blocks], b[..., blocks], atol=1e-6, rtol=0)
    assert (a[..., blocks] - obs[-1, blocks]).abs().max() > 1e-3  # the blocks are predicted to move


def test_relational_training_saves_object_statistics_and_exports(pushblocks_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "rel"
    rc = cli_main(["train", "dynamics", "--data", str(pushblocks_data), "--config", "pushblocks-relational",
                   "--out", str(out), "--threads", "1", "--steps", "40", "--ensemble-size", "2"])
    assert rc == 0
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["final_loss"] < summary["first_loss"], summary
    model = DynamicsEnsemble.from_pretrained(out)
    assert model.config.relational and model.object_core is not None
    assert set(model.normalizer.keys) >= {"object", "object_delta"}
    states = model.rollout(_state({"red_block": (0.0, 0.0, 0.0)}), torch.zeros(3, 16, 2))
    assert states.shape == (2, 3, 16, scene.OBS_DIM) and torch.isfinite(states).all()

    onnx = export_ensemble(model, tmp_path / "rel.onnx")
    ensemble = OnnxEnsemble(onnx, threads=1)
    ensemble.check_matches(model)
    assert max_abs_difference(model, ensemble, batch=1) < 1e-4
    assert max_abs_difference(model, ensemble, batch=7, seed=3) < 1e-4

    flat = tmp_path / "flat"  # object statistics beside a flat config belong to another model
    shutil.copytree(out, flat)
    config = json.loads((flat / "config.json").read_text())
    (flat / "config.json").write_text(json.dumps({**config, "relational": False}))
    with pytest.raises(ValueError, match="not relational"):
        DynamicsEnsemble.from_pretrained(flat)


def test_separation_shoves_the_block_a_prediction_drives_another_through(pushblocks_data: Path) -> None:
    """A hand-made prediction carries red straight through green; ``separate`` makes green yield
    ahead of red instead, keeps the pair ``separation`` apart at every step, and leaves a third
    block (and everything else) alone."""
    model, *_ = build_dynamics_run(pushblocks_data, "tiny", ["expert", "play"], seed=0,
                                   model_overrides={"separation": 0.04})
    current = _state({"red_block": (0.0, 0.0, 0.0), "green_block": (0.045, 0.0, 0.0),
                      "blue_block": (-0.2, 0.2, 0.0)})[-1]
    F = 8
    red, green, blue = (scene.block_slice(b) for b in scene.BLOCK_NAMES)
    states = current.expand(1, 1, F, -1).clone()  # [K=1, B=1, F, S]
    states[..., red.start + 1] = torch.linspace(0.015, 0.12, F)  # red through green, green (predicted) still
    states[..., 0] = states[..., red.start + 1] - 0.035  # the pusher behind red
    out = model.separate(current[None, None, None], states)[0, 0]  # [F, S]
    gap = out[:, green.start + 1] - out[:, red.start + 1]
    assert (gap >= 0.04 - 1e-6).all(), gap
    assert out[-1, green.start + 1] > 0.15  # green shoved ahead, past where red was predicted to end
    torch.testing.assert_close(out[:, red.start + 1], states[0, 0, :, red.start + 1], atol=2e-3, rtol=0)  # red drives
    untouched = [d for d in range(scene.OBS_DIM) if d not in (red.start + 1, green.start + 1)]
    torch.testing.assert_close(out[:, untouched], states[0, 0][:, untouched])

    far = current.clone()
    far[green.start] = 0.0  # green absent: nothing to keep apart
    assert torch.equal(model.separate(far[None, None, None], states)[0, 0, :, red.start + 1],
                       states[0, 0, :, red.start + 1])
    with pytest.raises(ValueError, match="separation"):
        DynamicsConfig(state_dim=16, action_dim=2, separation=-0.1)


@pytest.mark.parametrize("yaw", [0.0, math.pi / 8, -math.pi / 4])
def test_square_contact_keeps_yawed_blocks_their_half_extents_apart(pushblocks_data: Path, yaw: float) -> None:
    """With ``contact="square"``, red driven into green along x stops (green yields) where the two
    squares' half-extents along the line meet: 4 cm face to face, 4 * (cos + sin) cm yawed, 5.66 cm
    corner to corner; the circle keeps 4 cm whatever the yaw. Squares without a separation or a yaw
    entry are refused."""
    model, *_ = build_dynamics_run(pushblocks_data, "tiny", ["expert", "play"], seed=0,
                                   model_overrides={"separation": 0.04, "contact": "square"})
    circle, *_ = build_dynamics_run(pushblocks_data, "tiny", ["expert", "play"], seed=0,
                                    model_overrides={"separation": 0.04})
    current = _state({"red_block": (0.0, 0.0, yaw), "green_block": (0.07, 0.0, yaw),
                      "blue_block": (-0.2, 0.2, 0.0)})[-1]
    F = 8
    red, green = scene.block_slice("red_block"), scene.block_slice("green_block")
    states = current.expand(1, 1, F, -1).clone()  # [K=1, B=1, F, S]
    states[..., red.start + 1] = torch.linspace(0.01, 0.08, F)  # red through green, green (predicted) still
    states[..., 0] = states[..., red.start + 1] - 0.035
    reach = 0.04 * (abs(math.cos(yaw)) + abs(math.sin(yaw)))
    for m, want in ((model, reach), (circle, 0.04)):
        out = m.separate(current[None, None, None], states)[0, 0]  # [F, S]
        gap = out[:, green.start + 1] - out[:, red.start + 1]
        assert (gap >= want - 1e-5).all(), (yaw, gap)
        assert gap[-1] == pytest.approx(want, abs=1e-5)  # red kept driving: the pair is in contact at the end
    with pytest.raises(ValueError, match="square contact"):
        DynamicsConfig(state_dim=16, action_dim=2, contact="square", presence_groups=((4, 5, 6, 7), (8, 9, 10, 11)))
    with pytest.raises(ValueError, match="square contact"):
        DynamicsConfig(state_dim=16, action_dim=2, contact="square", separation=0.04,
                       presence_groups=((4, 5, 6), (8, 9, 10)))
    with pytest.raises(ValueError, match="contact must be one of"):
        DynamicsConfig(state_dim=16, action_dim=2, contact="sphere")


def test_block_motion_scores_predicted_against_real_moves(tmp_path: Path) -> None:
    """``metrics.block_motion`` on shoving play: the shipped ensemble sees most of the block motion,
    a model that predicts no motion sees none, and the classes are counted on the same windows."""
    data = collect("forethought/PushBlocks-v0", 6, 0.0, 1.0, 11, tmp_path / "shove.parquet", progress=False,
                   n_blocks=3, max_steps=80, shove=1.0)
    ds = Dataset.load(data)
    shipped = DynamicsEnsemble.from_pretrained(PRETRAINED / "dynamics-pushblocks")
    still = DynamicsEnsemble.from_pretrained(PRETRAINED / "dynamics-pushblocks")
    for net in (still.core, still.object_core):
        for w, b in zip(net.weights, net.biases):
            torch.nn.init.zeros_(w)
            torch.nn.init.zeros_(b)
    still.normalizer.stats = {k: (torch.zeros_like(v) if k.endswith("delta.mean") else v)
                              for k, v in still.normalizer.stats.items()}  # zero output: zero residual
    good, none = block_motion(shipped, ds), block_motion(still, ds)
    assert good["moved"]["windows"] == none["moved"]["windows"] > 20
    assert good["shoved"]["windows"] == none["shoved"]["windows"] > 0
    assert good["moved"]["ratio"] > 0.5 and good["moved"]["recall"] > 0.8
    assert none["moved"]["recall"] == 0.0 and none["moved"]["ratio"] < 0.05
    assert none["still"]["false_alarm"] == 0.0
    with pytest.raises(ValueError, match="PushBlocks"):
        block_motion(DynamicsEnsemble.from_pretrained(PRETRAINED / "dynamics-reacher"), ds)
