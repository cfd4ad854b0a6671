"""Contracts of the diffusion proposer: shapes, determinism, persistence, normaliser, sampler, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.configuration_utils import ConfigMixin
from diffusers.models.modeling_utils import ModelMixin
from safetensors.torch import save_file

from forethought.models import DiffusionProposer, MinMaxNormalizer, ProposerConfig
from forethought.models.proposer.configuration_proposer import PRESETS
from forethought.models.proposer.processor_proposer import GoalEncoder
from forethought.models.stats_file import NORMALIZER_FILE
from forethought.sim.scene import BLOCK_NAMES, OBS_DIM, REGION_NAMES, REGIONS

PUSH = {"skill": "push", "object": "red_block", "target": "left"}
TINY = PRESETS["tiny"].model


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def make_proposer(seed: int = 0, action_span: float = 0.25, **overrides) -> DiffusionProposer:
    """A randomly initialised tiny PushBlocks proposer; actions in the data span ``+-action_span``."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    config = ProposerConfig(**{**TINY, **overrides})
    obs = torch.rand(200, config.obs_dim, generator=g) * 0.4 - 0.2
    actions = (torch.rand(200, config.action_dim, generator=g) * 2 - 1) * action_span
    return DiffusionProposer(config, MinMaxNormalizer.fit(obs, actions)).eval()


def history(config: ProposerConfig, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.2, 0.2, (config.n_obs_steps, config.obs_dim)).astype(np.float32)


def test_unet_is_a_diffusers_model_with_its_config_recorded() -> None:
    p = make_proposer()
    assert isinstance(p.unet, ModelMixin) and isinstance(p.unet, ConfigMixin)
    assert tuple(p.unet.config.down_dims) == tuple(TINY["down_dims"])
    assert p.unet.config.global_cond_dim == p.config.n_obs_steps * OBS_DIM + p.config.goal_width
    out = p.unet(torch.zeros(3, 16, 2), torch.tensor([0, 5, 99]), torch.zeros(3, p.config.global_cond_dim))
    assert out.shape == (3, 16, 2)


def test_propose_shapes_dtypes_and_action_box() -> None:
    p = make_proposer()
    c = p.config
    for goal in (None, PUSH):
        a = p.propose(history(c), 5, goal=goal, num_inference_steps=3)
        assert a.shape == (5, c.horizon, c.action_dim) and a.dtype == torch.float32
        assert (a >= torch.tensor(c.action_low)).all() and (a <= torch.tensor(c.action_high)).all()
    p.reset(goal=PUSH, seed=0)
    action = p.select_action(history(c)[-1])
    assert isinstance(action, np.ndarray) and action.shape == (c.action_dim,) and action.dtype == np.float32


def test_same_generator_seed_same_proposals() -> None:
    p = make_proposer()
    h = history(p.config)
    a = p.propose(h, 8, goal=PUSH, generator=torch.Generator().manual_seed(3), num_inference_steps=4)
    b = p.propose(h, 8, goal=PUSH, generator=torch.Generator().manual_seed(3), num_inference_steps=4)
    c = p.propose(h, 8, goal=PUSH, generator=torch.Generator().manual_seed(4), num_inference_steps=4)
    d = p.propose(h, 8, goal=None, generator=torch.Generator().manual_seed(3), num_inference_steps=4)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, d)  # the goal reaches the denoiser


def test_save_load_round_trip_is_bit_exact(tmp_path: Path) -> None:
    p = make_proposer()
    p.save_pretrained(tmp_path)
    assert {f.name for f in tmp_path.iterdir()} == {"config.json", "model.safetensors", NORMALIZER_FILE}
    q = DiffusionProposer.from_pretrained(tmp_path)
    assert q.config == p.config
    h = history(p.config)
    for goal in (None, PUSH):
        a = p.propose(h, 6, goal=goal, generator=torch.Generator().manual_seed(0))
        b = q.propose(h, 6, goal=goal, generator=torch.Generator().manual_seed(0))
        assert torch.equal(a, b)


