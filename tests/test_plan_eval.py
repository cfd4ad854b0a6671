"""``forethought eval --plan``: whole plans judged as the executive judges them, and the disturbance keys."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from forethought.models import cli_eval

PLAN = {"steps": [{"skill": "push", "object": "red_block", "target": "left"},
                  {"skill": "push", "object": "green_block", "target": "right"},
                  {"skill": "push", "object": "blue_block", "target": "center"}]}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def eval_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    parser = argparse.ArgumentParser()
    cli_eval.add_arguments(parser)
    assert cli_eval.run(parser.parse_args([*argv, "--threads", "1", "--json"])) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_eval_plan_reports_plan_success_and_disturbance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(PLAN))
    report = eval_json(["--policy", "expert", "--env", "forethought/PushBlocks-v0", "--seeds", "0-3",
                        "--plan", str(plan_file)], capsys)
    assert report["plan_success_rate"] == report["success_rate"] == 1.0  # the scripted expert tidies up
    assert report["plan_ci_low"] < 1.0 == report["plan_ci_high"]
    assert 0.0 <= report["disturbance_m_median"] <= report["disturbance_m_p90"] < 0.1
    for episode in report["per_episode"]:
        assert episode["task"] == PLAN and episode["failure"] == "" and episode["final_distance"] == 0.0
    # the same plan given inline, as a bare list of steps, gives the same episodes
    inline = eval_json(["--policy", "expert", "--env", "forethought/PushBlocks-v0", "--seeds", "0-3",
                        "--plan", json.dumps(PLAN["steps"])], capsys)
    assert [e["steps"] for e in inline["per_episode"]] == [e["steps"] for e in report["per_episode"]]


def test_eval_plan_reissues_a_broken_step_then_fails_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    """Step 2 (red to the right) always breaks step 1 (red to the left) and back: each is re-issued once
    (``reissues`` sums over steps), then the next break fails the plan."""
    undo = [{"skill": "push", "object": "red_block", "target": "left"},
            {"skill": "push", "object": "red_block", "target": "right"}]
    report = eval_json(["--policy", "expert", "--env", "forethought/PushBlocks-v0", "--seeds", "0-1",
                        "--plan", json.dumps(undo), "--max-reissues", "1"], capsys)
    assert report["plan_success_rate"] == report["success_rate"] == 0.0
    for episode in report["per_episode"]:
        assert not episode["success"] and episode["reissues"] == 2
        assert "step 1" in episode["failure"] and "max_reissues=1" in episode["failure"]


def test_single_step_eval_reports_disturbance_but_no_plan_keys(capsys: pytest.CaptureFixture[str]) -> None:
    report = eval_json(["--policy", "expert", "--env", "forethought/PushBlocks-v0", "--skill", "push",
                        "--seeds", "0-2"], capsys)
    assert report["disturbance_m_median"] is not None and report["plan_success_rate"] is None
    reacher = eval_json(["--policy", "expert", "--env", "forethought/Reacher-v5", "--seeds", "0"], capsys)
    assert reacher["disturbance_m_median"] is None  # no blocks to disturb


@pytest.mark.parametrize("plan, error", [
    ("{not json", "--plan must be JSON"),
    ('{"steps": []}', "non-empty list"),
    ('{"refusal": "no such block"}', "refusal"),
    ('[{"skill": "push", "object": "purple_block", "target": "left"}]', "purple_block"),
])
def test_eval_plan_refusals_are_one_line(plan: str, error: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    cli_eval.add_arguments(parser)
    args = parser.parse_args(["--policy", "expert", "--env", "forethought/PushBlocks-v0", "--plan", plan])
    assert cli_eval.run(args) == 2
    assert error in capsys.readouterr().err
