"""The few-step proposer: ``forethought train distill-proposer`` and the shipped one-step student."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import forethought.sim.envs  # noqa: F401  (registers the forethought/* envs)
from forethought import cli
from forethought.models import DiffusionProposer, MinMaxNormalizer, ProposerConfig
from forethought.models.proposer.configuration_proposer import PRESETS
from forethought.models.proposer.distill_proposer import ProposerDistillation
from forethought.sim.collect import collect

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PRETRAINED = Path(__file__).resolve().parents[1] / "models" / "pretrained"
STUDENT = PRETRAINED / "proposer-pushblocks-fast"
PUSH = {"skill": "push", "object": "red_block", "target": "left"}


def tiny_teacher(seed: int = 0) -> DiffusionProposer:
    """A randomly initialised tiny PushBlocks proposer (action box +-0.27)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    config = ProposerConfig(**{**PRESETS["tiny"].model, "action_low": [-0.27, -0.27], "action_high": [0.27, 0.27]})
    obs = torch.rand(100, config.obs_dim, generator=g) * 0.4 - 0.2
    actions = (torch.rand(100, config.action_dim, generator=g) * 2 - 1) * 0.27
    return DiffusionProposer(config, MinMaxNormalizer.fit(obs, actions)).eval()


def test_distillation_loss_falls_and_teacher_stays_fixed() -> None:
    """A few Adam steps on one batch bring the one-step student towards the teacher's DDIM output."""
    teacher = tiny_teacher()
    before = {k: v.clone() for k, v in teacher.unet.state_dict().items()}
    model = ProposerDistillation(teacher, teacher_steps=4)
    assert [n for n, _ in model.named_parameters()] == [f"student.{n}" for n, _ in model.student.named_parameters()]
    assert model.student.config.prediction_type == "sample" and model.student.config.num_inference_steps == 1
    g = torch.Generator().manual_seed(0)
    batch = {"obs_history": torch.rand(32, 2, 16, generator=g) * 0.4 - 0.2,
             "goal": (torch.rand(32, teacher.config.goal_width, generator=g) > 0.7).float()}
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = model.compute_loss(batch, torch.Generator().manual_seed(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    assert all(torch.equal(v, teacher.unet.state_dict()[k]) for k, v in before.items())


def test_train_verb_writes_a_proposer_checkpoint(tmp_path: Path) -> None:
    teacher_dir = tmp_path / "teacher"
    tiny_teacher().save_pretrained(teacher_dir)
    data = tmp_path / "d.parquet"
    collect("forethought/PushBlocks-v0", 3, 0.1, 0.3, 0, data, progress=False)
    out = tmp_path / "student"
    argv = ["train", "distill-proposer", "--teacher", str(teacher_dir), "--data", str(data), "--config", "tiny",
            "--out", str(out), "--threads", "1"]
    assert cli.main(argv) == 0
    student = DiffusionProposer.from_pretrained(out)
    assert student.config.num_inference_steps == 1 and student.config.prediction_type == "sample"
    run = json.loads((out / "train_config.json").read_text())
    assert run["teacher"] == str(teacher_dir) and run["model"] == "distill-proposer"
    assert cli.main(argv[:-4] + ["--out", str(tmp_path / "x"), "--teacher", str(tmp_path / "absent")]) == 2


def test_narrower_student_starts_from_scratch_and_records_its_widths(tmp_path: Path) -> None:
    teacher_dir = tmp_path / "teacher"
    teacher = tiny_teacher()
    teacher.save_pretrained(teacher_dir)
    data = tmp_path / "d.parquet"
    collect("forethought/PushBlocks-v0", 3, 0.1, 0.3, 0, data, progress=False)
    out = tmp_path / "slim"
    argv = ["train", "distill-proposer", "--teacher", str(teacher_dir), "--data", str(data), "--config", "tiny",
            "--out", str(out), "--threads", "1", "--student-down-dims", "8", "12"]
    assert cli.main(argv) == 0
    student = DiffusionProposer.from_pretrained(out)
    assert list(student.config.down_dims) == [8, 12] and student.config.prediction_type == "sample"
    assert sum(p.numel() for p in student.unet.parameters()) < sum(p.numel() for p in teacher.unet.parameters())
    run = json.loads((out / "train_config.json").read_text())
    assert run["student_down_dims"] == [8, 12] and run["proposer"]["down_dims"] == [8, 12]
    assert run["command"].endswith("--student-down-dims 8 12")
    check_bounds_and_determinism(student.eval())
    # continuing it takes its widths from --init-from; the teacher's widths would not fit its weights
    model = ProposerDistillation(teacher, init_from=student)
    assert list(model.student.config.down_dims) == [8, 12]
    assert all(torch.equal(a, b) for a, b in zip(model.student.unet.state_dict().values(),
                                                 student.unet.state_dict().values()))
    with pytest.raises(ValueError, match="not a student of this teacher"):
        ProposerDistillation(teacher, init_from=student, down_dims=[16, 32])
    with pytest.raises(ValueError, match="multiples of the teacher's n_groups 4"):
        ProposerDistillation(teacher, down_dims=[6, 12])
    with pytest.raises(ValueError, match="2 positive multiples"):
        ProposerDistillation(teacher, down_dims=[8])


def test_same_width_student_is_warm_started_from_the_teacher() -> None:
    teacher = tiny_teacher()
    student = ProposerDistillation(teacher).student
    assert all(torch.equal(a, b) for a, b in zip(student.unet.state_dict().values(), teacher.unet.state_dict().values()))


def check_bounds_and_determinism(student: DiffusionProposer) -> None:
    low, high = torch.tensor(student.config.action_low), torch.tensor(student.config.action_high)
    rng = np.random.default_rng(0)
    for _ in range(3):
        hist = rng.uniform(-0.3, 0.3, (2, 16)).astype(np.float32)
        for goal in (PUSH, None):
            a = student.propose(hist, 32, goal, torch.Generator().manual_seed(7))
            b = student.propose(hist, 32, goal, torch.Generator().manual_seed(7))
            c = student.propose(hist, 32, goal, torch.Generator().manual_seed(8))
            assert a.shape == (32, 16, 2) and torch.equal(a, b) and not torch.equal(a, c)
            assert bool(((a >= low) & (a <= high)).all())


def test_tiny_student_proposals_are_bounded_and_deterministic() -> None:
    check_bounds_and_determinism(ProposerDistillation(tiny_teacher()).student.eval())


@pytest.mark.skipif(not STUDENT.is_dir(), reason="the shipped student is not present")
def test_shipped_student_is_bounded_deterministic_and_close_to_its_teacher() -> None:
    student = DiffusionProposer.from_pretrained(STUDENT)
    check_bounds_and_determinism(student)
    teacher = DiffusionProposer.from_pretrained(PRETRAINED / "proposer-pushblocks")
    env = gym.make("forethought/PushBlocks-v0", n_blocks=1)
    obs = env.reset(seed=0)[0]
    env.close()
    hist = np.stack([obs, obs]).astype(np.float32)
    noise = torch.randn(64, 16, 2, generator=torch.Generator().manual_seed(0))
    cond = teacher.global_cond(torch.from_numpy(hist)[None], teacher.encode_goal(PUSH)).expand(64, -1)
    with torch.no_grad():
        want = teacher.conditional_sample(cond, noise=noise, num_inference_steps=5)
        got = student.conditional_sample(cond, noise=noise)
    # from the same noise the student lands near the teacher's DDIM-5 sample (normalised units)
    assert float((got - want).square().mean()) < 0.1 * float(want.var())
