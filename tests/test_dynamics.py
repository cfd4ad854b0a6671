"""The dynamics ensemble: rollout contract, persistence, errors, training, disagreement and adaptation."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from forethought.cli import main as cli_main
from forethought.models.dynamics import DynamicsConfig, DynamicsEnsemble
from forethought.models.dynamics.metrics import kstep_errors
from forethought.models.dynamics.train_dynamics import build_dynamics_run
from forethought.sim import scene
from forethought.sim.collect import collect
from forethought.sim.dataset import Dataset
from forethought.sim import SHIFTED_ID

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PRETRAINED = Path(__file__).resolve().parents[1] / "models" / "pretrained"
PUSHBLOCKS = PRETRAINED / "dynamics-pushblocks"
REACHER = PRETRAINED / "dynamics-reacher"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dynamics")


@pytest.fixture(scope="module")
def pushblocks_data(data_dir: Path) -> Path:
    """Eight short PushBlocks episodes (half play, noisy expert), 1-3 blocks."""
    return collect("forethought/PushBlocks-v0", 8, 0.1, 0.5, 0, data_dir / "pb.parquet", progress=False, max_steps=40)


@pytest.fixture(scope="module")
def tiny(pushblocks_data: Path) -> DynamicsEnsemble:
    """An untrained ``tiny`` ensemble with a normaliser fitted on the data."""
    model, *_ = build_dynamics_run(pushblocks_data, "tiny", ["expert", "play"], seed=0)
    return model.eval()


@pytest.fixture(scope="module")
def shipped() -> DynamicsEnsemble:
    return DynamicsEnsemble.from_pretrained(PUSHBLOCKS)


def _state(n_blocks: int = 3) -> np.ndarray:
    s = np.zeros(scene.OBS_DIM, np.float32)
    s[:2] = (0.05, -0.1)
    for i, b in enumerate(scene.BLOCK_NAMES[:n_blocks]):
        sl = scene.block_slice(b)
        s[sl] = (1.0, -0.1 + 0.1 * i, 0.08, 0.1)
    return s


def _chunks(n: int = 4, f: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.2, 0.2, (n, f, 2)).astype(np.float32)


# ---- rollout contract ----------------------------------------------------------------------


def test_rollout_shapes_and_dtypes(tiny: DynamicsEnsemble) -> None:
    K, S = tiny.ensemble_size, tiny.state_dim
    s = _state()
    out = tiny.rollout(s, _chunks(5))
    assert out.shape == (K, 5, 16, S) and out.dtype == torch.float32
    hist = np.stack([s, s])
    assert torch.equal(tiny.rollout(torch.from_numpy(hist), torch.from_numpy(_chunks(5))), out)
    short = tiny.rollout(s, _chunks(3, f=4))
    assert short.shape == (K, 3, 4, S)
    moved = hist.copy()
    moved[0, :2] -= 0.02  # a different history changes the prediction
    assert not torch.equal(tiny.rollout(moved, _chunks(5)), out)


def test_members_differ_and_match_one_member_models(tiny: DynamicsEnsemble) -> None:
    out = tiny.rollout(_state(), _chunks(6))
    spread = out.std(0)  # [n, F, S]
    assert spread[..., :2].min() > 0, "members are copies of one model"
    for k in range(tiny.ensemble_size):
        torch.testing.assert_close(tiny.member(k).rollout(_state(), _chunks(6))[0], out[k], rtol=1e-5, atol=1e-6)


def test_absent_block_dims_pass_through(tiny: DynamicsEnsemble) -> None:
    s = _state(n_blocks=1)
    out = tiny.rollout(s, _chunks(4))
    for b in scene.BLOCK_NAMES[1:]:
        assert torch.equal(out[..., scene.block_slice(b)], torch.zeros(*out.shape[:3], 4))
    red = scene.block_slice("red_block").start
    assert torch.equal(out[..., red], torch.ones(out.shape[:3]))  # the presence flag is copied
    assert not torch.equal(out[..., red + 1], torch.full(out.shape[:3], float(s[red + 1])))  # xy is predicted


# ---- persistence and errors ----------------------------------------------------------------


def test_save_load_round_trip(tiny: DynamicsEnsemble, tmp_path: Path) -> None:
    tiny.save_pretrained(tmp_path / "m")
    loaded = DynamicsEnsemble.from_pretrained(tmp_path / "m")
    assert loaded.config == tiny.config
    for (k, a), (k2, b) in zip(tiny.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert torch.equal(loaded.rollout(_state(), _chunks()), tiny.rollout(_state(), _chunks()))


@pytest.mark.parametrize("state, actions, match", [
    (np.zeros(15), _chunks(), r"state must have shape \[16\]"),
    (np.zeros((3, 16)), _chunks(), r"n_obs_steps=2"),
    (_state(), np.zeros((4, 16, 3)), r"actions must have shape \[n, F, 2\]"),
    (_state(), np.zeros((16, 2)), r"actions must have shape"),
    (_state(), np.zeros((0, 16, 2)), r"actions must have shape"),
    (_state(), np.zeros((2, 17, 2)), r"rolls out at most 16"),
    (np.full(16, np.nan), _chunks(), r"state contains NaN"),
    (_state(), np.full((2, 16, 2), np.inf), r"actions contains NaN or inf"),
])
def test_bad_rollout_inputs_raise(tiny: DynamicsEnsemble, state: np.ndarray, actions: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny.rollout(state, actions)


def test_missing_or_corrupt_checkpoint_is_named(tiny: DynamicsEnsemble, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        DynamicsEnsemble.from_pretrained(tmp_path / "nowhere")
    for name, damage in (("model.safetensors", b"not a safetensors file"), ("config.json", b"{oops"),
                         ("normalizer.safetensors", b"\x00" * 7), ("model.safetensors", None),
                         ("normalizer.safetensors", None)):
        d = tmp_path / f"{name}-{damage is None}"
        tiny.save_pretrained(d)
        if damage is None:
            (d / name).unlink()
        else:
            (d / name).write_bytes(damage)
        with pytest.raises(FileNotFoundError if damage is None else ValueError, match=str(d / name)):
            DynamicsEnsemble.from_pretrained(d)


OLD_REACHER_CONFIG = {
    "_class_name": "DynamicsEnsemble", "_diffusers_version": "0.42.1", "action_dim": 2,
    "action_high": [1.0, 1.0], "action_low": [-1.0, -1.0],
    "ensemble_size": 5, "env_id": "forethought/Reacher-v5", "hidden_dim": 160, "horizon": 4, "n_obs_steps": 2,
    "num_layers": 3, "passthrough_dims": [4, 5], "presence_groups": [], "relative_pairs": [], "rollout_horizon": 16,
    "state_dim": 10,
}
"""``dynamics-reacher/config.json`` as the diffusers ``ConfigMixin`` wrote it before ``DynamicsConfig``."""


def _converter():
    path = Path(__file__).resolve().parents[1] / "scripts" / "convert_checkpoints.py"
    spec = importlib.util.spec_from_file_location("convert_checkpoints", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_old_format_folder_is_refused_then_converted_and_rolls_out_the_same(tmp_path: Path) -> None:
    shipped = DynamicsEnsemble.from_pretrained(REACHER)
    old = tmp_path / "dynamics-old"
    shutil.copytree(REACHER, old)
    (old / "config.json").write_text(json.dumps(OLD_REACHER_CONFIG, indent=2, sort_keys=True) + "\n")
    run = json.loads((old / "train_config.json").read_text())
    (old / "train_config.json").write_text(json.dumps({**run, "dynamics": OLD_REACHER_CONFIG}, indent=2) + "\n")
    with pytest.raises(ValueError, match=r"diffusers-format .*convert_checkpoints"):
        DynamicsEnsemble.from_pretrained(old)
    convert = _converter()
    assert convert.main(["--check", str(old)]) == 1
    assert convert.main([str(old)]) == 0
    assert convert.main(["--check", str(old)]) == 0  # idempotent: nothing left to convert
    config = json.loads((old / "config.json").read_text())
    assert config["type"] == "dynamics_ensemble" and not any(k.startswith("_") for k in config)
    assert json.loads((old / "train_config.json").read_text())["dynamics"] == config
    assert (old / "config.json").read_text() == (REACHER / "config.json").read_text()  # as shipped
    converted = DynamicsEnsemble.from_pretrained(old)
    assert converted.config == shipped.config
    state = np.random.default_rng(0).uniform(-0.5, 0.5, shipped.state_dim).astype(np.float32)
    chunks = np.random.default_rng(1).uniform(-1, 1, (6, 16, 2)).astype(np.float32)
    assert torch.equal(converted.rollout(state, chunks), shipped.rollout(state, chunks))


# ---- training, disagreement, adaptation ------------------------------------------------------


def test_tiny_training_halves_the_loss(pushblocks_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    rc = cli_main(["train", "dynamics", "--data", str(pushblocks_data), "--config", "tiny", "--out", str(out),
                   "--sources", "expert", "play", "--threads", "1", "--steps", "200"])
    assert rc == 0
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["final_loss"] < 0.5 * summary["first_loss"], summary
    assert (out / "diagnostics.json").is_file()
    assert DynamicsEnsemble.from_pretrained(out).ensemble_size == 3


def test_chained_rollout_continues_each_member_from_its_own_prediction(pushblocks_data: Path) -> None:
    """``horizon=2, rollout_horizon=5``: three network calls, the last padded, members kept apart."""
    model, *_ = build_dynamics_run(pushblocks_data, "tiny", ["expert", "play"], seed=0,
                                   model_overrides={"horizon": 2, "rollout_horizon": 5})
    model.eval()
    assert (model.horizon, model.max_horizon) == (2, 5)
    for p in model.parameters():  # make every member predict motion, and differently
        torch.nn.init.normal_(p, std=0.3, generator=torch.Generator().manual_seed(p.numel()))
    hist = torch.from_numpy(Dataset.load(pushblocks_data).states[:2].copy())
    actions = torch.linspace(-0.2, 0.2, 5 * 2).reshape(1, 5, 2).expand(3, 5, 2).clone()
    with torch.no_grad():
        states = model.rollout(hist, actions)  # [K, 3, 5, S]
        h = hist.expand(1, 3, 2, -1)
        first = model.predict(h, actions[None, :, 0:2])  # [K, 3, 2, S]
        second = model.predict(first, actions[None, :, 2:4])
        third = model.predict(second, torch.cat([actions[None, :, 4:5]] * 2, dim=2))
    expected = torch.cat([first, second, third[:, :, :1]], dim=2)
    assert states.shape == (model.ensemble_size, 3, 5, scene.OBS_DIM)
    torch.testing.assert_close(states, expected)
    assert not torch.allclose(states[0], states[1])  # members differ, each continuing its own future
    with pytest.raises(ValueError, match="rolls out at most 5"):
        model.rollout(hist, torch.zeros(1, 6, 2))
    with pytest.raises(ValueError, match="rollout_horizon"):
        DynamicsConfig(state_dim=4, action_dim=2, horizon=4, rollout_horizon=2)


def test_ensemble_size_and_weight_decay_overrides(pushblocks_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "single"
    rc = cli_main(["train", "dynamics", "--data", str(pushblocks_data), "--config", "tiny", "--out", str(out),
                   "--threads", "1", "--steps", "20", "--ensemble-size", "1", "--weight-decay", "0.5"])
    assert rc == 0
    model = DynamicsEnsemble.from_pretrained(out)
    assert model.ensemble_size == 1
    run = json.loads((out / "train_config.json").read_text())
    assert "--ensemble-size 1" in run["command"] and "--weight-decay 0.5" in run["command"]
    states = model.rollout(Dataset.load(pushblocks_data).states[:2], torch.zeros(3, model.horizon, model.action_dim))
    assert states.shape[:2] == (1, 3) and torch.isfinite(states).all()


@pytest.mark.parametrize("kind", ["far outside the action box", "random noise chunks"])
def test_disagreement_is_larger_out_of_distribution(shipped: DynamicsEnsemble, pushblocks_data: Path,
                                                    kind: str) -> None:
    w = Dataset.load(pushblocks_data).windows(2, 16, future=1, sources=["expert"])
    pick = np.flatnonzero(w.valid.all(1))[::3][:24]
    rng = np.random.default_rng(0)

    def spread(actions: np.ndarray) -> float:
        return float(np.mean([shipped.rollout(w.obs_history[i], actions[j:j + 1]).std(0)[..., :2].mean()
                              for j, i in enumerate(pick)]))

    data_like = w.actions[pick]
    if kind == "far outside the action box":
        ood = np.sign(rng.normal(size=data_like.shape)).astype(np.float32) * 1.5
    else:
        ood = rng.uniform(-0.27, 0.27, data_like.shape).astype(np.float32)
    assert spread(ood) > 2 * spread(data_like)


def test_reacher_weights_roll_out() -> None:
    model = DynamicsEnsemble.from_pretrained(REACHER)
    assert (model.state_dim, model.action_dim, model.ensemble_size) == (10, 2, 5)
    goal = np.array([1, 1, 0, 0, 0.1, -0.1, 0, 0, 0.11, 0.1], np.float32)
    out = model.rollout(goal, np.zeros((2, 8, 2), np.float32))
    assert out.shape == (5, 2, 8, 10)
    assert torch.equal(out[..., 4:6], torch.from_numpy(goal[4:6]).expand(5, 2, 8, 2))  # the goal is copied


def test_shifted_env_scales_the_physics() -> None:
    nominal, shifted = gym.make("forethought/PushBlocks-v0"), gym.make(SHIFTED_ID)
    m0, m1 = nominal.unwrapped.model, shifted.unwrapped.model
    red = m0.body("red_block").id
    assert m1.body_mass[red] == pytest.approx(3 * m0.body_mass[red])
    assert m1.actuator_gear[:, 0] == pytest.approx(0.4 * m0.actuator_gear[:, 0])
    assert m1.geom_friction[:, 0] == pytest.approx(0.3 * m0.geom_friction[:, 0])
    nominal.close()
    shifted.close()


def test_adapt_lowers_error_on_the_changed_env(data_dir: Path, tmp_path: Path) -> None:
    data = collect(SHIFTED_ID, 6, 0.1, 0.5, 500, data_dir / "shift.parquet", progress=False, max_steps=40)
    out = tmp_path / "adapted"
    argv = ["adapt", "--model", str(PUSHBLOCKS), "--data", str(data), "--out", str(out), "--steps", "60",
            "--lr", "1e-3", "--batch-size", "32", "--threads", "1"]
    assert cli_main(argv) == 0
    assert not list(tmp_path.glob(".adapted.*")), "the temporary run directory was left behind"
    ds = Dataset.load(data)
    before = kstep_errors(DynamicsEnsemble.from_pretrained(PUSHBLOCKS), ds)["model"]
    after = kstep_errors(DynamicsEnsemble.from_pretrained(out), ds)["model"]
    # the shift changes how blocks move: their error must fall; the pusher, already predicted to
    # a few millimetres, may trade a little accuracy, but the error over both must fall
    assert after["block_xy"][16] < before["block_xy"][16] and after["block_xy"][8] < before["block_xy"][8]
    for k in (8, 16):
        total = {name: e["pusher_xy"][k] ** 2 + e["block_xy"][k] ** 2 for name, e in (("before", before), ("after", after))}
        assert total["after"] < total["before"], (before, after)
    diag = json.loads((out / "diagnostics.json").read_text())
    assert diag["after"]["model"]["block_xy"]["16"] == pytest.approx(after["block_xy"][16])
    assert cli_main(argv) == 2  # --out exists: refused, nothing overwritten
