"""The SSD draft in its own spawned process, one torch thread, commanded over a ``Pipe``.

Messages (parent → child): ``("start", prompt, seed, key, constraint | None, generated)``, ``("propose", SpecRequest)``,
``("forget", key)``, ``("exit",)``. A constraint crosses the pipe once: the child keeps it under its
``key`` (with the masks it has computed for it) and the parent sends ``None`` for a key already sent,
so alternating scenes never rebuild masks in the child. Both sides keep the ``KEPT_CONSTRAINTS`` most
recently used ones: the parent tells the child to forget the one it drops (a planner makes a new
grammar for each command it decodes a second time, ``planning.coverage``). Child → parent:
``("ready", vocab_size)``, ``("proposal", Proposal)``, ``("error", text)``.

After sending each proposal the child pre-drafts the next round's branches while the parent
verifies. Every receive on both sides has a timeout: the parent treats a silent, dead or failing
child as gone (``DraftProcessError``), and the child exits when its parent disappears.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
import weakref
from typing import Any

from .language_model import ModelSpec
from .speculate_types import Proposal, SpecRequest, TokenConstraint
from .speculator import DraftSpeculator, Speculator, SpeculatorConfig


KEPT_CONSTRAINTS = 16


class DraftProcessError(RuntimeError):
    """The draft process died, timed out or failed; the engine finishes without it."""


def _worker(conn: Any, spec: ModelSpec, config: SpeculatorConfig, parent_pid: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        model = spec.load()
        conn.send(("ready", model.vocab_size))
        drafter = DraftSpeculator(model, config)
        constraints: dict[int, TokenConstraint | None] = {}
        while True:
            if not conn.poll(1.0):
                if os.getppid() != parent_pid:
                    return
                continue
            msg = conn.recv()
            if msg[0] == "exit":
                return
            if msg[0] == "forget":
                constraints.pop(msg[1], None)
            elif msg[0] == "start":
                _, prompt, seed, key, new_constraint, generated = msg
                if key not in constraints:
                    constraints[key] = new_constraint
                drafter.start(prompt, seed, constraints[key], generated)
            elif msg[0] == "propose":
                conn.send(("proposal", drafter.propose(msg[1])))
                if config.predraft:
                    drafter.predraft()
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return
    except Exception:  # reported to the parent, which finishes without the draft
        try:
            conn.send(("error", traceback.format_exc()))
        except (BrokenPipeError, OSError):
            pass


def _shutdown(proc: Any, conn: Any, timeout_s: float) -> None:
    """Ask the child to exit, then terminate and kill it if it does not; never blocks longer than ~3 timeouts."""
    try:
        conn.send(("exit",))
    except (BrokenPipeError, OSError):
        pass
    proc.join(timeout_s)
    if proc.is_alive():
        proc.terminate()
        proc.join(timeout_s)
    if proc.is_alive():
        proc.kill()
        proc.join(timeout_s)
    conn.close()


class ProcessSpeculator(Speculator):
    """Proxy to a ``DraftSpeculator`` in a spawned process (see module docstring)."""

    def __init__(
        self,
        spec: ModelSpec,
        config: SpeculatorConfig,
        timeout_s: float = 60.0,
        startup_timeout_s: float = 600.0,
        threads: int = 1,
    ) -> None:
        self.lookahead = config.lookahead
        self.timeout_s = timeout_s
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, spec, config, os.getpid(), threads), daemon=True, name="ssd-draft")
        self.proc.start()
        child.close()
        self._finalizer = weakref.finalize(self, _shutdown, self.proc, self.conn, 2.0)
        self._sent: dict[int, TokenConstraint | None] = {}  # key -> constraint (kept alive so that ids stay unique), oldest first
        self.vocab_size = int(self._receive("ready", startup_timeout_s)[1])

    @property
    def alive(self) -> bool:
        return self._finalizer.alive and self.proc.is_alive()

    def _receive(self, kind: str, timeout_s: float) -> tuple:
        try:
            ready = self.conn.poll(timeout_s)
            msg = self.conn.recv() if ready else None
        except (EOFError, BrokenPipeError, OSError) as e:
            self.close()
            raise DraftProcessError(f"draft process is gone ({type(e).__name__})") from e
        if msg is None:
            self.close()
            raise DraftProcessError(f"draft process sent nothing within {timeout_s:.0f} s")
        if msg[0] == "error":
            self.close()
            raise DraftProcessError(f"draft process failed:\n{msg[1]}")
        assert msg[0] == kind, f"expected {kind!r} from the draft process, got {msg[0]!r}"
        return msg

    def _send(self, msg: tuple) -> None:
        if not self.alive:
            raise DraftProcessError("draft process is not running")
        try:
            self.conn.send(msg)
        except (BrokenPipeError, OSError) as e:
            self.close()
            raise DraftProcessError(f"draft process is gone ({type(e).__name__})") from e

    def start(self, prompt: list[int], seed: int, constraint: TokenConstraint | None, generated: int = 0) -> None:
        key = id(constraint)
        payload = None if key in self._sent else constraint
        self._send(("start", list(prompt), seed, key, payload, generated))
        self._sent[key] = self._sent.pop(key, constraint)  # now the most recently used
        if len(self._sent) > KEPT_CONSTRAINTS:
            oldest = next(iter(self._sent))
            self._send(("forget", oldest))
            del self._sent[oldest]

    def propose(self, request: SpecRequest) -> Proposal:
        self._send(("propose", request))
        proposal = self._receive("proposal", self.timeout_s)[1]
        assert proposal.round == request.round and len(proposal.tokens) == self.lookahead
        return proposal

    def close(self) -> None:
        self._finalizer()
