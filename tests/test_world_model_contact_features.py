"""Contact features of the SIGReg world model (``WorldModelConfig.contact_features``, issue #18): off by
default and then the model without them; their shapes and values on hand-built scenes; training, saving,
loading and the ONNX rollout with them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from forethought.models.world_model import LatentWorldModel, WorldModelConfig
from forethought.models.world_model.configuration_world_model import PRESETS
from forethought.models.world_model.modeling_world_model import CONTACT_UNIT

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"embed_dim": 16, "encoder_hidden": 32, "projector_hidden": 32, "predictor_hidden": 32, "predictor_blocks": 1,
        "action_embed_dim": 16, "sigreg_slices": 16, "num_frames": 3, "history": 2, "rollout_weight": 0.5,
        "predictor_dropout": 0.0, "state_weight": 1.0}
NEW_KEYS = ("contact_features", "agent_xy", "object_slots", "contact_radius")
R = 0.035


def make(contact: bool, seed: int = 0, **overrides) -> LatentWorldModel:
    torch.manual_seed(seed)
    return LatentWorldModel(WorldModelConfig(**{**TINY, "contact_features": contact, **overrides})).train()


def random_batch(config: WorldModelConfig, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    obs = 0.1 * torch.randn(batch, config.num_frames, config.obs_dim, generator=g)
    obs[..., [4, 8]] = 1.0  # two blocks present, the third absent
    obs[..., 12:16] = 0.0
    actions = (torch.rand(batch, config.num_frames - 1, config.frameskip, config.action_dim, generator=g) - 0.5) * 0.5
    return {"obs": obs, "actions": actions}


def reading_model() -> LatentWorldModel:
    """embed_dim = obs_dim and a state head that reads ``z`` as the state itself (identity statistics)."""
    model = make(True, embed_dim=16).eval()
    with torch.no_grad():
        model.state_head.weight.copy_(torch.eye(16))
        model.state_head.bias.zero_()
    return model


def scene(pusher: tuple[float, float], blocks: dict[int, tuple[float, float]]) -> torch.Tensor:
    s = torch.zeros(16)
    s[0:2] = torch.tensor(pusher)
    for slot, xy in blocks.items():
        s[4 + 4 * slot] = 1.0
        s[5 + 4 * slot:7 + 4 * slot] = torch.tensor(xy)
    return s


def block_of(model: LatentWorldModel, targets: list[tuple[float, float]]) -> torch.Tensor:
    return model.processor.normalize_actions(torch.tensor(targets)).reshape(-1)  # [frameskip * 2]


# ---- default off ------------------------------------------------------------------------------


def test_default_off_is_the_model_without_the_fields(tmp_path: Path) -> None:
    """A config without the new keys (an old config.json) builds the same parameters, draws the same initial
    weights as an explicit ``contact_features=False``, and its predictions and loss are the old computation:
    ``pred_projector(predictor(window, present, block))`` block after block."""
    config = WorldModelConfig(**TINY)
    old = {k: v for k, v in config.to_dict().items() if k not in NEW_KEYS}
    assert WorldModelConfig.from_dict(old) == config and config.contact_feature_dim == 0
    a, b = make(False), make(False)
    torch.manual_seed(0)
    c = LatentWorldModel(WorldModelConfig.from_dict(old)).train()
    for name, value in a.state_dict().items():
        assert torch.equal(value, c.state_dict()[name]), name
    assert set(a.state_dict()) == set(c.state_dict()) and not hasattr(a, "contact_skip")
    assert a.predictor.input.in_features == config.history * (config.embed_dim + 1)
    batch = random_batch(config, 8)
    la, lb = a.compute_loss(batch, torch.Generator().manual_seed(1)), b.compute_loss(batch, torch.Generator().manual_seed(1))
    assert torch.equal(la, lb)
    a.eval()
    with torch.no_grad():
        x = a.processor.normalize_obs(batch["obs"])
        blocks = a.processor.normalize_actions(batch["actions"]).reshape(8, 2, config.block_dim)
        z, pred = a.forward_sequence(x, blocks)
        window, present = a.pad_history(z[:, :1])
        expected = []
        for k in range(2):
            nxt = a.pred_projector(a.predictor(window, present, blocks[:, k]))
            expected.append(nxt)
            window, present = torch.cat([window[:, 1:], nxt[:, None]], 1), torch.cat([present[:, 1:], torch.ones(8, 1)], 1)
        assert torch.equal(a.rollout_latent(z[:, :1], blocks), torch.stack(expected, 1))
        first = a.pred_projector(a.predictor(*a.pad_history(z[:, :1]), blocks[:, 0]))
        torch.testing.assert_close(pred[:, 0], first, rtol=1e-6, atol=1e-6)  # forward_sequence batches 2 blocks
        assert torch.equal(a.predict(z[:, :1], blocks[:, 0]), first)
    a.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({k: v for k, v in saved.items() if k not in NEW_KEYS}))
    loaded = LatentWorldModel.from_pretrained(tmp_path)  # strict: an old checkpoint's keys
    assert loaded.config == config


def test_contact_preset_adds_only_the_features_to_the_readout_preset() -> None:
    readout, relational = PRESETS["state-contact-readout"], PRESETS["state-contact-relational"]
    assert relational.model == {**readout.model, "contact_features": True} and relational.train == readout.train
    assert "contact_features" not in readout.model


@pytest.mark.parametrize("bad, match", [
    ({"state_weight": 0.0}, "state_head"),
    ({"object_slots": [[4, 5]]}, "triples"),
    ({"object_slots": [[4, 5, 16]]}, "index the state"),
    ({"agent_xy": [0]}, r"\(x, y\)"),
    ({"contact_radius": 0.0}, "contact_radius"),
    ({"contact_features": "yes"}, "true or false"),
])
def test_bad_contact_configs_raise(bad: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        WorldModelConfig(**{**TINY, "contact_features": True, **bad})


# ---- the features ------------------------------------------------------------------------------


def test_features_have_the_documented_shapes_and_enter_the_predictor() -> None:
    model = make(True)
    c = model.config
    assert c.contact_feature_dim == 3 + 10 * 3 == 33
    assert model.predictor.input.in_features == c.history * (c.embed_dim + 1) + 33
    assert tuple(model.contact_skip.weight.shape) == (c.embed_dim, 33) and not model.contact_skip.weight.any()
    z, blocks = torch.randn(2, 5, c.embed_dim), torch.rand(2, 5, c.block_dim) * 2 - 1
    assert model.contact_inputs(z, blocks).shape == (2, 5, 33)
    assert model.contact_inputs(z[0, 0], blocks[0, 0]).shape == (33,)
    assert model.rollout_latent(torch.randn(4, 1, c.embed_dim), torch.rand(4, 3, c.block_dim)).shape == (4, 3, 16)


def test_features_match_a_hand_built_straight_push() -> None:
    """Pusher at the origin moving 0.2 m along +x; red block 0.1 m ahead on the track, green absent, blue 0.1 m to
    the side of the start."""
    model = reading_model()
    s = scene((0.0, 0.0), {0: (0.1, 0.0), 2: (0.0, 0.1)})
    block = block_of(model, [(0.04 * (i + 1), 0.0) for i in range(5)])
    with torch.no_grad():
        f = model.contact_inputs(s, block).numpy()
    u = 1 / CONTACT_UNIT
    np.testing.assert_allclose(f[:3], [0.2 * u, 0.0, 0.2 * u], atol=1e-4)
    push = 0.2 - (0.1 - R)  # contact once the pusher has gone along - R
    red = [0.1 * u, 0.0, 0.1 * u, 0.0, 0.0, 1.0, push * u, push * u, 0.0, 1.0]
    np.testing.assert_allclose(f[3:13], red, atol=1e-2)  # closest and the chord carry CONTACT_EPS in quadrature
    np.testing.assert_allclose(f[13:23], np.zeros(10), atol=1e-6)  # absent: all zero, its flag too
    blue = [0.0, 0.1 * u, 0.0, 0.1 * u, 0.1 * u, 0.0, 0.0, 0.0, 0.0, 1.0]
    np.testing.assert_allclose(f[23:33], blue, atol=1e-4)


def test_features_follow_a_bent_path_and_the_read_out_state() -> None:
    """The closest approach is to the polyline through the targets, not to its chord; the pusher is where the
    state head reads it, and the features move with the read-out (not the raw) latent."""
    model = reading_model()
    s = scene((0.0, 0.0), {1: (0.15, 0.05)})
    targets = [(0.05, 0.0), (0.1, 0.0), (0.1, 0.05), (0.1, 0.1), (0.1, 0.1)]
    with torch.no_grad():
        f = model.contact_inputs(s, block_of(model, targets)).numpy()
    green = f[13:23]
    k = np.sqrt(0.5)
    expected = [1.5, 0.5, (0.15 + 0.05) * k * 10, (0.05 - 0.15) * k * 10, 0.5, 0.0, 0.0, 0.0, 0.0, 1.0]
    np.testing.assert_allclose(green, expected, atol=1e-3)
    np.testing.assert_allclose(f[:3], [1.0, 1.0, np.sqrt(2.0)], atol=1e-3)
    # a state head that reads the pusher 0.05 m further along x moves every relative feature with it
    with torch.no_grad():
        model.state_head.bias[0] = 0.05
        shifted = model.contact_inputs(s, block_of(model, targets)).numpy()
    np.testing.assert_allclose(shifted[:2], [0.5, 1.0], atol=1e-3)
    np.testing.assert_allclose(shifted[13:15], [1.0, 0.5], atol=1e-3)
    # and an obstacle beside the track is not pushed, one ahead of the pusher's sweep is
    with torch.no_grad():
        model.state_head.bias[0] = 0.0
        side = model.contact_inputs(scene((0.0, 0.0), {0: (0.1, 0.04)}), block_of(model, [(0.2, 0.0)] * 5))
        ahead = model.contact_inputs(scene((0.0, 0.0), {0: (0.1, 0.02)}), block_of(model, [(0.2, 0.0)] * 5))
    assert float(side[9]) == 0.0 and float(ahead[9]) == pytest.approx((0.2 - 0.1 + np.sqrt(R**2 - 0.02**2)) * 10,
                                                                      abs=1e-3)


def test_loss_trains_the_skip_and_reaches_the_state_head_through_the_features() -> None:
    model = make(True)
    batch = random_batch(model.config, 16)
    loss = model.compute_loss(batch, torch.Generator().manual_seed(1))
    assert torch.isfinite(loss)
    loss.backward()
    assert model.contact_skip.weight.grad.abs().sum() > 0
    assert model.predictor.input.weight.grad[:, -33:].abs().sum() > 0
    for p in model.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()
    # the features' own gradient reaches the state head (not only through the readout term)
    model.zero_grad()
    z = torch.randn(8, model.config.embed_dim)
    model.contact_inputs(z, torch.rand(8, model.config.block_dim) * 2 - 1).square().sum().backward()
    assert model.state_head.weight.grad.abs().sum() > 0


# ---- persistence and ONNX ---------------------------------------------------------------------


def trained_contact_model(steps: int = 3) -> LatentWorldModel:
    model = make(True, seed=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for i in range(steps):
        opt.zero_grad()
        model.compute_loss(random_batch(model.config, 16, seed=i)).backward()
        opt.step()
    with torch.no_grad():  # make the skip and the feature columns clearly non-zero
        torch.nn.init.normal_(model.contact_skip.weight, std=0.3)
        model.predictor.input.weight[:, -33:].normal_(std=0.3)
    return model.eval()


def test_a_contact_model_saves_loads_and_exports(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from forethought.models.world_model.onnx_rollout import (OnnxRollout, example_inputs, export_rollout,
                                                             max_abs_difference)

    model = trained_contact_model()
    model.save_pretrained(tmp_path / "m")
    loaded = LatentWorldModel.from_pretrained(tmp_path / "m")
    assert loaded.config.contact_features and loaded.config == model.config
    z, blocks = torch.randn(5, 2, 16), torch.rand(5, 3, model.config.block_dim) * 2 - 1
    with torch.no_grad():
        ref = model.rollout_latent(z, blocks)
        assert torch.equal(loaded.rollout_latent(z, blocks), ref)
        without_skip = model.pred_projector(model.predictor(*model.pad_history(z), blocks[:, 0],
                                                            model.contact_inputs(z[:, -1], blocks[:, 0])))
        assert (ref[:, 0] - without_skip).abs().max() > 1e-3  # the skip is in the prediction
    path = export_rollout(loaded, tmp_path / "rollout.onnx", horizon=3)
    rollout = OnnxRollout(path, threads=1)
    # random latents read out as far-off states make large features and latents (~1e3): compare relative to them
    inputs = example_inputs(loaded, 3, 32)
    with torch.no_grad():
        scale = max(float(loaded.rollout_window(*inputs).abs().max()), float(ref.abs().max()), 1.0)
    assert max_abs_difference(loaded, rollout, n=32) <= 1e-5 * scale
    loaded.load_onnx(path, threads=1)
    got = loaded.onnx_rollout(*loaded.pad_history(z), blocks)
    assert (got - ref).abs().max() <= 1e-5 * scale
    with torch.no_grad():  # the state head is part of the exported graph: its weights are fingerprinted
        loaded.state_head.weight.add_(0.01)
    with pytest.raises(ValueError, match="other weights"):
        rollout.check_matches(loaded)


def test_relational_preset_trains_through_the_world_model_command(tmp_path: Path) -> None:
    from forethought.models.training import train
    from forethought.models.world_model.train_world_model import build_world_model_run
    from forethought.sim.collect import collect

    data = collect("forethought/PushBlocks-v0", episodes=8, noise=0.1, play_fraction=1.0, seed=0,
                   out=tmp_path / "play.parquet", progress=False, max_steps=60)
    model, sample_batch, train_config, run_config, finish = build_world_model_run(
        data, "state-contact-relational", ["play"], seed=0, overrides={"steps": 4, "batch_size": 16, "log_every": 2},
        obs_type="state", progress=False)
    assert model.config.contact_features and model.config.contact_feature_dim == 33
    train(model, sample_batch, train_config, tmp_path / "run", run_config)
    assert model.contact_skip.weight.abs().sum() > 0  # the zero-initialised skip has learnt
    diag = finish(model, tmp_path / "run")
    assert np.isfinite(diag["mse"]) and len(diag["train_state_readout"]) == 2
    assert LatentWorldModel.from_pretrained(tmp_path / "run").config.contact_features
