"""Recorded episodes on disk: the format, the atomic writer, and the training-window loader.

A data set is **one Apache Parquet file** with one row per environment step, laid out like a
LeRobotDataset parquet episode file, plus the state reached after each step so that a dynamics
model can learn the last transition of every episode too.

Why parquet:

- other tools read it without forethought: ``pandas.read_parquet``, ``pyarrow``, ``duckdb``
  (``SELECT * FROM 'data.parquet'``), Hugging Face ``datasets.load_dataset("parquet", ...)``;
  LeRobot users already know the one-row-per-frame layout;
- columnar and compressed (zstd), so loading just the observations and actions is fast;
- the file begins and ends with the ``PAR1`` magic and its schema sits in the footer, so a
  truncated file cannot be mistaken for a short data set; every data page also carries a CRC-32
  that is checked on read, so overwritten bytes are detected rather than decoded as data.

Columns (``S`` = observation size, ``A`` = action size, ``T`` = steps in the episode):

| column | type | meaning |
|---|---|---|
| ``episode_index`` | int32 | 0, 1, ..., ``num_episodes - 1``; rows of one episode are contiguous |
| ``frame_index`` | int32 | step ``t`` = 0, 1, ..., ``T - 1`` within the episode |
| ``observation`` | fixed_size_list<float32>[S] | ``s_t``, the observation the action was chosen from |
| ``action`` | fixed_size_list<float32>[A] | ``a_t``, the action sent to ``env.step`` (after noise and clipping) |
| ``expert_action`` | fixed_size_list<float32>[A] | the expert's own, noise-free action in ``s_t`` (DART labels for imitation); equals ``action`` in play episodes. Optional: files without it read it as ``action`` |
| ``next_observation`` | fixed_size_list<float32>[S] | ``s_{t+1}``, returned by that step; equals the next row's ``observation`` |
| ``reward`` | float32 | reward returned by that step |
| ``terminated`` | bool | ``terminated`` returned by that step |
| ``truncated`` | bool | ``truncated`` returned by that step (time limit) |
| ``is_success`` | bool | ``info["is_success"]`` after that step (False when the env does not report it) |
| ``task`` | string | JSON of the plan step active at step ``t``, keys sorted, e.g. ``{"object": "red_block", "skill": "push", "target": "left"}`` |
| ``source`` | string | ``"expert"`` (scripted expert with noise) or ``"play"`` (random smooth exploration); constant within an episode |

File-level schema metadata, a JSON object under the key ``forethought``:

| key | meaning |
|---|---|
| ``format``, ``format_version`` | ``"forethought-episodes"`` and ``FORMAT_VERSION``; a newer version is refused |
| ``num_episodes``, ``num_steps`` | counts, checked against the rows on load |
| ``obs_dim``, ``act_dim`` | ``S`` and ``A`` |
| ``env_id``, ``env_kwargs`` | the ``gymnasium.make`` arguments that recreate the env |
| ``seed``, ``noise``, ``play_fraction`` | collection settings (see ``forethought.sim.collect``) |
| ``obs_labels`` | one name per observation entry, when known (``scene.OBS_LABELS`` for PushBlocks) |
| ``action_low``, ``action_high`` | the action box |
| ``command`` | the ``forethought collect ...`` command that reproduces the file |

Writers may add keys; readers ignore keys they do not know.

Reading it elsewhere::

    import pandas as pd, json, pyarrow.parquet as pq
    df = pd.read_parquet("data/pushblocks.parquet")            # one row per step
    meta = json.loads(pq.read_schema("data/pushblocks.parquet").metadata[b"forethought"])

Loading it here::

    from forethought.sim.dataset import read_dataset
    ds = read_dataset("data/pushblocks.parquet")
    w = ds.windows(n_obs_steps=2, horizon=16, future=16)
    w.obs_history   # [B, 2, S]
    w.actions       # [B, 16, A], w.valid[B, 16] marks real (not padded) actions
    w.future_states # [B, 16, S]: s[t+1 .. t+16]
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from forethought.files import atomic_path

FORMAT_NAME = "forethought-episodes"
FORMAT_VERSION = 1
METADATA_KEY = b"forethought"
SOURCES: tuple[str, ...] = ("expert", "play")

ACTION_COLUMNS: tuple[str, ...] = ("action", "expert_action")
OPTIONAL_COLUMNS: tuple[str, ...] = ("expert_action",)
"""Columns older files may lack; the reader fills them in (``expert_action`` from ``action``)."""
_BOOL_COLUMNS = ("terminated", "truncated", "is_success")
COLUMNS: tuple[str, ...] = (
    "episode_index",
    "frame_index",
    "observation",
    "action",
    "expert_action",
    "next_observation",
    "reward",
    "terminated",
    "truncated",
    "is_success",
    "task",
    "source",
)


class DatasetError(ValueError):
    """A data set file is missing, corrupt, truncated, or not in this format; the message names the path."""


# --------------------------------------------------------------------------------------------
# Episodes


def _task_json(task: Mapping[str, Any]) -> str:
    return json.dumps(task, sort_keys=True, separators=(", ", ": "))


@dataclass
class Episode:
    """One recorded episode of ``T`` steps.

    Attributes:
        observation: ``float32[T + 1, S]``: states ``s_0 .. s_T``; ``s_T`` is the state after the
            last action (the final row's ``next_observation`` on disk).
        action: ``float32[T, A]``: ``a_t`` taken in ``s_t``.
        expert_action: ``float32[T, A]``: the expert's noise-free action in ``s_t`` (default: ``action``).
        reward: ``float32[T]``.
        terminated, truncated, is_success: ``bool[T]``, as returned by ``env.step``.
        task: ``T`` plan-step dicts, the one active at each step (a single dict is broadcast).
        source: ``"expert"`` or ``"play"``.
        index: the episode's ``episode_index`` (set by the reader; the writer renumbers 0..N-1).
    """

    observation: np.ndarray
    action: np.ndarray
    expert_action: np.ndarray | None = None
    reward: np.ndarray | None = None
    terminated: np.ndarray | None = None
    truncated: np.ndarray | None = None
    is_success: np.ndarray | None = None
    task: list[dict[str, Any]] | dict[str, Any] = field(default_factory=dict)
    source: str = "expert"
    index: int = 0

    def __post_init__(self) -> None:
        self.action = np.asarray(self.action, dtype=np.float32)
        self.observation = np.asarray(self.observation, dtype=np.float32)
        if self.action.ndim != 2 or self.action.shape[0] < 1:
            raise ValueError(f"episode action must be [T, A] with T >= 1, got shape {self.action.shape}")
        T = self.action.shape[0]
        if self.observation.ndim != 2 or self.observation.shape[0] != T + 1:
            raise ValueError(
                f"episode observation must be [T + 1, S] = [{T + 1}, S] (states s_0..s_T, the last one "
                f"after the final action), got shape {self.observation.shape}"
            )
        self.expert_action = (self.action.copy() if self.expert_action is None
                              else np.asarray(self.expert_action, dtype=np.float32))
        if self.expert_action.shape != self.action.shape:
            raise ValueError(f"episode expert_action must have the action's shape {self.action.shape}, "
                             f"got {self.expert_action.shape}")
        for name in ("observation", "action", "expert_action"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"episode {name} contains NaN or inf")
        self.reward = np.zeros(T, np.float32) if self.reward is None else np.asarray(self.reward, np.float32)
        for name in _BOOL_COLUMNS:
            v = getattr(self, name)
            setattr(self, name, np.zeros(T, bool) if v is None else np.asarray(v, dtype=bool))
        for name in ("reward", *_BOOL_COLUMNS):
            if getattr(self, name).shape != (T,):
                raise ValueError(f"episode {name} must have shape ({T},), got {getattr(self, name).shape}")
        if isinstance(self.task, Mapping):
            self.task = [dict(self.task)] * T
        else:
            self.task = list(self.task)
            if len(self.task) != T or not all(isinstance(t, Mapping) for t in self.task):
                raise ValueError(f"episode task must be one dict or a list of {T} dicts (one per step)")
        if self.source not in SOURCES:
            raise ValueError(f"episode source must be one of {list(SOURCES)}, got {self.source!r}")

    def __len__(self) -> int:
        return int(self.action.shape[0])

    @property
    def success(self) -> bool:
        """Whether the task was achieved at the last step."""
        return bool(self.is_success[-1])


# --------------------------------------------------------------------------------------------
# Writing


def _fixed_list(values: np.ndarray) -> pa.FixedSizeListArray:
    values = np.ascontiguousarray(values, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def episodes_to_table(
    episodes: Iterable[Episode | Mapping[str, Any]], metadata: Mapping[str, Any] | None = None
) -> pa.Table:
    """The arrow table (rows, columns and ``forethought`` schema metadata) that ``write_dataset`` writes."""
    eps = [e if isinstance(e, Episode) else Episode(**e) for e in episodes]
    if not eps:
        raise ValueError("cannot write a data set with no episodes")
    S, A = eps[0].observation.shape[1], eps[0].action.shape[1]
    for i, e in enumerate(eps):
        if e.observation.shape[1] != S or e.action.shape[1] != A:
            raise ValueError(
                f"episode {i} has obs/action sizes {e.observation.shape[1]}/{e.action.shape[1]}, "
                f"episode 0 has {S}/{A}: all episodes of a data set must match"
            )
    lengths = np.array([len(e) for e in eps], dtype=np.int64)
    num_steps = int(lengths.sum())
    meta = dict(metadata or {})
    meta.update(
        format=FORMAT_NAME,
        format_version=FORMAT_VERSION,
        num_episodes=len(eps),
        num_steps=num_steps,
        obs_dim=int(S),
        act_dim=int(A),
    )
    labels = meta.get("obs_labels")
    if labels is not None and len(labels) != S:
        raise ValueError(f"metadata obs_labels has {len(labels)} names for observations of size {S}")
    try:
        meta_json = json.dumps(meta, sort_keys=True)
    except TypeError as e:
        raise ValueError(f"data set metadata must be JSON-able: {e}") from None

    # Tasks: encode each distinct dict object once (an episode usually repeats one object).
    memo: dict[int, str] = {}
    task_col = [memo.setdefault(id(t), _task_json(t)) for e in eps for t in e.task]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    columns = {
        "episode_index": pa.array(np.repeat(np.arange(len(eps), dtype=np.int32), lengths)),
        "frame_index": pa.array((np.arange(num_steps) - np.repeat(starts, lengths)).astype(np.int32)),
        "observation": _fixed_list(np.concatenate([e.observation[:-1] for e in eps])),
        "action": _fixed_list(np.concatenate([e.action for e in eps])),
        "expert_action": _fixed_list(np.concatenate([e.expert_action for e in eps])),
        "next_observation": _fixed_list(np.concatenate([e.observation[1:] for e in eps])),
        "reward": pa.array(np.concatenate([e.reward for e in eps])),
        **{c: pa.array(np.concatenate([getattr(e, c) for e in eps])) for c in _BOOL_COLUMNS},
        "task": pa.array(task_col, pa.string()),
        "source": pa.array(np.repeat(np.array([e.source for e in eps], dtype=object), lengths), pa.string()),
    }
    table = pa.table(columns).replace_schema_metadata({METADATA_KEY: meta_json.encode()})
    assert table.column_names == list(COLUMNS)
    return table


def write_dataset(
    path: str | os.PathLike[str],
    episodes: Iterable[Episode | Mapping[str, Any]],
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``episodes`` to the parquet file ``path`` atomically and return the path.

    ``metadata`` (JSON-able) is stored in the file's schema metadata; ``format``,
    ``format_version``, ``num_episodes``, ``num_steps``, ``obs_dim`` and ``act_dim`` are filled in
    here. Episodes are renumbered 0..N-1 in the order given. The file appears complete or not at
    all (see ``atomic_path``); an existing file at ``path`` survives a failed write. Data pages
    are zstd-compressed and carry CRC-32 checksums.
    """
    table = episodes_to_table(episodes, metadata)
    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_page_checksum=True)
    return path


