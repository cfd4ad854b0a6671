"""``forethought collect`` and ``forethought render`` on the real PushBlocks env."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

import forethought.sim.envs  # noqa: F401  (registers the envs)
from forethought.cli import main
from forethought.sim import scene
from forethought.sim.collect import GRAZE_BAND, _pushblocks_graze_path, collect
from forethought.sim.dataset import Dataset, read_dataset
from forethought.sim.experts import make_expert
from forethought.sim.render import rollout_frames, write_video

ENV = "forethought/PushBlocks-v0"
EPISODES, SEED, PLAY, MAX_STEPS = 6, 11, 0.5, 25


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("collect") / "pb.parquet"
    return collect(ENV, EPISODES, 0.0, PLAY, SEED, out, progress=False, max_steps=MAX_STEPS)


def test_collect_writes_readable_dataset_with_metadata(collected: Path) -> None:
    ds = read_dataset(collected)
    m = ds.metadata
    assert ds.num_episodes == EPISODES and ds.obs_dim == scene.OBS_DIM and ds.act_dim == scene.ACTION_DIM
    assert (m["env_id"], m["seed"], m["noise"], m["play_fraction"]) == (ENV, SEED, 0.0, PLAY)
    assert m["obs_labels"] == list(scene.OBS_LABELS)
    assert m["action_low"] == pytest.approx([-scene.WORKSPACE_HALF] * 2)  # the float32 box, exactly
    assert m["action_high"] == pytest.approx([scene.WORKSPACE_HALF] * 2)
    assert m["n_blocks"] == [1, 3] and m["max_steps"] == MAX_STEPS
    assert m["command"].startswith(f"forethought collect --env {ENV} --episodes {EPISODES}")
    assert f"--seed {SEED}" in m["command"] and "--play-fraction 0.5" in m["command"]
    # sources and block counts follow the documented draws from default_rng(seed)
    rng = np.random.default_rng(SEED)
    is_play = rng.random(EPISODES) < PLAY
    n_blocks = rng.integers(1, 4, size=EPISODES)
    assert ds.sources == tuple("play" if p else "expert" for p in is_play)
    assert 0 < sum(is_play) < EPISODES  # this seed exercises both kinds
    for e, ep in enumerate(ds.episodes()):
        assert len(ep) <= MAX_STEPS
        assert ep.terminated[-1] or ep.truncated[-1]
        assert not (ep.terminated[:-1].any() or ep.truncated[:-1].any())
        assert scene.present_blocks(ep.observation[0]) == scene.BLOCK_NAMES[: n_blocks[e]]
        assert np.all(np.abs(ep.action) <= scene.WORKSPACE_HALF + 1e-7)
        scene.validate_step(ep.task[0], scene.BLOCK_NAMES[: n_blocks[e]])


def test_collect_episode_i_uses_seed_plus_i_and_the_expert(collected: Path) -> None:
    """Re-simulate every episode from ``seed + i``; expert episodes (noise 0) replay exactly."""
    ds = read_dataset(collected)
    env = gym.make(ENV)
    expert = make_expert(ENV)
    for e, ep in enumerate(ds.episodes()):
        n = int(ep.observation[0][[4, 8, 12]].sum())
        obs, _ = env.reset(seed=SEED + e, options={"n_blocks": n})
        np.testing.assert_array_equal(obs, ep.observation[0])
        assert env.unwrapped.task == ep.task[0]
        expert.reset()
        for t in range(len(ep)):
            if ep.source == "expert":
                np.testing.assert_allclose(expert.act(ep.observation[t], ep.task[t]), ep.action[t], atol=1e-6)
            obs, reward, *_ = env.step(ep.action[t])
            np.testing.assert_array_equal(obs, ep.observation[t + 1])
            assert reward == pytest.approx(ep.reward[t], abs=1e-6)
    env.close()


def test_collect_is_deterministic_and_seed_sensitive(collected: Path, tmp_path: Path) -> None:
    again = collect(ENV, EPISODES, 0.0, PLAY, SEED, tmp_path / "again.parquet", progress=False, max_steps=MAX_STEPS)
    a, b = read_dataset(collected), read_dataset(again)
    np.testing.assert_array_equal(a.states, b.states)
    np.testing.assert_array_equal(a.action, b.action)
    # the recorded command differs only in --out, so the data pages are identical
    other = collect(ENV, EPISODES, 0.0, PLAY, SEED + 1, tmp_path / "other.parquet", progress=False, max_steps=MAX_STEPS)
    assert not np.array_equal(read_dataset(other).states[:5], a.states[:5])


def test_noise_and_play_are_reproducible(tmp_path: Path) -> None:
    kw = dict(progress=False, max_steps=15, n_blocks=2)
    p1 = collect(ENV, 3, 0.2, 0.5, 9, tmp_path / "a.parquet", **kw)
    p2 = collect(ENV, 3, 0.2, 0.5, 9, tmp_path / "b" / "a.parquet", **kw)
    ds = read_dataset(p1)
    np.testing.assert_array_equal(ds.action, read_dataset(p2).action)
    np.testing.assert_array_equal(ds.states, read_dataset(p2).states)
    assert ds.sources == ("expert", "play", "expert")  # default_rng(9).random(3) < 0.5
    assert ds.metadata["n_blocks"] == 2
    assert all(scene.present_blocks(ep.observation[0]) == ("red_block", "green_block") for ep in ds.episodes())
    # noisy expert actions differ from the expert's own choice, by about noise * 0.27 m
    expert = make_expert(ENV)
    resid = []
    for ep in ds.episodes():
        if ep.source != "expert":
            continue
        expert.reset()
        for t in range(len(ep)):
            clean = expert.act(ep.observation[t], ep.task[t])
            if np.all(np.abs(ep.action[t]) < scene.WORKSPACE_HALF - 1e-6):  # not clipped
                resid.append(ep.action[t] - clean)
    std = float(np.std(resid))
    assert 0.5 * 0.2 * 0.27 < std < 1.5 * 0.2 * 0.27
    # DART labels: expert_action is the expert's own action in the state reached, executed or not
    for ep in ds.episodes():
        expert.reset()
        for t in range(len(ep)):
            clean = expert.act(ep.observation[t], ep.task[t])
            if ep.source == "expert":
                np.testing.assert_allclose(ep.expert_action[t], clean, atol=1e-6)
            else:
                np.testing.assert_array_equal(ep.expert_action[t], ep.action[t])
    expert_rows = np.isin(ds.episode_index, [e for e, s in enumerate(ds.sources) if s == "expert"])
    assert np.abs(ds.expert_action[expert_rows] - ds.action[expert_rows]).max() > 0.01


def test_disturbances_execute_play_but_keep_expert_labels(tmp_path: Path) -> None:
    kw = dict(progress=False, max_steps=60, n_blocks=1)
    plain = read_dataset(collect(ENV, 4, 0.0, 0.0, 3, tmp_path / "plain.parquet", **kw))
    ds = read_dataset(collect(ENV, 4, 0.0, 0.0, 3, tmp_path / "dist.parquet", disturb=1.0, **kw))
    assert ds.metadata["disturb"] == 1.0 and "--disturb 1.0" in ds.metadata["command"]
    expert = make_expert(ENV)
    for e, ep in enumerate(ds.episodes()):
        rng = np.random.default_rng([3, e, 1])
        rng.random()
        start = int(rng.integers(0, 41))
        stop = start + int(rng.integers(4, 13))
        expert.reset()
        for t in range(len(ep)):
            np.testing.assert_allclose(ep.expert_action[t], expert.act(ep.observation[t], ep.task[t]), atol=1e-6)
        differs = np.abs(ep.action - ep.expert_action).max(axis=1) > 1e-6
        assert not differs[:start].any() and not differs[stop:].any()  # noise 0: only the segment differs
        assert start >= len(ep) or differs[start:stop].any()
        assert e > 0 or start < len(ep)  # this seed disturbs the first episode inside its length
    # without disturbances the same seed gives the noise-free expert episodes
    assert np.array_equal(plain.action, plain.expert_action)
    with pytest.raises(ValueError, match="disturb must lie in"):
        collect(ENV, 1, 0.0, 0.0, 3, tmp_path / "bad.parquet", disturb=1.5, **kw)


def test_collect_cli_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.parquet"
    argv = ["collect", "--env", ENV, "--episodes", "2", "--noise", "0.1", "--seed", "0", "--out", str(out), "--max-steps", "5"]
    assert main(argv) == 0
    assert "2 episodes" in capsys.readouterr().out
    assert read_dataset(out).num_episodes == 2
    bad = tmp_path / "bad.parquet"
    assert main(["collect", "--env", ENV, "--episodes", "2", "--n-blocks", "5", "--out", str(bad)]) == 2
    assert "n_blocks must lie in 1..3" in capsys.readouterr().err
    assert main(["collect", "--env", "forethought/NoSuchEnv-v0", "--episodes", "1", "--out", str(bad)]) == 2
    assert "NoSuchEnv" in capsys.readouterr().err
    assert not bad.exists()


# ---------------------------------------------------------------------------------------------
# render


def test_render_mp4_frame_count(tmp_path: Path) -> None:
    out = tmp_path / "push.mp4"
    assert main(["render", "--env", ENV, "--seed", "3", "--episodes", "2", "--size", "64", "--out", str(out)]) == 0
    rollout = rollout_frames(ENV, seed=3, episodes=2, size=64)
    assert len(rollout.frames) == sum(e["steps"] + 1 for e in rollout.episodes)
    assert all(f.shape == (64, 64, 3) and f.dtype == np.uint8 for f in rollout.frames)
    n_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert out.stat().st_size > 0 and n_frames == len(rollout.frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["push.mp4"]


def test_render_gif_with_task(tmp_path: Path) -> None:
    out = tmp_path / "push.gif"
    task = '{"skill": "push", "object": "red_block", "target": "left"}'
    assert main(["render", "--env", ENV, "--seed", "0", "--task", task, "--size", "48", "--out", str(out)]) == 0
    rollout = rollout_frames(ENV, seed=0, task={"skill": "push", "object": "red_block", "target": "left"}, size=48)
    assert rollout.episodes[0]["task"] == {"skill": "push", "object": "red_block", "target": "left"}
    with Image.open(out) as im:
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info["duration"])
        assert im.size == (48, 48)
    # Pillow merges identical consecutive frames, summing their durations: playback time is exact
    assert im.n_frames <= len(rollout.frames)
    assert sum(durations) == len(rollout.frames) * 100  # render_fps 10


def test_render_bad_policy_and_write_video_validation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["render", "--env", ENV, "--policy", "diffusion", "--out", str(tmp_path / "x.gif")])
    frames = [np.zeros((8, 8, 3), np.uint8)] * 3
    with pytest.raises(ValueError, match="must end in"):
        write_video(tmp_path / "x.avi", frames)
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "x.gif", [np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "x.gif", [])
    # a bad frame mid-stream leaves an existing video untouched and no temp file
    good = write_video(tmp_path / "ok.mp4", frames, fps=5)
    before = good.read_bytes()
    with pytest.raises(ValueError, match="frame 2 has shape"):
        write_video(good, frames[:2] + [np.zeros((4, 4, 3), np.uint8)])
    assert good.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.mp4"]
    assert imageio_ffmpeg.count_frames_and_secs(str(good))[0] == 3


def test_shove_play_drives_blocks_into_each_other(tmp_path: Path) -> None:
    """``--shove 1``: play episodes push blocks into blocks far more often than plain play does."""
    def shoved_steps(shove: float) -> int:
        path = collect("forethought/PushBlocks-v0", 6, 0.0, 1.0, 3, tmp_path / f"s{shove}.parquet", progress=False,
                       n_blocks=3, max_steps=80, shove=shove)
        count = 0
        for ep in Dataset.load(path).episodes():
            obs = ep.observation
            for b in scene.BLOCK_NAMES:
                xy = obs[:, scene.block_slice(b).start + 1 : scene.block_slice(b).start + 3]
                moving = np.linalg.norm(np.diff(xy, axis=0), axis=-1) > 1e-3
                far = np.linalg.norm(obs[1:, scene.PUSHER_POS] - xy[1:], axis=-1) > 0.05
                count += int((moving & far).sum())
        return count

    assert shoved_steps(1.0) > 2 * max(shoved_steps(0.0), 1)
    with pytest.raises(ValueError, match="shove"):
        collect("forethought/PushBlocks-v0", 1, 0.0, 1.0, 0, tmp_path / "bad.parquet", progress=False, shove=1.5)


def test_graze_paths_pass_blocks_within_the_band_of_touching() -> None:
    """A graze path's line passes the block's centre within ``GRAZE_BAND`` of the touching distance, on both
    sides, and its waypoints lie 5-10 cm before and beyond the block along the line."""
    env = gym.make("forethought/PushBlocks-v0")
    obs, _ = env.reset(seed=0, options={"n_blocks": 1})
    env.close()
    obs = obs.copy()
    obs[scene.block_slice("red_block").start + 1 : scene.block_slice("red_block").start + 3] = 0.0  # mid-table
    low, high = np.full(2, -0.27), np.full(2, 0.27)
    touch = scene.BLOCK_HALF + scene.PUSHER_RADIUS
    rng = np.random.default_rng(0)
    offsets, sides = [], set()
    for _ in range(200):
        a, b = _pushblocks_graze_path(obs, rng, low, high)
        u = (b - a) / np.linalg.norm(b - a)
        cross = float(u[0] * (0 - a[1]) - u[1] * (0 - a[0]))  # signed distance of the centre (0, 0) from the line
        offsets.append(abs(cross))
        sides.add(np.sign(cross))
        along = float(-a @ u)
        assert 0.05 - 1e-9 <= along <= 0.10 + 1e-9 and 0.05 - 1e-9 <= float(b @ u) <= 0.10 + 1e-9
    assert touch - GRAZE_BAND - 1e-9 <= min(offsets) < touch - GRAZE_BAND / 2
    assert touch + GRAZE_BAND / 2 < max(offsets) <= touch + GRAZE_BAND + 1e-9
    assert sides == {-1.0, 1.0}


def test_graze_play_passes_blocks_near_touching(tmp_path: Path) -> None:
    """``--graze 1``: play episodes move the pusher past blocks near the touching distance, without moving
    them, far more often than plain play does; ``--graze`` outside [0, 1] is refused."""
    touch = scene.BLOCK_HALF + scene.PUSHER_RADIUS

    def passing_steps(graze: float) -> int:
        path = collect("forethought/PushBlocks-v0", 8, 0.0, 1.0, 5, tmp_path / f"g{graze}.parquet", progress=False,
                       n_blocks=1, max_steps=80, graze=graze)
        count = 0
        for ep in Dataset.load(path).episodes():
            obs = ep.observation
            xy = obs[:, scene.block_slice("red_block").start + 1 : scene.block_slice("red_block").start + 3]
            pusher = obs[:, scene.PUSHER_POS]
            moving = np.linalg.norm(np.diff(pusher, axis=0), axis=-1) > 0.005
            still = np.linalg.norm(np.diff(xy, axis=0), axis=-1) < 1e-3
            near = np.abs(np.linalg.norm(pusher[1:] - xy[1:], axis=-1) - touch) < GRAZE_BAND
            count += int((moving & still & near).sum())
        return count

    assert passing_steps(1.0) > 2 * max(passing_steps(0.0), 1)
    meta = Dataset.load(tmp_path / "g1.0.parquet").metadata
    assert meta["graze"] == 1.0 and "--graze 1.0" in meta["command"]
    assert "--graze" not in Dataset.load(tmp_path / "g0.0.parquet").metadata["command"]
    with pytest.raises(ValueError, match="graze"):
        collect("forethought/PushBlocks-v0", 1, 0.0, 1.0, 0, tmp_path / "bad.parquet", progress=False, graze=-0.1)
