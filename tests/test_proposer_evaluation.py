"""The shared evaluation harness (``forethought eval``): statistics, seeds, JSON contract, refusals."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from forethought.models import DiffusionProposer, MinMaxNormalizer, ProposerConfig
from forethought.models import cli_eval
from forethought.models.proposer.configuration_proposer import PRESETS
from forethought.models.evaluation import POLICIES, parse_seeds, register_policy, wilson_interval

REQUIRED = {"success_rate", "ci_low", "ci_high", "episodes", "mean_return", "step_ms_median"}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def eval_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli_eval.add_arguments(parser)
    return cli_eval.run(parser.parse_args([*argv, "--threads", "1"]))


def test_wilson_interval_matches_reference_values() -> None:
    # Reference values from the closed form (Wilson 1927), z = 1.96.
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(45, 50) == pytest.approx((0.7864, 0.9565), abs=1e-4)
    assert wilson_interval(50, 50)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_parse_seeds() -> None:
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("7") == [7]
    assert parse_seeds("0,5,10-12") == [0, 5, 10, 11, 12]
    for bad in ("5-2", "a-b", "1,1", "-3"):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


def test_expert_eval_prints_the_json_contract_last(capsys: pytest.CaptureFixture[str]) -> None:
    assert eval_cli(["--policy", "expert", "--env", "forethought/PushBlocks-v0", "--env-kwargs", '{"n_blocks": 1}',
                     "--skill", "push", "--seeds", "0-2", "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    report = json.loads(last)
    assert REQUIRED <= set(report)
    assert report["episodes"] == 3 and report["success_rate"] == 1.0  # the scripted expert solves these
    assert [e["task"]["skill"] for e in report["per_episode"]] == ["push"] * 3
    assert report["ci_low"] < 1.0 == report["ci_high"]


def test_proposer_eval_runs_and_is_reproducible(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    config = ProposerConfig(**PRESETS["tiny"].model, obs_dim=10, action_dim=2, action_low=(-1, -1), action_high=(1, 1),
                            env_id="forethought/Reacher-v5", goal_skills=("reach",), goal_objects=(), goal_regions=(), goal_region_xy=())
    norm = MinMaxNormalizer.fit(np.random.default_rng(0).normal(size=(50, 10)), np.random.default_rng(1).uniform(-1, 1, (50, 2)))
    DiffusionProposer(config, norm).save_pretrained(tmp_path)
    reports = []
    for _ in range(2):
        assert eval_cli(["--policy", "proposer", "--model", str(tmp_path), "--env", "forethought/Reacher-v5",
                         "--seeds", "0-1", "--inference-steps", "2", "--json"]) == 0
        reports.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert reports[0]["mean_return"] == reports[1]["mean_return"]
    assert [e["steps"] for e in reports[0]["per_episode"]] == [50, 50]


def test_eval_refusals_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert eval_cli(["--policy", "magic", "--env", "forethought/Reacher-v5", "--seeds", "0"]) == 2
    assert "registered policies are" in capsys.readouterr().err
    assert eval_cli(["--policy", "proposer", "--model", str(tmp_path / "none"), "--env", "forethought/Reacher-v5"]) == 2
    assert str(tmp_path / "none") in capsys.readouterr().err
    torch.manual_seed(0)
    config = ProposerConfig(**PRESETS["tiny"].model)  # PushBlocks sizes: 16-wide observations
    norm = MinMaxNormalizer.fit(np.zeros((4, 16)), np.zeros((4, 2)))
    DiffusionProposer(config, norm).save_pretrained(tmp_path / "push")
    assert eval_cli(["--policy", "proposer", "--model", str(tmp_path / "push"), "--env", "forethought/Reacher-v5"]) == 2
    assert "width 16" in capsys.readouterr().err
    assert eval_cli(["--policy", "expert", "--env", "forethought/Reacher-v5", "--skill", "push"]) == 2
    assert "not PushBlocks" in capsys.readouterr().err
    assert eval_cli(["--policy", "proposer", "--model", str(tmp_path / "push"), "--env", "forethought/PushBlocks-v0",
                     "--inference-steps", "500"]) == 2
    assert "num_train_timesteps" in capsys.readouterr().err


def test_register_policy_adds_a_named_builder() -> None:
    assert {"proposer", "expert"} <= set(POLICIES)
    with pytest.raises(ValueError, match="already registered"):
        register_policy("expert")(lambda spec: None)