# --------------------------------------------------------------------------------------------
# Reading


def _column_values(table: pa.Table, name: str, width: int | None, path: Path) -> np.ndarray:
    col = table.column(name)
    if col.null_count:
        raise DatasetError(f"{path}: column {name!r} has {col.null_count} null values")
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if width is None:
        return arr.to_numpy(zero_copy_only=False)
    if not pa.types.is_fixed_size_list(arr.type) or arr.type.list_size != width:
        raise DatasetError(f"{path}: column {name!r} must be fixed_size_list<float32>[{width}], got {arr.type}")
    flat = arr.flatten()
    if flat.null_count:
        raise DatasetError(f"{path}: column {name!r} has null entries")
    return flat.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, width)


def _read_table(path: Path) -> tuple[pa.Table, dict[str, Any]]:
    if not path.exists():
        raise DatasetError(f"no data set at {path}: the file does not exist (create one with `forethought collect`)")
    if not path.is_file():
        raise DatasetError(f"{path} is not a file: a data set is one .parquet file")
    try:
        pf = pq.ParquetFile(path, page_checksum_verification=True)
        schema = pf.schema_arrow
        table = pf.read()
    except (pa.ArrowException, OSError, ValueError, EOFError) as e:
        raise DatasetError(
            f"{path} is not a readable parquet data set; it is corrupt or truncated "
            f"(e.g. an interrupted copy): {type(e).__name__}: {e}"
        ) from e
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise DatasetError(
            f"{path}: parquet file has no '{METADATA_KEY.decode()}' metadata; not a forethought data set"
        )
    try:
        meta = json.loads(raw)
    except ValueError as e:
        raise DatasetError(f"{path}: the '{METADATA_KEY.decode()}' metadata is not valid JSON: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        found = meta.get("format") if isinstance(meta, dict) else meta
        raise DatasetError(f"{path}: metadata format is {found!r}, expected {FORMAT_NAME!r}")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise DatasetError(f"{path}: bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise DatasetError(
            f"{path}: format_version {version} is newer than this forethought reads "
            f"({FORMAT_VERSION}); upgrade forethought"
        )
    missing = [c for c in COLUMNS if c not in table.column_names and c not in OPTIONAL_COLUMNS]
    if missing:
        raise DatasetError(f"{path}: missing columns {missing}; a data set has columns {list(COLUMNS)}")
    for key in ("num_episodes", "num_steps", "obs_dim", "act_dim"):
        if not isinstance(meta.get(key), int) or meta[key] < 0:
            raise DatasetError(f"{path}: metadata {key} must be a non-negative integer, got {meta.get(key)!r}")
    return table, meta


@dataclass(frozen=True)
class Windows:
    """Training windows, one per anchor step ``t`` (``B`` of them), never crossing an episode.

    With ``o = n_obs_steps``, ``H = horizon``, ``F = future`` and ``k = action_start``:

    - ``obs_history[B, o, S]``: ``s[t-o+1 .. t]``; before the episode start the first state is
      repeated and ``obs_valid[B, o]`` is False there;
    - ``actions[B, H, A]``: ``a[t+k .. t+k+H-1]``; outside the episode the edge action is repeated
      and ``valid[B, H]`` is False there;
    - ``future_states[B, F, S]``: ``s[t+1 .. t+F]``; past the final state ``s_T`` it is repeated
      and ``future_valid[B, F]`` is False. With ``k = 0``, ``future_states[:, j]`` is the state
      reached by ``actions[:, j]``;
    - ``episode_index[B]``, ``frame_index[B]`` (= ``t``), ``task_index[B]`` into ``tasks`` (the
      distinct plan steps of the data set); ``task`` gives the dict per window.
    """

    obs_history: np.ndarray
    obs_valid: np.ndarray
    actions: np.ndarray
    valid: np.ndarray
    future_states: np.ndarray
    future_valid: np.ndarray
    episode_index: np.ndarray
    frame_index: np.ndarray
    task_index: np.ndarray
    tasks: tuple[dict[str, Any], ...]

    def __len__(self) -> int:
        return int(self.episode_index.shape[0])

    @property
    def task(self) -> list[dict[str, Any]]:
        """The plan step active at each window's anchor step."""
        return [self.tasks[i] for i in self.task_index]


class Dataset:
    """A loaded data set: flat per-step arrays plus episode offsets.

    Attributes:
        path: the file it was read from (``None`` when built in memory).
        metadata: the file's ``forethought`` metadata dict.
        states: ``float32[N + E, S]``: each episode's ``T + 1`` states, episode after episode.
        action: ``float32[N, A]``; ``expert_action``: ``float32[N, A]`` (noise-free labels); ``reward``: ``float32[N]``; ``terminated``, ``truncated``,
            ``is_success``: ``bool[N]``; ``episode_index``, ``frame_index``, ``task_index``:
            ``int32[N]`` (one row per step, ``N`` steps in all).
        tasks: the distinct plan steps; ``sources``: one ``"expert"``/``"play"`` per episode.
        episode_start: ``int64[E + 1]``: rows of episode ``e`` are ``episode_start[e]:episode_start[e + 1]``.
    """

    def __init__(self, table: pa.Table, metadata: Mapping[str, Any], path: Path | None = None) -> None:
        label = path if path is not None else "<in-memory data set>"
        self.path = path
        self.metadata = dict(metadata)
        S, A = self.metadata["obs_dim"], self.metadata["act_dim"]
        N, E = self.metadata["num_steps"], self.metadata["num_episodes"]
        if table.num_rows != N:
            raise DatasetError(f"{label}: has {table.num_rows} rows but its metadata says num_steps = {N}")
        ep = _column_values(table, "episode_index", None, label).astype(np.int64)
        fr = _column_values(table, "frame_index", None, label).astype(np.int64)
        if N == 0 or E == 0:
            raise DatasetError(f"{label}: data set is empty")
        # Rows must be episode 0, 1, ..., E-1 in order, each with frames 0..T-1.
        new_ep = np.flatnonzero(np.diff(ep)) + 1
        starts = np.concatenate([[0], new_ep])
        if ep[0] != 0 or np.any(np.diff(ep) < 0) or np.any(np.diff(ep[starts]) != 1) or len(starts) != E:
            raise DatasetError(
                f"{label}: episode_index must run 0..{E - 1} in order with contiguous rows "
                f"(metadata num_episodes = {E}, found {len(starts)} runs starting at {int(ep[0])})"
            )
        self.episode_start = np.append(starts, N).astype(np.int64)
        lengths = np.diff(self.episode_start)
        if not np.array_equal(fr, np.arange(N) - np.repeat(starts, lengths)):
            raise DatasetError(f"{label}: frame_index must count 0, 1, ... within each episode")

        obs = _column_values(table, "observation", S, label)
        nxt = _column_values(table, "next_observation", S, label)
        self.action = _column_values(table, "action", A, label)
        self.expert_action = (_column_values(table, "expert_action", A, label)
                              if "expert_action" in table.column_names else self.action)
        for name, arr in (("observation", obs), ("next_observation", nxt), ("action", self.action),
                          ("expert_action", self.expert_action)):
            if not np.all(np.isfinite(arr)):
                raise DatasetError(f"{label}: column {name!r} contains NaN or inf")
        last = self.episode_start[1:] - 1
        inner = np.setdiff1d(np.arange(N - 1), last)  # rows whose successor is in the same episode
        if not np.array_equal(nxt[inner], obs[inner + 1]):
            raise DatasetError(f"{label}: next_observation differs from the next row's observation within an episode")
        self.states = np.empty((N + E, S), np.float32)
        self.states[np.arange(N) + ep] = obs
        self.states[last + np.arange(E) + 1] = nxt[last]

        self.reward = _column_values(table, "reward", None, label).astype(np.float32)
        for c in _BOOL_COLUMNS:
            setattr(self, c, _column_values(table, c, None, label).astype(bool))
        self.episode_index = ep.astype(np.int32)
        self.frame_index = fr.astype(np.int32)

        task_col = table.column("task").combine_chunks()
        if task_col.null_count:
            raise DatasetError(f"{label}: column 'task' has null values")
        enc = task_col.dictionary_encode()
        tasks = []
        for s in enc.dictionary.to_pylist():
            try:
                t = json.loads(s)
            except ValueError as e:
                raise DatasetError(f"{label}: task {s!r} is not valid JSON: {e}") from e
            if not isinstance(t, dict):
                raise DatasetError(f"{label}: task {s!r} is not a JSON object (a plan step)")
            tasks.append(t)
        self.tasks: tuple[dict[str, Any], ...] = tuple(tasks)
        self.task_index = enc.indices.to_numpy().astype(np.int32)

        src = np.asarray(_column_values(table, "source", None, label), dtype=object)
        bad = sorted(set(src.tolist()) - set(SOURCES))
        if bad:
            raise DatasetError(f"{label}: unknown source values {bad}; expected {list(SOURCES)}")
        if np.any((src[1:] != src[:-1]) & (np.diff(ep) == 0)):
            raise DatasetError(f"{label}: source changes within an episode")
        self.sources: tuple[str, ...] = tuple(src[starts].tolist())
        for arr in (self.states, self.action, self.expert_action, self.reward, self.task_index, self.episode_index, self.frame_index,
                    self.terminated, self.truncated, self.is_success, self.episode_start):
            arr.flags.writeable = False

    # ---- construction ------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Dataset:
        """Read and validate the data set at ``path``; raise ``DatasetError`` naming the problem."""
        path = Path(path)
        table, meta = _read_table(path)
        return cls(table, meta, path)

    @classmethod
    def from_episodes(
        cls, episodes: Iterable[Episode | Mapping[str, Any]], metadata: Mapping[str, Any] | None = None
    ) -> Dataset:
        """An in-memory data set, exactly as if written with ``write_dataset`` and read back."""
        table = episodes_to_table(episodes, metadata)
        return cls(table, json.loads(table.schema.metadata[METADATA_KEY]))

    # ---- sizes -------------------------------------------------------------------------------

    @property
    def num_episodes(self) -> int:
        return len(self.episode_start) - 1

    @property
    def num_steps(self) -> int:
        return int(self.episode_start[-1])

    def __len__(self) -> int:
        return self.num_steps

    @property
    def obs_dim(self) -> int:
        return int(self.states.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.action.shape[1])

    @property
    def episode_lengths(self) -> np.ndarray:
        """``int64[E]``: steps per episode."""
        return np.diff(self.episode_start)

    def __repr__(self) -> str:
        return (
            f"Dataset({str(self.path)!r}, env={self.metadata.get('env_id')!r}, episodes={self.num_episodes}, "
            f"steps={self.num_steps}, obs_dim={self.obs_dim}, act_dim={self.act_dim})"
        )

    # ---- episodes ----------------------------------------------------------------------------

    def episode(self, e: int) -> Episode:
        """Episode ``e`` as an ``Episode`` (arrays are copies; the data set stays read-only)."""
        if not -self.num_episodes <= e < self.num_episodes:
            raise IndexError(f"episode {e} out of range: the data set has {self.num_episodes} episodes")
        e %= self.num_episodes
        a, b = int(self.episode_start[e]), int(self.episode_start[e + 1])
        return Episode(
            observation=self.states[a + e : b + e + 1].copy(),
            action=self.action[a:b].copy(),
            expert_action=self.expert_action[a:b].copy(),
            reward=self.reward[a:b].copy(),
            terminated=self.terminated[a:b].copy(),
            truncated=self.truncated[a:b].copy(),
            is_success=self.is_success[a:b].copy(),
            task=[self.tasks[i] for i in self.task_index[a:b]],
            source=self.sources[e],
            index=e,
        )

    def episodes(self) -> Iterator[Episode]:
        """Every episode in order."""
        for e in range(self.num_episodes):
            yield self.episode(e)

    # ---- windows -----------------------------------------------------------------------------

    def anchors(self, sources: Iterable[str] | None = None, episodes: Sequence[int] | None = None) -> np.ndarray:
        """``int64[B]``: the rows (steps ``t``) windows are anchored at, in file order.

        ``sources`` keeps only episodes of those sources (e.g. ``["expert"]`` for a proposer);
        ``episodes`` keeps only those episode indices (e.g. a train/validation split).
        """
        keep = np.ones(self.num_episodes, bool)
        if sources is not None:
            sources = list(sources)
            bad = sorted(set(sources) - set(SOURCES))
            if bad:
                raise ValueError(f"unknown sources {bad}: valid sources are {list(SOURCES)}")
            keep &= np.isin(np.array(self.sources, dtype=object), sources)
        if episodes is not None:
            ids = np.asarray(episodes, dtype=np.int64)
            if ids.size and (ids.min() < 0 or ids.max() >= self.num_episodes):
                raise ValueError(f"episode indices must lie in [0, {self.num_episodes}), got {ids.min()}..{ids.max()}")
            sel = np.zeros(self.num_episodes, bool)
            sel[ids] = True
            keep &= sel
        return np.flatnonzero(keep[self.episode_index]).astype(np.int64)

    def windows(
        self,
        n_obs_steps: int = 2,
        horizon: int = 16,
        future: int = 16,
        *,
        action_start: int = 0,
        action_column: str = "action",
        index: np.ndarray | Sequence[int] | None = None,
        sources: Iterable[str] | None = None,
        episodes: Sequence[int] | None = None,
    ) -> Windows:
        """Training windows anchored at rows ``index`` (default: every step of the selected episodes).

        See ``Windows`` for the layout. ``action_start`` shifts the action chunk: 0 (default)
        starts at the current step as MPC needs; ``1 - n_obs_steps`` gives Diffusion Policy's and
        LeRobot's convention (actions aligned with the observation history). ``action_column`` picks
        the chunk's source: ``"action"`` (what was executed: dynamics) or ``"expert_action"`` (the
        expert's noise-free labels, DART-style: imitation). All index arithmetic
        is vectorised and deterministic; a torch ``Dataset`` can call this with one or a batch of
        rows from ``anchors()``.
        """
        for name, v in (("n_obs_steps", n_obs_steps), ("horizon", horizon), ("future", future)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if action_column not in ACTION_COLUMNS:
            raise ValueError(f"action_column must be one of {list(ACTION_COLUMNS)}, got {action_column!r}")
        if index is None:
            rows = self.anchors(sources, episodes)
        else:
            if sources is not None or episodes is not None:
                raise ValueError("pass either index or sources/episodes, not both")
            rows = np.asarray(index, dtype=np.int64).reshape(-1)
            if rows.size and (rows.min() < 0 or rows.max() >= self.num_steps):
                raise IndexError(f"window rows must lie in [0, {self.num_steps}), got {rows.min()}..{rows.max()}")
        e = self.episode_index[rows].astype(np.int64)  # [B]
        start = self.episode_start[e]  # [B] first row of the episode
        T = self.episode_start[e + 1] - start  # [B] episode length
        t = rows - start  # [B] anchor step
        state0 = start + e  # [B] index of s_0 in self.states

        # observation history s[t-o+1 .. t], clamped at s_0
        k = t[:, None] + np.arange(1 - n_obs_steps, 1)[None]  # [B, o]
        obs_valid = k >= 0
        obs_history = self.states[state0[:, None] + np.maximum(k, 0)]

        # actions a[t+ks .. t+ks+H-1], clamped to [0, T-1]
        k = t[:, None] + action_start + np.arange(horizon)[None]  # [B, H]
        valid = (k >= 0) & (k < T[:, None])
        actions = getattr(self, action_column)[start[:, None] + np.clip(k, 0, T[:, None] - 1)]

        # future states s[t+1 .. t+F], clamped at s_T
        k = t[:, None] + 1 + np.arange(future)[None]  # [B, F]
        future_valid = k <= T[:, None]
        future_states = self.states[state0[:, None] + np.minimum(k, T[:, None])]

        return Windows(
            obs_history=obs_history,
            obs_valid=obs_valid,
            actions=actions,
            valid=valid,
            future_states=future_states,
            future_valid=future_valid,
            episode_index=e.astype(np.int32),
            frame_index=t.astype(np.int32),
            task_index=self.task_index[rows],
            tasks=self.tasks,
        )

    def iter_windows(
        self,
        batch_size: int,
        n_obs_steps: int = 2,
        horizon: int = 16,
        future: int = 16,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        action_start: int = 0,
        action_column: str = "action",
        sources: Iterable[str] | None = None,
        episodes: Sequence[int] | None = None,
    ) -> Iterator[Windows]:
        """Yield ``Windows`` batches of ``batch_size``; ``shuffle`` permutes anchors with ``seed``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        rows = self.anchors(sources, episodes)
        if shuffle:
            rows = np.random.default_rng(seed).permutation(rows)
        stop = len(rows) - (len(rows) % batch_size if drop_last else 0)
        for i in range(0, stop, batch_size):
            yield self.windows(n_obs_steps, horizon, future, action_start=action_start, action_column=action_column,
                               index=rows[i : i + batch_size])


def read_dataset(path: str | os.PathLike[str]) -> Dataset:
    """``Dataset.load(path)``."""
    return Dataset.load(path)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``forethought`` metadata of the file at ``path``, reading only its footer."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"no data set at {path}: the file does not exist")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DatasetError(f"{path} is not a readable parquet data set; it is corrupt or truncated: {e}") from e
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise DatasetError(f"{path}: no '{METADATA_KEY.decode()}' metadata; not a forethought data set")
    try:
        return json.loads(raw)
    except ValueError as e:
        raise DatasetError(f"{path}: the '{METADATA_KEY.decode()}' metadata is not valid JSON: {e}") from e
