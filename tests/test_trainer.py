"""The shared trainer: loss goes down, outputs and atomic checkpoints, exact resume, refusals."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import forethought.sim.envs  # noqa: F401
from forethought.models import DiffusionProposer
from forethought.models import cli_train
from forethought.models.proposer import train_proposer
from forethought.models.training import CHECKPOINT, TrainConfig, train
from forethought.sim.dataset import Episode, write_dataset
from forethought.sim.experts import make_expert

W = np.array([[1.5], [-2.0], [0.5]])


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


class Toy(nn.Module):
    """The smallest model the trainer accepts: linear regression with ``compute_loss``/``save_pretrained``."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 1)

    def compute_loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        noise = 0.01 * torch.randn(batch["y"].shape, generator=generator)
        return nn.functional.mse_loss(self.lin(batch["x"]), batch["y"] + noise)

    def save_pretrained(self, directory: str | Path) -> None:
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(Path(directory) / "toy.safetensors"))


def toy_batch(rng: np.random.Generator) -> dict[str, torch.Tensor]:
    x = rng.normal(size=(32, 3))
    return {"x": torch.tensor(x, dtype=torch.float32), "y": torch.tensor(x @ W, dtype=torch.float32)}


def toy_config(**kw) -> TrainConfig:
    return TrainConfig(**{"steps": 20, "batch_size": 32, "lr": 0.05, "warmup_steps": 3, "checkpoint_every": 10,
                          "log_every": 5, "ema_power": 0.5, **kw})


def run_toy(out: Path, sample: Callable = toy_batch, resume: bool = False, **kw):
    torch.manual_seed(0)
    return train(Toy(), sample, toy_config(**kw), out, {"model": "toy"}, resume=resume)


def test_training_reduces_loss_and_writes_outputs(tmp_path: Path) -> None:
    result = run_toy(tmp_path, steps=80)
    assert result.steps == 80 and result.final_loss <= result.first_loss / 2
    resolved = json.loads((tmp_path / "train_config.json").read_text())
    assert resolved["model"] == "toy" and resolved["train"]["steps"] == 80 and resolved["train"]["seed"] == 0
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "train_summary.json").read_text())["steps"] == 80
    assert set(load_file(str(tmp_path / "toy.safetensors"))) == {"lin.weight", "lin.bias"}
    assert not (tmp_path / "checkpoints").exists()
    assert not list(tmp_path.glob(".*tmp*"))


