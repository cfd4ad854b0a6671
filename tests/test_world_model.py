"""The SIGReg world model: contracts, persistence, bad inputs, training through the shared trainer.

Planning and surprise live in ``test_world_model_planning.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from forethought.models.training import train
from forethought.models.world_model import LatentWorldModel, WorldModelConfig
from forethought.models.world_model.sigreg import COLLAPSE_PER_SAMPLE
from forethought.models.world_model.train_world_model import DIAGNOSTICS_FILE, build_world_model_run, init_from
from forethought.sim.collect import collect

TINY = {"embed_dim": 8, "encoder_hidden": 32, "projector_hidden": 32, "predictor_hidden": 32, "predictor_blocks": 1,
        "action_embed_dim": 16, "sigreg_slices": 16}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_model(obs_type: str = "state", seed: int = 0) -> LatentWorldModel:
    torch.manual_seed(seed)
    extra = {"image_size": 16, "cnn_channels": (4, 8)} if obs_type == "pixels" else {}
    model = LatentWorldModel(WorldModelConfig(obs_type=obs_type, **TINY, **extra))
    # one training-mode pass so BatchNorm statistics are not the identity
    batch = random_batch(model.config, 16)
    model.compute_loss(batch).backward()
    return model.eval()


def random_obs(config: WorldModelConfig, *lead: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if config.obs_type == "state":
        return 0.1 * torch.randn(*lead, config.obs_dim, generator=g)
    return torch.randint(0, 256, (*lead, config.image_size, config.image_size, 3), generator=g, dtype=torch.uint8)


def random_batch(config: WorldModelConfig, batch: int) -> dict[str, torch.Tensor]:
    actions = (torch.rand(batch, config.num_frames - 1, config.frameskip, config.action_dim) - 0.5) * 0.5
    return {"obs": random_obs(config, batch, config.num_frames), "actions": actions}


@pytest.mark.parametrize("obs_type", ["state", "pixels"])
def test_encode_and_rollout_shapes(obs_type: str) -> None:
    model = tiny_model(obs_type)
    c = model.config
    assert model.encode(random_obs(c, 3, 2)).shape == (3, 2, c.embed_dim)
    actions = torch.zeros(7, 2 * c.frameskip, c.action_dim)
    states = model.rollout(random_obs(c), actions)  # the Dynamics call: [k, n, blocks, D]
    assert states.shape == (1, 7, 2, c.embed_dim)
    history = model.rollout(random_obs(c, 2), actions)  # a 2-frame history
    assert history.shape == (1, 7, 2, c.embed_dim)


@pytest.mark.parametrize("obs_type", ["state", "pixels"])
def test_save_load_round_trip_is_exact(tmp_path: Path, obs_type: str) -> None:
    model = tiny_model(obs_type)
    model.processor.obs_mean.fill_(0.3)
    model.save_pretrained(tmp_path)
    loaded = LatentWorldModel.from_pretrained(tmp_path)
    assert not loaded.training
    obs = random_obs(model.config, 4)
    actions = torch.rand(4, model.config.frameskip, 2) * 0.2
    assert torch.equal(model.encode(obs), loaded.encode(obs))
    assert torch.equal(model.rollout(obs[0], actions), loaded.rollout(obs[0], actions))
    assert json.loads((tmp_path / "config.json").read_text())["type"] == "sigreg_world_model"


def test_predictor_is_frame_causal() -> None:
    model = tiny_model()
    batch = random_batch(model.config, 4)
    obs = model.processor.normalize_obs(batch["obs"])
    blocks = model.processor.normalize_actions(batch["actions"]).flatten(2)
    _, pred = model.forward_sequence(obs, blocks)
    obs2 = obs.clone()
    obs2[:, 2] += 1.0  # change frame 2: predictions of frames 1 and 2 (from frames 0, 0..1) must not move
    _, pred2 = model.forward_sequence(obs2, blocks)
    assert torch.equal(pred[:, :2], pred2[:, :2]) and not torch.allclose(pred[:, 2], pred2[:, 2])


def test_rollout_matches_step_by_step_prediction() -> None:
    """The rollout (conditioning fused into one product, history padded once) equals feeding
    ``predict`` its own outputs one block at a time, for every starting history length."""
    model = tiny_model()
    c = model.config
    g = torch.Generator().manual_seed(3)
    z = torch.randn(6, c.history, c.embed_dim, generator=g)
    blocks = torch.rand(6, 4, c.block_dim, generator=g) * 2 - 1
    with torch.inference_mode():
        for h in range(1, c.history + 1):
            window, expected = z[:, -h:], []
            for k in range(blocks.shape[1]):
                expected.append(model.predict(window, blocks[:, k]))
                window = torch.cat([window, expected[-1].unsqueeze(1)], 1)[:, -c.history:]
            torch.testing.assert_close(model.rollout_latent(z[:, -h:], blocks), torch.stack(expected, 1),
                                       rtol=1e-5, atol=1e-6)


def test_fused_conditioning_matches_the_per_block_modulations() -> None:
    """``Predictor.condition`` is the (shift, 1 + scale, gate) of every AdaLN-zero layer."""
    model = tiny_model()
    pred = model.predictor
    for layer in [*(blk.modulation for blk in pred.blocks), pred.final_modulation]:
        torch.nn.init.normal_(layer.weight, std=0.1)  # the zero init would hide a wrong slot
        torch.nn.init.normal_(layer.bias, std=0.1)
    block = torch.rand(5, model.config.block_dim)
    with torch.no_grad():
        a = pred.action_encoder(block)
        parts = [m for blk in pred.blocks for m in blk.modulation(a).chunk(3, -1)]
        parts += pred.final_modulation(a).chunk(2, -1)
        expected = torch.cat([p + 1 if i % 3 == 1 else p for i, p in enumerate(parts)], -1)
        torch.testing.assert_close(pred.condition(block), expected, rtol=1e-5, atol=1e-6)


def test_compute_loss_logs_terms_and_gradients_reach_every_part() -> None:
    model = tiny_model().train()
    model.loss_log.clear()
    loss = model.compute_loss(random_batch(model.config, 32))
    loss.backward()
    mse, reg, openloop, readout = model.loss_log[-1]
    assert openloop == 0.0 and readout == 0.0  # rollout_weight and state_weight 0: teacher forcing only
    assert float(loss.detach()) == pytest.approx(mse + model.config.sigreg_weight * reg, rel=1e-5)
    for name in ("encoder", "projector", "predictor", "pred_projector"):
        grads = [p.grad for p in getattr(model, name).parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), name


def test_open_loop_term_rolls_the_predictor_out_from_the_first_frame_alone() -> None:
    torch.manual_seed(0)
    config = WorldModelConfig(**{**TINY, "num_frames": 5, "history": 2, "rollout_weight": 0.5,
                                 "predictor_dropout": 0.0})
    model = LatentWorldModel(config).train()
    batch = random_batch(config, 32)
    loss = model.compute_loss(batch)
    mse, reg, openloop, _ = model.loss_log[-1]
    assert float(loss.detach()) == pytest.approx(mse + 0.5 * openloop + config.sigreg_weight * reg, rel=1e-5)
    with torch.no_grad():  # the same pass by hand: predictions fed back, never the encoded frames
        z = model.embed(model.processor.normalize_obs(batch["obs"]))
        blocks = model.processor.normalize_actions(batch["actions"]).reshape(32, 4, config.block_dim)
        window = torch.cat([z.new_zeros(32, 1, z.shape[-1]), z[:, :1]], 1)
        present = torch.tensor([[0.0, 1.0]]).expand(32, -1)
        errs = []
        for k in range(4):
            nxt = model.pred_projector(model.predictor(window, present, blocks[:, k]))
            errs.append((nxt - z[:, k + 1]).square().mean())
            window, present = torch.cat([window[:, 1:], nxt[:, None]], 1), torch.ones(32, 2)
    assert openloop == pytest.approx(float(torch.stack(errs).mean()), rel=1e-4)
    assert openloop != pytest.approx(mse, rel=1e-3)  # blocks 2-4 see predictions, not the encoded frames


def readout_pair(state_weight: float) -> LatentWorldModel:
    torch.manual_seed(0)
    config = WorldModelConfig(**{**TINY, "num_frames": 3, "history": 2, "rollout_weight": 0.5,
                                 "predictor_dropout": 0.0, "state_weight": state_weight})
    return LatentWorldModel(config).train()


def test_zero_state_weight_is_the_objective_without_the_readout() -> None:
    """state_weight 0 builds no head and no scale (old checkpoints load strictly) and gives the loss of a
    state_weight > 0 model, same seed, less its readout term."""
    plain, readout = readout_pair(0.0), readout_pair(0.7)
    extra = set(readout.state_dict()) - set(plain.state_dict())
    assert extra == {"state_head.weight", "state_head.bias", "processor.delta_scale"}
    for name, value in plain.state_dict().items():
        assert torch.equal(value, readout.state_dict()[name]), name
    batch = random_batch(plain.config, 16)
    loss = plain.compute_loss(batch, torch.Generator().manual_seed(1))
    loss_readout = readout.compute_loss(batch, torch.Generator().manual_seed(1))
    assert plain.loss_log[-1][:3] == readout.loss_log[-1][:3] and plain.loss_log[-1][3] == 0.0
    term = readout.loss_log[-1][3]
    assert term > 0 and float(loss_readout.detach()) == pytest.approx(float(loss.detach()) + 0.7 * term, rel=1e-6)


def test_state_readout_term_matches_a_hand_computation(tmp_path: Path) -> None:
    model = readout_pair(2.0)
    c = model.config
    g = torch.Generator().manual_seed(2)
    deltas = torch.randn(500, c.obs_dim, generator=g).numpy() * np.linspace(0.0, 0.3, c.obs_dim)  # dim 0 never moves
    model.processor.fit(torch.randn(500, c.obs_dim, generator=g).numpy() * 0.5, deltas)
    scale = model.processor.delta_scale
    expected_scale = np.where(np.arange(c.obs_dim) == 0, 1.0, deltas.std(0) / model.processor.obs_std.numpy())
    np.testing.assert_allclose(scale.numpy(), expected_scale, rtol=1e-4)
    batch = random_batch(c, 3)  # B = 3, T = 3
    loss = model.compute_loss(batch)
    mse, reg, openloop, readout = model.loss_log[-1]
    assert float(loss.detach()) == pytest.approx(mse + 0.5 * openloop + 2.0 * readout + c.sigreg_weight * reg,
                                                 rel=1e-5)
    with torch.no_grad():  # the same terms one latent and one dimension at a time
        s = (batch["obs"] - model.processor.obs_mean) / model.processor.obs_std
        z = model.embed(s)
        blocks = model.processor.normalize_actions(batch["actions"]).reshape(3, 2, c.block_dim)
        _, pred = model.forward_sequence(s, blocks)
        rolled = model.rollout_latent(z[:, :1], blocks)
        W, b = model.state_head.weight, model.state_head.bias
        errs = []
        for latents, first in ((z, 0), (pred, 1), (rolled, 1)):
            for i in range(3):
                for t in range(latents.shape[1]):
                    for d in range(c.obs_dim):
                        read = float(W[d] @ latents[i, t] + b[d])
                        errs.append(((read - float(s[i, t + first, d])) / float(scale[d])) ** 2)
    assert len(errs) == 3 * (3 + 2 + 2) * c.obs_dim
    assert readout == pytest.approx(float(np.mean(errs)), rel=1e-4)
    loss.backward()
    assert model.state_head.weight.grad.abs().sum() > 0 and model.encoder.net[0].weight.grad.abs().sum() > 0
    model.save_pretrained(tmp_path)
    loaded = LatentWorldModel.from_pretrained(tmp_path)
    assert torch.equal(loaded.processor.delta_scale, scale)
    assert torch.equal(loaded.state_head.weight, model.state_head.weight)
    with pytest.raises(ValueError, match="deltas exactly when"):
        model.processor.fit(np.zeros((4, c.obs_dim)))


def test_bad_inputs_raise_value_errors() -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match=r"obs must have shape \[\.\.\., 16\]"):
        model.encode(torch.zeros(3, 15))
    with pytest.raises(ValueError, match="NaN"):
        model.encode(torch.full((16,), float("nan")))
    with pytest.raises(ValueError, match="multiple of frameskip"):
        model.rollout(torch.zeros(16), torch.zeros(2, 7, 2))
    with pytest.raises(ValueError, match="NaN"):
        model.rollout(torch.zeros(16), torch.full((2, 5, 2), float("nan")))
    with pytest.raises(ValueError, match="history"):
        model.rollout(torch.zeros(4, 16), torch.zeros(2, 5, 2))
    pixels = tiny_model("pixels")
    with pytest.raises(ValueError, match="image uint8"):
        pixels.encode(torch.zeros(16))


@pytest.mark.parametrize("kwargs,match", [
    ({"obs_type": "depth"}, "obs_type"),
    ({"history": 4}, "history"),
    ({"num_frames": 1}, "num_frames"),
    ({"sigreg_weight": -1.0}, "sigreg_weight"),
    ({"state_weight": -1.0}, "state_weight"),
    ({"obs_type": "pixels", "state_weight": 0.5}, "task state"),
    ({"obs_type": "pixels", "image_size": 60}, "divisible"),
    ({"action_low": (0.0, 0.0), "action_high": (0.0, 1.0)}, "below"),
])
def test_config_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        WorldModelConfig(**kwargs)


def test_checkpoint_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LatentWorldModel.from_pretrained(tmp_path / "nope")
    model = tiny_model()
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="corrupt world-model weights"):
        LatentWorldModel.from_pretrained(tmp_path)
    weights.write_bytes(good)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "embed_dim": 9}))
    with pytest.raises(ValueError, match="do not match"):
        LatentWorldModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt or invalid world-model config"):
        LatentWorldModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with torch.no_grad():
        model.projector.net[0].weight[0, 0] = float("nan")
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="NaN"):
        LatentWorldModel.from_pretrained(tmp_path)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="missing model.safetensors"):
        LatentWorldModel.from_pretrained(tmp_path)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wm") / "play.parquet"
    return collect("forethought/PushBlocks-v0", episodes=16, noise=0.1, play_fraction=1.0, seed=0, out=out,
                   progress=False, max_steps=80)


def test_tiny_training_run_lowers_prediction_loss_without_collapse(small_dataset: Path, tmp_path: Path) -> None:
    model, sample_batch, train_config, run_config, finish = build_world_model_run(
        small_dataset, "tiny", ["play"], seed=0, overrides={"steps": 120}, obs_type="state", progress=False)
    result = train(model, sample_batch, train_config, tmp_path, run_config)
    assert result.final_loss < 0.5 * result.first_loss
    log = np.array(model.loss_log)  # (mse, sigreg, open-loop mse, state readout) per step
    assert log[-20:, 0].mean() < 0.5 * log[:20, 0].mean()
    collapse = COLLAPSE_PER_SAMPLE * train_config.batch_size
    assert log[-20:, 1].mean() < 0.2 * collapse  # far below 0.402 B (and the floor is 1.05)
    diag = finish(model, tmp_path)
    assert json.loads((tmp_path / DIAGNOSTICS_FILE).read_text())["effective_rank"] == diag["effective_rank"]
    assert diag["effective_rank"] > 4  # of D = 16: not collapsed to a line
    loaded = LatentWorldModel.from_pretrained(tmp_path)
    assert loaded.config.obs_dim == 16 and (tmp_path / "probe.safetensors").is_file()


def test_init_continues_a_finished_run_and_refuses_another_config(small_dataset: Path, tmp_path: Path) -> None:
    """``--init DIR`` starts from DIR's weights and statistics; ``forethought train world-model --init``
    records it and continues from there; a folder of another config is refused by name."""
    from forethought.cli import main

    def run(out: Path, *extra: str) -> None:
        assert main(["train", "world-model", "--obs", "state", "--data", str(small_dataset), "--config", "tiny",
                     "--sources", "play", "--out", str(out), "--seed", "0", "--steps", "40", "--threads", "1",
                     *extra]) in (0, None)

    run(tmp_path / "first")
    first = LatentWorldModel.from_pretrained(tmp_path / "first")
    model, *_ = build_world_model_run(small_dataset, "tiny", ["play"], seed=1, obs_type="state", progress=False)
    init_from(model, tmp_path / "first")
    assert all(torch.equal(v, first.state_dict()[k]) for k, v in model.state_dict().items())
    run(tmp_path / "more", "--init", str(tmp_path / "first"))
    more = LatentWorldModel.from_pretrained(tmp_path / "more")
    assert json.loads((tmp_path / "more" / "train_config.json").read_text())["init"] == str(tmp_path / "first")
    assert torch.equal(more.processor.obs_mean, first.processor.obs_mean)
    w = "encoder.net.0.weight"
    moved = (more.state_dict()[w] - first.state_dict()[w]).abs().max()
    fresh = build_world_model_run(small_dataset, "tiny", ["play"], seed=0, obs_type="state", progress=False)[0]
    assert 0 < moved < (fresh.state_dict()[w] - first.state_dict()[w]).abs().max()  # continued, not restarted
    other, *_ = build_world_model_run(small_dataset, "state", ["play"], seed=0, obs_type="state", progress=False)
    with pytest.raises(ValueError, match="differs from the preset's in .*embed_dim"):
        init_from(other, tmp_path / "first")


def test_readout_run_fits_the_delta_scale_and_logs_the_term(small_dataset: Path, tmp_path: Path) -> None:
    model, sample_batch, train_config, run_config, finish = build_world_model_run(
        small_dataset, "state-contact-readout", ["play"], seed=0, overrides={"steps": 6, "batch_size": 32, "log_every": 3},
        obs_type="state", progress=False)
    scale = model.processor.delta_scale
    assert torch.all(scale > 0) and not torch.all(scale == 1.0)
    assert scale[4] == 1.0  # the red block's presence flag never changes
    train(model, sample_batch, train_config, tmp_path, run_config)
    diag = finish(model, tmp_path)
    assert len(diag["train_state_readout"]) == 2 and all(v > 0 for v in diag["train_state_readout"])


def test_obs_flag_must_agree_with_the_preset(small_dataset: Path) -> None:
    with pytest.raises(ValueError, match="contradicts"):
        build_world_model_run(small_dataset, "tiny", ["play"], seed=0, obs_type="pixels", progress=False)
