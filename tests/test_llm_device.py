"""``--device`` / ``--dtype`` for the target and the draft: checked options everywhere, the shipped pair on CUDA where present."""

from __future__ import annotations

import pytest
import torch

from forethought.llm_planner.decoding.engine import EngineConfig
from forethought.llm_planner.decoding.language_model import ModelSpec, resolve_device

CUDA = torch.cuda.is_available()
COMMANDS = [("shove the green block over to the right please", "pushblocks-3"), ("go to the middle of the table", "pushblocks-3"),
            ("push blue next to red and then move the pusher to the bottom left", "pushblocks-3")]


def test_device_and_dtype_are_checked_with_clear_errors():
    assert resolve_device("cpu") == ("cpu", "float32")
    assert resolve_device("cpu", "bfloat16") == ("cpu", "bfloat16")
    assert ModelSpec(path="x").dtype == "float32"
    with pytest.raises(ValueError, match="dtype 'int8'"):
        resolve_device("cpu", "int8")
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu0")
    if not CUDA:
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_plan_cli_takes_device_and_dtype(model_dir, capsys):
    import argparse
    import json

    from forethought.llm_planner.cli import plan

    parser = argparse.ArgumentParser()
    plan.add_arguments(parser)
    args = parser.parse_args(["push the red block left", "--target", model_dir, "--mode", "ar", "--scene", "pushblocks-1",
                              "--dtype", "bfloat16", "--json"])
    assert plan.run(args) == 0 and json.loads(capsys.readouterr().out)["plan"]["steps"] is not None
    if not CUDA:
        assert plan.run(parser.parse_args(["go left", "--target", model_dir, "--device", "cuda"])) == 2
        assert "CUDA is not available" in capsys.readouterr().err


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_shipped_pair_on_cuda_plans_like_target_greedy(dtype):
    from forethought.llm_planner.planning.planner import Planner

    out = {}
    for mode in ("ar", "sd", "ssd"):
        with Planner.load(config=EngineConfig(mode=mode), device="cuda", dtype=dtype) as planner:
            params = next(planner.engine.target.model.parameters())
            assert params.device.type == "cuda" and params.dtype == getattr(torch, dtype)
            out[mode] = [planner.plan(c, s) for c, s in COMMANDS]
            assert all(not r.stats.get("warnings") for r in out[mode]), [r.stats.get("warnings") for r in out[mode]]
    assert all(r.plan["steps"] for r in out["ar"]), [r.plan for r in out["ar"]]
    for mode in ("sd", "ssd"):
        assert [r.tokens for r in out[mode]] == [r.tokens for r in out["ar"]], mode
