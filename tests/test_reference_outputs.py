"""The shipped models compute what they computed before: stored outputs on fixed inputs.

``tests/artifacts/reference_outputs.safetensors`` holds each shipped folder's outputs on fixed
inputs (proposer samples, ensemble and world-model rollouts), written by
``scripts/reference_outputs.py`` with the code before the models were given one shape. If an
intended change (new weights, a new sampler) changes them, regenerate the file with that script,
say so in the commit message, and re-run this test. The tolerance (``ATOL``, ``RTOL``) admits the float32 kernels of
another CPU, not a change of weights or sampler: the file was written on another machine, and an AMD EPYC
reproduces it within 5e-5 (rollouts of 16 steps: ``dynamics-reacher/states``, ``wm-pushblocks-state/z``), while a retrained
model moves its outputs by 1e-2 and more::

    MUJOCO_GL=egl .venv/bin/python scripts/reference_outputs.py --out tests/artifacts/reference_outputs.safetensors
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
ATOL, RTOL = 1e-4, 1e-4


@pytest.fixture(scope="module")
def outputs() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    spec = importlib.util.spec_from_file_location("reference_outputs", ROOT / "scripts" / "reference_outputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    try:
        now = module.reference_outputs()
    finally:
        torch.set_num_threads(threads)
    return load_file(str(ROOT / "tests" / "artifacts" / "reference_outputs.safetensors")), now


def test_every_reference_tensor_is_reproduced(outputs: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]) -> None:
    stored, now = outputs
    assert set(now) == set(stored)
    for name, want in stored.items():
        torch.testing.assert_close(now[name], want, rtol=RTOL, atol=ATOL, msg=lambda m: f"{name}: {m}")


def test_references_are_not_trivial(outputs: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]) -> None:
    stored, _ = outputs
    for name, t in stored.items():
        assert torch.isfinite(t).all() and t.abs().max() > 0, name
    # the pushblocks proposals differ from one another (a constant sampler would pass the match above)
    actions = stored["proposer-pushblocks/actions"]
    assert (actions[0] - actions[1:]).abs().max() > 1e-3