def test_same_seed_same_weights(tmp_path: Path) -> None:
    run_toy(tmp_path / "a")
    run_toy(tmp_path / "b")
    run_toy(tmp_path / "c", seed=1)
    a, b, c = (load_file(str(tmp_path / d / "toy.safetensors")) for d in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_interrupted_run_resumes_exactly(tmp_path: Path) -> None:
    run_toy(tmp_path / "full")
    calls = []

    def crashing(rng: np.random.Generator) -> dict[str, torch.Tensor]:
        calls.append(1)
        if len(calls) == 15:
            raise KeyboardInterrupt
        return toy_batch(rng)

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run_toy(out, crashing)
    assert (out / CHECKPOINT).is_file() and not list(out.rglob(".*tmp*"))
    with pytest.raises(ValueError, match="--resume"):
        run_toy(out)
    with pytest.raises(ValueError, match="configuration differs"):
        run_toy(out, resume=True, lr=0.01)
    run_toy(out, resume=True)
    full, resumed = (load_file(str(tmp_path / d / "toy.safetensors")) for d in ("full", "resumed"))
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    summaries = [json.loads((tmp_path / d / "train_summary.json").read_text()) for d in ("full", "resumed")]
    assert summaries[0]["final_loss"] == summaries[1]["final_loss"]
    with pytest.raises(ValueError, match="already holds a trained model"):
        run_toy(out)


def test_resume_needs_a_checkpoint_and_names_a_corrupt_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to resume"):
        run_toy(tmp_path, resume=True)
    with pytest.raises(KeyboardInterrupt):
        _interrupt_after(tmp_path, 12)
    ckpt = tmp_path / CHECKPOINT
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(ValueError, match=f"corrupt training checkpoint {ckpt}"):
        run_toy(tmp_path, resume=True)


def _interrupt_after(out: Path, n: int) -> None:
    calls = []

    def sample(rng: np.random.Generator) -> dict[str, torch.Tensor]:
        calls.append(1)
        if len(calls) > n:
            raise KeyboardInterrupt
        return toy_batch(rng)

    run_toy(out, sample)


def test_nan_loss_stops_training(tmp_path: Path) -> None:
    def nan_batch(rng: np.random.Generator) -> dict[str, torch.Tensor]:
        b = toy_batch(rng)
        b["y"][0] = float("nan")
        return b

    with pytest.raises(FloatingPointError, match="step 1"):
        run_toy(tmp_path, nan_batch)


@pytest.mark.parametrize(("kw", "match"), [({"steps": 0}, "steps"), ({"lr_scheduler": "step"}, "lr_scheduler"),
                                           ({"lr": -1.0}, "lr"), ({"device": "tpu"}, "device")])
def test_train_config_validation(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kw)


# ---- the proposer through the trainer -------------------------------------------------------------


@pytest.fixture(scope="module")
def push_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 scripted-expert episodes of 1-block PushBlocks (well under a second)."""
    env = gym.make("forethought/PushBlocks-v0", n_blocks=1)
    expert = make_expert("forethought/PushBlocks-v0")
    episodes = []
    for seed in range(20):
        obs, info = env.reset(seed=seed)
        expert.reset()
        states, actions, done = [obs], [], False
        while not done:
            a = expert.act(obs, info["task"])
            obs, _, terminated, truncated, _ = env.step(a)
            states.append(obs)
            actions.append(a)
            done = terminated or truncated
        episodes.append(Episode(observation=np.array(states), action=np.array(actions), task=info["task"]))
    path = tmp_path_factory.mktemp("data") / "push.parquet"
    box = env.action_space
    write_dataset(path, episodes, {"env_id": "forethought/PushBlocks-v0", "action_low": box.low.tolist(),
                                   "action_high": box.high.tolist()})
    return path


def test_tiny_proposer_training_halves_the_loss(push_data: Path, tmp_path: Path) -> None:
    model, sample, config, run_config = train_proposer.build_proposer_run(push_data, "tiny", ["expert"], seed=0,
                                                                     overrides={"steps": 100})
    result = train(model, sample, config, tmp_path, run_config)
    assert result.final_loss <= result.first_loss / 2
    p = DiffusionProposer.from_pretrained(tmp_path)
    assert p.config.env_id == "forethought/PushBlocks-v0" and p.config.obs_dim == 16
    assert p.propose(np.zeros((2, 16)), 3, goal={"skill": "reach", "target": "center"}).shape == (3, 16, 2)
    assert json.loads((tmp_path / "train_config.json").read_text())["proposer"] == p.config.to_dict()


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli_train.add_arguments(parser)
    return cli_train.run(parser.parse_args(argv))


def test_cli_errors_are_one_line(tmp_path: Path, push_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.parquet"
    assert cli(["proposer", "--data", str(missing), "--config", "tiny", "--out", str(tmp_path / "o")]) == 2
    assert str(missing) in capsys.readouterr().err
    assert cli(["proposer", "--data", str(push_data), "--config", "huge", "--out", str(tmp_path / "o")]) == 2
    assert "valid configs are" in capsys.readouterr().err


def test_cli_trains_and_records_the_command(tmp_path: Path, push_data: Path) -> None:
    out = tmp_path / "p"
    assert cli(["proposer", "--data", str(push_data), "--config", "tiny", "--out", str(out), "--steps", "5",
                "--threads", "1"]) == 0
    resolved = json.loads((out / "train_config.json").read_text())
    assert resolved["command"].startswith("forethought train proposer --data ")
    assert "--steps 5" in resolved["command"] and resolved["train"]["steps"] == 5


def test_init_from_copies_weights_and_normaliser(tmp_path: Path, push_data: Path) -> None:
    src = tmp_path / "src"
    assert cli(["proposer", "--data", str(push_data), "--config", "tiny", "--out", str(src), "--steps", "5",
                "--threads", "1", "--seed", "1"]) == 0
    saved = DiffusionProposer.from_pretrained(src)
    model, _, _, _ = train_proposer.build_proposer_run(push_data, "tiny", ["expert"], seed=2)
    assert not all(torch.equal(v, saved.unet.state_dict()[k]) for k, v in model.unet.state_dict().items())
    train_proposer.warm_start(model, src)
    assert all(torch.equal(v, saved.unet.state_dict()[k]) for k, v in model.unet.state_dict().items())
    assert all(torch.equal(v, saved.normalizer.stats[k]) for k, v in model.normalizer.stats.items())

    out = tmp_path / "tuned"
    assert cli(["proposer", "--data", str(push_data), "--config", "tiny", "--out", str(out), "--steps", "3",
                "--threads", "1", "--init-from", str(src), "--lr", "1e-4", "--warmup-steps", "1"]) == 0
    resolved = json.loads((out / "train_config.json").read_text())
    assert resolved["init_from"] == str(src) and f"--init-from {src}" in resolved["command"]
    assert resolved["train"]["lr"] == 1e-4 and resolved["train"]["warmup_steps"] == 1


def test_init_from_refuses_another_config(tmp_path: Path, push_data: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    assert cli(["proposer", "--data", str(push_data), "--config", "tiny", "--out", str(src), "--steps", "2",
                "--threads", "1"]) == 0
    model, _, _, _ = train_proposer.build_proposer_run(push_data, "pushblocks", ["expert"], seed=0)
    with pytest.raises(ValueError, match=r"--init-from .*config differs .*down_dims"):
        train_proposer.warm_start(model, src)
    capsys.readouterr()
    assert cli(["proposer", "--data", str(push_data), "--config", "pushblocks", "--out", str(tmp_path / "o"),
                "--steps", "2", "--threads", "1", "--init-from", str(src)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --init-from") and "down_dims" in err and str(src) in err
    missing = tmp_path / "nowhere"
    assert cli(["proposer", "--data", str(push_data), "--config", "tiny", "--out", str(tmp_path / "o2"),
                "--steps", "2", "--threads", "1", "--init-from", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
