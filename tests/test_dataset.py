"""The parquet episode format (``forethought.sim.dataset``): round trip, windows, bad files, atomicity."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forethought.sim import dataset as ds_mod
from forethought.files import atomic_path
from forethought.sim.dataset import (
    COLUMNS,
    FORMAT_VERSION,
    DatasetError,
    Episode,
    read_dataset,
    read_metadata,
    write_dataset,
)

S, A = 3, 2
LENGTHS = (3, 1, 7)  # includes a one-step episode


def _obs_value(e: int, t: int) -> float:
    return 100.0 * e + t  # state s_t of episode e (every entry, plus the entry index / 10)


def make_episodes(lengths=LENGTHS) -> list[Episode]:
    """Hand-made episodes whose values encode (episode, step), so windows can be checked exactly."""
    eps = []
    for e, T in enumerate(lengths):
        obs = np.array([[_obs_value(e, t) + j / 10 for j in range(S)] for t in range(T + 1)], np.float32)
        act = np.array([[_obs_value(e, t) + 0.5 + j / 100 for j in range(A)] for t in range(T)], np.float32)
        tasks = [{"skill": "reach", "target": "left"}] * (T - 1) + [{"skill": "push", "object": "red_block", "target": "right"}]
        eps.append(
            Episode(
                observation=obs,
                action=act,
                reward=-np.arange(T, dtype=np.float32) - e,
                terminated=np.arange(T) == T - 1,
                truncated=np.zeros(T, bool),
                is_success=np.arange(T) == T - 1,
                task=tasks,
                source="play" if e == 1 else "expert",
            )
        )
    return eps


META = {"env_id": "Test-v0", "seed": 7, "noise": 0.1, "obs_labels": ["a", "b", "c"]}


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "d.parquet", make_episodes(), META)


# ---------------------------------------------------------------------------------------------
# round trip


def test_round_trip_arrays_and_metadata(data_file: Path) -> None:
    written = make_episodes()
    ds = read_dataset(data_file)
    assert ds.num_episodes == len(LENGTHS) and ds.num_steps == sum(LENGTHS) == len(ds)
    assert (ds.obs_dim, ds.act_dim) == (S, A)
    np.testing.assert_array_equal(ds.episode_lengths, LENGTHS)
    assert ds.sources == ("expert", "play", "expert")
    for w, r in zip(written, ds.episodes(), strict=True):
        np.testing.assert_array_equal(r.observation, w.observation)
        np.testing.assert_array_equal(r.action, w.action)
        np.testing.assert_array_equal(r.reward, w.reward)
        for c in ("terminated", "truncated", "is_success"):
            np.testing.assert_array_equal(getattr(r, c), getattr(w, c))
        assert r.task == w.task and r.source == w.source
    for key, value in META.items():
        assert ds.metadata[key] == value
    assert ds.metadata["format_version"] == FORMAT_VERSION
    assert ds.metadata["num_episodes"] == 3 and ds.metadata["num_steps"] == sum(LENGTHS)
    assert read_metadata(data_file) == ds.metadata
    mem = ds_mod.Dataset.from_episodes(written, META)
    np.testing.assert_array_equal(mem.states, ds.states)
    assert mem.metadata == ds.metadata and mem.path is None


def test_file_is_plain_parquet_with_documented_columns(data_file: Path) -> None:
    """Other tools see the documented schema: one row per step, fixed-size float32 lists."""
    table = pq.read_table(data_file)
    assert table.column_names == list(COLUMNS)
    assert table.num_rows == sum(LENGTHS)
    assert table.schema.field("episode_index").type == pa.int32()
    assert table.schema.field("observation").type == pa.list_(pa.float32(), S)
    assert table.schema.field("action").type == pa.list_(pa.float32(), A)
    assert table.schema.field("is_success").type == pa.bool_()
    rows = table.to_pylist()
    assert [r["frame_index"] for r in rows[:4]] == [0, 1, 2, 0]
    assert json.loads(rows[2]["task"]) == {"skill": "push", "object": "red_block", "target": "right"}
    assert rows[3]["source"] == "play"
    # next_observation of the last row of episode 0 is its final state s_3
    assert rows[2]["next_observation"] == pytest.approx([_obs_value(0, 3) + j / 10 for j in range(S)])
    meta = json.loads(table.schema.metadata[b"forethought"])
    assert meta["env_id"] == "Test-v0"


def test_expert_action_labels_round_trip_and_older_files(data_file: Path, tmp_path: Path) -> None:
    """``expert_action`` (DART labels) round-trips, feeds windows on request, and defaults to ``action``."""
    eps = make_episodes()
    for e in eps:
        e.expert_action = e.action + 0.5
    path = write_dataset(tmp_path / "labels.parquet", eps, META)
    ds = read_dataset(path)
    np.testing.assert_array_equal(ds.expert_action, ds.action + 0.5)
    w, wl = ds.windows(2, 4, 3), ds.windows(2, 4, 3, action_column="expert_action")
    np.testing.assert_array_equal(wl.actions, w.actions + 0.5)
    with pytest.raises(ValueError, match="action_column"):
        ds.windows(2, 4, 3, action_column="reward")
    # a file written before the column existed: labels are the executed actions
    old = tmp_path / "old.parquet"
    table = pq.read_table(data_file)
    pq.write_table(table.drop_columns(["expert_action"]), old)
    ds_old = read_dataset(old)
    np.testing.assert_array_equal(ds_old.expert_action, ds_old.action)
    with pytest.raises(ValueError, match="expert_action must have the action's shape"):
        Episode(observation=np.zeros((4, S)), action=np.zeros((3, A)), expert_action=np.zeros((2, A)))


def test_episode_validation() -> None:
    with pytest.raises(ValueError, match=r"\[T \+ 1, S\]"):
        Episode(observation=np.zeros((3, S)), action=np.zeros((3, A)))
    with pytest.raises(ValueError, match="NaN"):
        Episode(observation=np.full((4, S), np.nan), action=np.zeros((3, A)))
    with pytest.raises(ValueError, match="source"):
        Episode(observation=np.zeros((4, S)), action=np.zeros((3, A)), source="human")
    with pytest.raises(ValueError, match="list of 3 dicts"):
        Episode(observation=np.zeros((4, S)), action=np.zeros((3, A)), task=[{}, {}])
    with pytest.raises(ValueError, match="no episodes"):
        write_dataset("unused.parquet", [], {})


# ---------------------------------------------------------------------------------------------
# windows


def test_window_shapes_and_masks(data_file: Path) -> None:
    ds = read_dataset(data_file)
    w = ds.windows(n_obs_steps=2, horizon=4, future=3)
    B = sum(LENGTHS)
    assert len(w) == B
    assert w.obs_history.shape == (B, 2, S) and w.obs_history.dtype == np.float32
    assert w.actions.shape == (B, 4, A) and w.valid.shape == (B, 4) and w.valid.dtype == bool
    assert w.future_states.shape == (B, 3, S) and w.future_valid.shape == (B, 3)
    assert w.obs_valid.shape == (B, 2)
    # episode 0 (T = 3), anchor t = 0: history repeats s_0; actions a0 a1 a2 then one pad
    np.testing.assert_array_equal(w.obs_valid[0], [False, True])
    np.testing.assert_array_equal(w.obs_history[0, :, 0], [0.0, 0.0])
    np.testing.assert_array_equal(w.valid[0], [True, True, True, False])
    np.testing.assert_array_equal(w.actions[0, :, 0], [0.5, 1.5, 2.5, 2.5])  # edge repeated
    np.testing.assert_array_equal(w.future_states[0, :, 0], [1.0, 2.0, 3.0])  # s_1..s_3 (s_3 final)
    np.testing.assert_array_equal(w.future_valid[0], [True, True, True])
    # episode 0, anchor t = 2 (last step)
    np.testing.assert_array_equal(w.valid[2], [True, False, False, False])
    np.testing.assert_array_equal(w.future_states[2, :, 0], [3.0, 3.0, 3.0])
    np.testing.assert_array_equal(w.future_valid[2], [True, False, False])
    # one-step episode 1: a single window, everything past a_0 / s_1 padded
    i = LENGTHS[0]
    assert (w.episode_index[i], w.frame_index[i]) == (1, 0)
    np.testing.assert_array_equal(w.actions[i, :, 0], [100.5] * 4)
    np.testing.assert_array_equal(w.valid[i], [True, False, False, False])
    np.testing.assert_array_equal(w.future_states[i, :, 0], [101.0] * 3)
    # tasks: the step active at the anchor
    assert w.task[2] == {"skill": "push", "object": "red_block", "target": "right"}
    assert w.task[0] == {"skill": "reach", "target": "left"}


def test_windows_match_source_rows_and_never_cross_episodes(data_file: Path) -> None:
    ds = read_dataset(data_file)
    o, H, F = 3, 5, 4
    w = ds.windows(n_obs_steps=o, horizon=H, future=F)
    for b in range(len(w)):
        e, t = int(w.episode_index[b]), int(w.frame_index[b])
        ep = ds.episode(e)
        T = len(ep)
        for j in range(o):
            k = t - o + 1 + j
            np.testing.assert_array_equal(w.obs_history[b, j], ep.observation[max(k, 0)])
            assert w.obs_valid[b, j] == (k >= 0)
        for j in range(H):
            np.testing.assert_array_equal(w.actions[b, j], ep.action[min(t + j, T - 1)])
            assert w.valid[b, j] == (t + j < T)
        for j in range(F):
            np.testing.assert_array_equal(w.future_states[b, j], ep.observation[min(t + 1 + j, T)])
            assert w.future_valid[b, j] == (t + 1 + j <= T)
    # the hundreds digit encodes the episode: no value comes from another episode
    for arr in (w.obs_history, w.actions, w.future_states):
        assert np.all(np.floor(arr[..., 0] / 100) == w.episode_index[:, None])


def test_action_start_gives_diffusion_policy_alignment(data_file: Path) -> None:
    ds = read_dataset(data_file)
    w = ds.windows(n_obs_steps=2, horizon=4, future=1, action_start=-1)
    # episode 0, t = 0: a_{-1} is padding (repeats a_0), then a_0, a_1, a_2
    np.testing.assert_array_equal(w.actions[0, :, 0], [0.5, 0.5, 1.5, 2.5])
    np.testing.assert_array_equal(w.valid[0], [False, True, True, True])


def test_window_selection_batches_and_determinism(data_file: Path) -> None:
    ds = read_dataset(data_file)
    full = ds.windows(2, 4, 3)
    again = ds.windows(2, 4, 3)
    np.testing.assert_array_equal(full.actions, again.actions)
    rows = ds.anchors(sources=["expert"])
    np.testing.assert_array_equal(np.unique(full.episode_index[rows]), [0, 2])
    sub = ds.windows(2, 4, 3, sources=["expert"])
    np.testing.assert_array_equal(sub.actions, full.actions[rows])
    np.testing.assert_array_equal(ds.windows(2, 4, 3, episodes=[1]).episode_index, [1])
    picked = ds.windows(2, 4, 3, index=[5, 0])
    np.testing.assert_array_equal(picked.future_states, full.future_states[[5, 0]])
    batches = list(ds.iter_windows(4, 2, 4, 3))
    assert [len(b) for b in batches] == [4, 4, 3]
    np.testing.assert_array_equal(np.concatenate([b.actions for b in batches]), full.actions)
    s1 = np.concatenate([b.frame_index for b in ds.iter_windows(4, shuffle=True, seed=1)])
    s2 = np.concatenate([b.frame_index for b in ds.iter_windows(4, shuffle=True, seed=1)])
    np.testing.assert_array_equal(s1, s2)
    assert [len(b) for b in ds.iter_windows(4, drop_last=True)] == [4, 4]
    with pytest.raises(ValueError, match="horizon"):
        ds.windows(horizon=0)
    with pytest.raises(ValueError, match="unknown sources"):
        ds.windows(sources=["human"])
    with pytest.raises(IndexError):
        ds.windows(index=[sum(LENGTHS)])


# ---------------------------------------------------------------------------------------------
# bad files


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.parquet"
    with pytest.raises(DatasetError, match="does not exist") as err:
        read_dataset(path)
    assert str(path) in str(err.value)
    assert isinstance(err.value, ValueError)
    with pytest.raises(DatasetError, match="not a file"):
        read_dataset(tmp_path)


def test_truncated_file(data_file: Path) -> None:
    raw = data_file.read_bytes()
    data_file.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetError, match="corrupt or truncated") as err:
        read_dataset(data_file)
    assert str(data_file) in str(err.value)


@pytest.mark.parametrize("where", [0.1, 0.35, 0.5, 0.97])
def test_overwritten_bytes(tmp_path: Path, where: float) -> None:
    # big enough that the data pages dominate the file
    path = write_dataset(tmp_path / "big.parquet", make_episodes((200, 150, 300)), META)
    raw = bytearray(path.read_bytes())
    at = int(len(raw) * where)
    raw[at : at + 32] = b"\xa5" * 32
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError) as err:
        read_dataset(path)
    assert str(path) in str(err.value)


def test_not_parquet_and_foreign_parquet(tmp_path: Path) -> None:
    text = tmp_path / "notes.parquet"
    text.write_text("hello")
    with pytest.raises(DatasetError, match="corrupt or truncated"):
        read_dataset(text)
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), foreign)
    with pytest.raises(DatasetError, match="not a forethought data set"):
        read_dataset(foreign)


def _rewrite(path: Path, table: pa.Table, **meta_changes) -> None:
    meta = json.loads(table.schema.metadata[b"forethought"])
    meta.update(meta_changes)
    pq.write_table(table.replace_schema_metadata({b"forethought": json.dumps(meta).encode()}), path)


def test_schema_and_content_checks(data_file: Path) -> None:
    table = pq.read_table(data_file)
    _rewrite(data_file, table, format_version=FORMAT_VERSION + 1)
    with pytest.raises(DatasetError, match="newer"):
        read_dataset(data_file)
    _rewrite(data_file, table.drop_columns(["action"]))
    with pytest.raises(DatasetError, match=r"missing columns \['action'\]"):
        read_dataset(data_file)
    _rewrite(data_file, table, num_steps=sum(LENGTHS) + 1)
    with pytest.raises(DatasetError, match="num_steps"):
        read_dataset(data_file)
    _rewrite(data_file, table, obs_dim=S + 1)
    with pytest.raises(DatasetError, match="fixed_size_list"):
        read_dataset(data_file)
    # rows out of order
    _rewrite(data_file, table.take(pa.array(np.arange(table.num_rows)[::-1])))
    with pytest.raises(DatasetError, match="episode_index"):
        read_dataset(data_file)
    # next_observation inconsistent with the next row
    nxt = table.column("next_observation").to_pylist()
    nxt[0] = [9.0] * S
    i = table.column_names.index("next_observation")
    _rewrite(data_file, table.set_column(i, "next_observation", pa.array(nxt, pa.list_(pa.float32(), S))))
    with pytest.raises(DatasetError, match="next_observation"):
        read_dataset(data_file)


# ---------------------------------------------------------------------------------------------
# atomic writes


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    path = write_dataset(tmp_path / "sub" / "d.parquet", make_episodes(), META)
    assert _siblings(path) == ["d.parquet"]
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode


@pytest.mark.parametrize("exc", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failed_write_keeps_old_file(data_file: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    good = data_file.read_bytes()
    real_write = pq.write_table

    def half_then_fail(table, where, **kwargs):
        real_write(table.slice(0, 2), where, **kwargs)  # part of the data reaches the temp file
        assert Path(where).stat().st_size > 0
        raise exc

    monkeypatch.setattr(ds_mod.pq, "write_table", half_then_fail)
    with pytest.raises(type(exc)):
        write_dataset(data_file, make_episodes((5, 5)), {"env_id": "Other-v0"})
    assert data_file.read_bytes() == good
    assert _siblings(data_file) == [data_file.name]
    assert read_dataset(data_file).metadata["env_id"] == "Test-v0"


def test_atomic_path_keeps_extension_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "v.gif"
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".gif" and tmp != target
            tmp.write_bytes(b"partial")
            raise ValueError("boom")
    assert not os.listdir(tmp_path)