def test_compute_loss_leaves_the_batch_unchanged() -> None:
    p = make_proposer().train()
    batch = {"obs_history": torch.rand(4, 2, OBS_DIM), "actions": torch.rand(4, 16, 2) * 0.2,
             "goal": torch.ones(4, p.config.goal_width)}
    before = {k: v.clone() for k, v in batch.items()}
    loss = p.compute_loss(batch, torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(torch.equal(batch[k], before[k]) for k in batch)


def test_normaliser_round_trip_and_range() -> None:
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(100, 5, generator=g)
    obs[:, 3] = 0.0  # a constant feature (an absent block)
    act = torch.rand(100, 2, generator=g) * 0.5 - 0.2
    n = MinMaxNormalizer.fit(obs, act)
    z = n.normalize("action", act)
    assert torch.allclose(z.amin(0), torch.tensor([-1.0, -1.0])) and torch.allclose(z.amax(0), torch.tensor([1.0, 1.0]))
    assert torch.allclose(n.unnormalize("action", z), act, atol=1e-6)
    zo = n.normalize("observation", obs)
    assert torch.all(zo[:, 3] == 0) and torch.allclose(n.unnormalize("observation", zo), obs, atol=1e-5)


def test_proposals_are_clamped_to_the_action_box() -> None:
    # Data actions span +-1 m but the box is +-0.27 m: un-normalised samples exceed the box.
    p = make_proposer(action_span=1.0)
    a = p.propose(history(p.config), 64, generator=torch.Generator().manual_seed(0), num_inference_steps=2)
    assert a.abs().max() == pytest.approx(0.27)
    assert (a.abs() == torch.tensor(0.27)).any()


def test_sampler_is_the_diffusers_ddim_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    p = make_proposer()
    assert isinstance(p.noise_scheduler, DDPMScheduler)
    assert p.noise_scheduler.config.num_train_timesteps == 100
    assert p.noise_scheduler.config.beta_schedule == "squaredcos_cap_v2"
    assert p.noise_scheduler.config.clip_sample is True
    sampler = p.make_sampler(7)
    assert isinstance(sampler, DDIMScheduler) and len(sampler.timesteps) == 7
    assert sampler.config.beta_schedule == "squaredcos_cap_v2"
    calls = []
    original = DDIMScheduler.step

    def counting_step(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DDIMScheduler, "step", counting_step)
    p.propose(history(p.config), 2, num_inference_steps=5)
    assert len(calls) == 5


def test_select_action_queue_and_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    p = make_proposer()
    c = p.config
    calls = []
    original = DiffusionProposer.propose

    def counting(self, obs_history, *args, **kwargs):
        calls.append(np.asarray(obs_history).copy())
        return original(self, obs_history, *args, **kwargs)

    monkeypatch.setattr(DiffusionProposer, "propose", counting)
    p.reset(goal=PUSH, seed=0)
    obs = history(c, seed=5)
    p.select_action(obs[0])
    assert np.array_equal(calls[0], np.stack([obs[0], obs[0]]))  # history padded with the first obs
    for _ in range(2 * c.n_action_steps - 1):
        p.select_action(obs[1])
    assert len(calls) == 2  # one proposal per n_action_steps actions
    assert np.array_equal(calls[1], np.stack([obs[1], obs[1]]))
    p.set_goal({"skill": "reach", "target": "center"})  # a new goal drops the queued chunk
    p.select_action(obs[0])
    assert len(calls) == 3
    p.reset()
    p.select_action(obs[1])
    assert np.array_equal(calls[3], np.stack([obs[1], obs[1]]))
    p.reset(n_action_steps=2)
    for _ in range(4):
        p.select_action(obs[0])
    assert len(calls) == 6
    with pytest.raises(ValueError, match="n_action_steps"):
        p.reset(n_action_steps=c.horizon + 1)


def test_goal_encoder_layout_and_errors() -> None:
    enc = GoalEncoder(("push", "reach"), BLOCK_NAMES, REGION_NAMES, [REGIONS[r].center for r in REGION_NAMES])
    assert enc.width == ProposerConfig().goal_width
    assert not enc.encode(None).any()
    v = enc.encode({"skill": "push", "object": "green_block", "target": "blue_block"})
    assert v[0] == 1 and v.sum() == 4 and not v[-3:].any()
    w = enc.encode({"skill": "reach", "target": [0.1, -0.05]})
    assert np.allclose(w[-3:], [1.0, 0.1, -0.05])
    r = enc.encode({"skill": "push", "object": "red_block", "target": "top_left"})
    assert np.allclose(r[-3:], [1.0, -0.2, 0.2]) and r[1 + 2 + 3 + REGION_NAMES.index("top_left")] == 1
    with pytest.raises(ValueError, match="purple_block"):
        enc.encode({"skill": "push", "object": "purple_block", "target": "left"})
    with pytest.raises(ValueError, match="skill"):
        enc.encode({"skill": "fly", "target": "left"})


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((3, OBS_DIM)), r"obs_history must have shape \[2, 16\], got \[3, 16\]"),
        (np.zeros(OBS_DIM), r"obs_history must have shape \[2, 16\], got \[16\]"),
        (np.where(np.eye(2, OBS_DIM) > 0, np.nan, 0.0), "NaN"),
        (np.full((2, OBS_DIM), np.inf), "NaN or inf"),
    ],
)
def test_bad_observation_history_is_refused(bad: np.ndarray, match: str) -> None:
    p = make_proposer()
    with pytest.raises(ValueError, match=match):
        p.propose(bad, 4)


