"""The result store: one SQLite file per sweep directory (stdlib sqlite3, WAL mode).

A run's metrics and its ``done`` status are written in one transaction, so a process killed
at any moment leaves every run either finished with all its rows or not finished with none:
re-running the sweep skips the first kind and redoes the second. WAL mode and a busy timeout
let several processes write at once.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RunRecord", "Store"]

BUSY_TIMEOUT_S = 60.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    sweep TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    diverged INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    summary TEXT,
    host TEXT,
    pid INTEGER,
    started REAL,
    finished REAL,
    wall_s REAL
);
CREATE TABLE IF NOT EXISTS metrics (
    run TEXT NOT NULL REFERENCES runs(id),
    kind TEXT NOT NULL CHECK (kind IN ('step', 'epoch')),
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run, kind, idx, name)
);
CREATE INDEX IF NOT EXISTS runs_by_sweep ON runs (sweep, status);
"""


@dataclass
class RunRecord:
    """A row of ``runs`` with its config and summary decoded."""

    id: str
    sweep: str
    config: dict[str, Any]
    status: str
    diverged: bool
    error: str | None
    summary: dict[str, Any]
    host: str | None
    started: float | None
    wall_s: float | None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prepare(conn: sqlite3.Connection) -> None:
    """WAL mode and the schema, retried while another process holds the file.

    Turning a new file to WAL needs an exclusive lock, and SQLite answers "database is locked"
    at once, without waiting out the busy timeout, when another process is opening the same new
    file (two workers starting one sweep). WAL is then recorded in the file, so later
    connections only read the mode.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SCHEMA)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(2 * delay, 0.25)


class Store:
    """``DIR/lrkit.db``: sweeps, runs and their metrics. Created on first use."""

    FILENAME = "lrkit.db"

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / self.FILENAME

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        self.directory.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            _prepare(conn)
            yield conn
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # ------------------------------------------------------------------ writing

    def register(self, name: str, spec: dict[str, Any], configs: Sequence[Any]) -> None:
        """Record the sweep and its runs as pending (runs already known keep their state)."""
        now = time.time()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO sweeps (name, spec, created, updated) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated = excluded.updated",
                (name, json.dumps(spec), now, now),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO runs (id, sweep, config, status) "
                "VALUES (?, ?, ?, 'pending')",
                [(c.id, name, json.dumps(c.to_dict(), sort_keys=True)) for c in configs],
            )

    def claim(self, run_ids: Sequence[str]) -> list[str]:
        """Mark the given runs ``running`` by this process; return the ones to run now.

        Skipped: runs already done, and runs another live process on this host is running.
        Runs left ``running`` by a dead process, and failed ones, are taken again.
        """
        host, pid = socket.gethostname(), os.getpid()
        taken: list[str] = []
        with self.transaction() as conn:
            for run_id in run_ids:
                row = conn.execute(
                    "SELECT status, host, pid FROM runs WHERE id = ?", (run_id,)
                ).fetchone()
                if row is None or row[0] == "done":
                    continue
                status, owner_host, owner_pid = row
                if (
                    status == "running"
                    and owner_pid is not None
                    and owner_pid != pid
                    and (owner_host != host or _alive(owner_pid))
                ):
                    continue
                conn.execute(
                    "UPDATE runs SET status = 'running', host = ?, pid = ?, started = ?, "
                    "error = NULL WHERE id = ?",
                    (host, pid, time.time(), run_id),
                )
                taken.append(run_id)
        return taken

    def finish(self, run_id: str, result: dict[str, Any]) -> None:
        """Write a finished run's metrics and mark it done: all in one transaction."""
        history = result["history"]
        rows: list[tuple[str, str, int, str, float | None]] = []
        for i, (lr, loss) in enumerate(zip(history["step_lr"], history["step_loss"], strict=True)):
            rows.append((run_id, "step", i, "lr", lr))
            rows.append((run_id, "step", i, "loss", loss))
        for epoch in history["epochs"]:
            for key, value in epoch.items():
                if key != "epoch":
                    rows.append((run_id, "epoch", int(epoch["epoch"]), key, value))
        summary = {
            "final": history["epochs"][-1] if history["epochs"] else {},
            "stop_reason": history["stop_reason"],
        }
        with self.transaction() as conn:
            conn.execute("DELETE FROM metrics WHERE run = ?", (run_id,))
            conn.executemany(
                "INSERT INTO metrics (run, kind, idx, name, value) VALUES (?, ?, ?, ?, ?)", rows
            )
            conn.execute(
                "UPDATE runs SET status = 'done', diverged = ?, summary = ?, finished = ?, "
                "wall_s = ?, error = NULL WHERE id = ?",
                (
                    int(history["diverged"]),
                    json.dumps(summary),
                    time.time(),
                    history["wall_s"],
                    run_id,
                ),
            )

    def fail(self, run_id: str, error: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET status = 'failed', error = ?, finished = ? WHERE id = ?",
                (error, time.time(), run_id),
            )

    # ------------------------------------------------------------------ reading

    def sweeps(self) -> list[str]:
        with self.connect() as conn:
            return [r[0] for r in conn.execute("SELECT name FROM sweeps ORDER BY created")]

    def spec(self, sweep: str) -> dict[str, Any]:
        with self.connect() as conn:
            row = conn.execute("SELECT spec FROM sweeps WHERE name = ?", (sweep,)).fetchone()
        if row is None:
            raise ValueError(f"no sweep {sweep!r} in {self.path}")
        spec: dict[str, Any] = json.loads(row[0])
        return spec

    def runs(self, sweep: str | None = None) -> list[RunRecord]:
        query = (
            "SELECT id, sweep, config, status, diverged, error, summary, host, started, wall_s "
            "FROM runs"
        )
        args: tuple[Any, ...] = ()
        if sweep is not None:
            query += " WHERE sweep = ?"
            args = (sweep,)
        with self.connect() as conn:
            rows = conn.execute(query + " ORDER BY rowid", args).fetchall()
        return [
            RunRecord(
                r[0],
                r[1],
                json.loads(r[2]),
                r[3],
                bool(r[4]),
                r[5],
                json.loads(r[6]) if r[6] else {},
                r[7],
                r[8],
                r[9],
            )
            for r in rows
        ]

    def run(self, run_id: str) -> RunRecord:
        matches = [r for r in self.runs() if r.id.startswith(run_id)]
        if len(matches) != 1:
            raise ValueError(
                f"{'no' if not matches else 'more than one'} run matches {run_id!r} in {self.path}"
            )
        return matches[0]

    def metrics(self, run_id: str, kind: str) -> dict[str, list[float | None]]:
        """``{name: [value by idx]}`` of one run's step or epoch metrics."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT name, idx, value FROM metrics WHERE run = ? AND kind = ? ORDER BY idx",
                (run_id, kind),
            ).fetchall()
        out: dict[str, list[float | None]] = {}
        for name, _, value in rows:
            out.setdefault(name, []).append(value)
        return out

    def count_metrics(self) -> int:
        with self.connect() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0])