def test_bad_select_action_input_is_refused() -> None:
    p = make_proposer()
    with pytest.raises(ValueError, match=r"obs must have shape \[16\]"):
        p.select_action(np.zeros(10))
    with pytest.raises(ValueError, match="NaN"):
        p.select_action(np.full(OBS_DIM, np.nan))
    with pytest.raises(ValueError, match="n must be a positive integer"):
        p.propose(history(p.config), 0)


def test_ddim_steps_cannot_exceed_train_steps() -> None:
    p = make_proposer()
    with pytest.raises(ValueError, match="num_inference_steps .* 1..num_train_timesteps = 100, got 101"):
        p.propose(history(p.config), 2, num_inference_steps=101)
    with pytest.raises(ValueError, match="num_train_timesteps"):
        ProposerConfig(num_train_timesteps=50, num_inference_steps=60)
    with pytest.raises(ValueError, match="num_train_timesteps"):
        p.reset(num_inference_steps=0)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"horizon": 10, "n_action_steps": 8, "down_dims": (16, 32, 64)}, "divisible"),
        ({"n_action_steps": 17}, "n_action_steps"),
        ({"clip_sample_range": 0.5}, "clip_sample_range"),
        ({"beta_schedule": "cosine"}, "beta_schedule"),
        ({"action_low": (-1.0,)}, "action_low"),
        ({"n_groups": 5}, "n_groups"),
    ],
)
def test_config_validation(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ProposerConfig(**overrides)


def test_config_json_round_trip_and_unknown_keys() -> None:
    c = ProposerConfig(**TINY)
    assert ProposerConfig.from_dict(json.loads(c.to_json())) == c
    with pytest.raises(ValueError, match="unknown proposer config keys.*horizn"):
        ProposerConfig.from_dict({**c.to_dict(), "horizn": 8})


def test_goal_on_a_goal_free_model_is_refused() -> None:
    p = make_proposer(use_goal=False)
    assert p.config.goal_width == 0
    assert p.propose(history(p.config), 2, num_inference_steps=2).shape == (2, 16, 2)
    with pytest.raises(ValueError, match="without goals"):
        p.propose(history(p.config), 2, goal=PUSH)


# ---- checkpoint errors name the file -------------------------------------------------------------


def test_missing_checkpoint_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        DiffusionProposer.from_pretrained(tmp_path / "nowhere")
    make_proposer().save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        DiffusionProposer.from_pretrained(tmp_path)


def test_missing_normaliser_stats_are_named(tmp_path: Path) -> None:
    make_proposer().save_pretrained(tmp_path)
    (tmp_path / NORMALIZER_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=NORMALIZER_FILE):
        DiffusionProposer.from_pretrained(tmp_path)


def test_corrupt_weights_are_named(tmp_path: Path) -> None:
    make_proposer().save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])  # truncated, e.g. an interrupted copy
    with pytest.raises(ValueError, match=f"corrupt proposer weights {weights}"):
        DiffusionProposer.from_pretrained(tmp_path)


def test_corrupt_config_is_named(tmp_path: Path) -> None:
    make_proposer().save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"obs_dim": 16,')
    with pytest.raises(ValueError, match=str(tmp_path / "config.json")):
        DiffusionProposer.from_pretrained(tmp_path)


def test_nan_weights_are_named(tmp_path: Path) -> None:
    p = make_proposer()
    with torch.no_grad():
        p.unet.final_conv[1].bias[0] = float("nan")
    p.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=f"proposer weights {tmp_path / 'model.safetensors'} hold NaN"):
        DiffusionProposer.from_pretrained(tmp_path)


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    make_proposer().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["down_dims"] = [8, 16]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not match"):
        DiffusionProposer.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    ("stats", "match"),
    [
        ({"observation.min": torch.zeros(10), "observation.max": torch.ones(10),
          "action.min": torch.zeros(2), "action.max": torch.ones(2)}, "observation width 10 .* says 16"),
        ({"obs.min": torch.zeros(16), "obs.max": torch.ones(16),
          "action.min": torch.zeros(2), "action.max": torch.ones(2)}, "exactly the keys"),
        ({"observation.min": torch.zeros(16), "observation.max": torch.full((16,), float("nan")),
          "action.min": torch.zeros(2), "action.max": torch.ones(2)}, "NaN"),
    ],
)
def test_mismatched_normaliser_stats_are_refused(tmp_path: Path, stats: dict, match: str) -> None:
    make_proposer().save_pretrained(tmp_path)
    save_file(stats, str(tmp_path / NORMALIZER_FILE))
    with pytest.raises(ValueError, match=match) as info:
        DiffusionProposer.from_pretrained(tmp_path)
    assert str(tmp_path / NORMALIZER_FILE) in str(info.value)
