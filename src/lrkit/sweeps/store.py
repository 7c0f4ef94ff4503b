"""The result store: one SQLite file per sweep directory (stdlib sqlite3, WAL mode).

A run's metrics and its ``done`` status are written in one transaction, so a process killed
at any moment leaves every run either finished with all its rows or not finished with none:
re-running the sweep skips the first kind and redoes the second. WAL mode and a busy timeout
let several processes write at once.

A claimed run records its owner: host, PID and the process's start time (so a PID the system
reused for another process is not mistaken for the owner), and a heartbeat the owner renews
while it runs. A claim is stale when its owner is gone (same host: no process with that PID
and start time; another host: no heartbeat for :data:`LEASE_S`); stale claims are taken
over, live ones are reported as running elsewhere (``take_over=True`` takes them anyway).
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
LEASE_S = 120.0
"""A claim from another host whose heartbeat is older than this is stale."""
HEARTBEAT_S = 20.0
"""How often a running sweep renews the heartbeat of its claims."""

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
    wall_s REAL,
    owner TEXT,
    heartbeat REAL
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


class StoreError(ValueError):
    """A store that cannot be used as it is: one line naming the path and the fix."""


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, Linux ``/proc``), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]  # field 22: starttime


def owner_identity(pid: int | None = None) -> str:
    """``host/pid/start``: who holds a claim, unique even when the PID is later reused."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}/{pid}/{_start_time(pid) or '?'}"


def _owner_alive(owner: str, heartbeat: float | None, now: float) -> bool:
    """Whether the claim's owner may still be running (see the module docstring)."""
    host, _, rest = owner.partition("/")
    pid_text, _, start = rest.partition("/")
    if host == socket.gethostname() and pid_text.isdigit():
        current = _start_time(int(pid_text))
        if current is not None or start != "?":
            return current is not None and current == start
        try:  # no /proc: the PID alone, backed by the heartbeat below
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
    return heartbeat is not None and now - heartbeat < LEASE_S


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
            columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
            for column, kind in (("owner", "TEXT"), ("heartbeat", "REAL")):
                if column not in columns:  # a store written by lrkit 0.1
                    conn.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(2 * delay, 0.25)


class Store:
    """``DIR/lrkit.db``: sweeps, runs and their metrics. Created on first write unless
    ``create=False`` (what read-only commands use: a missing store is then an error)."""

    FILENAME = "lrkit.db"

    def __init__(self, directory: str | Path, *, create: bool = True) -> None:
        self.directory = Path(directory)
        self.path = self.directory / self.FILENAME
        self.create = create
        if not create and not self.path.is_file():
            raise FileNotFoundError(
                f"no lrkit.db in {self.directory}; check the store path (a sweep writes one)"
            )

    def _make_directory(self) -> None:
        for parent in [self.directory, *self.directory.parents]:
            if parent.exists() and not parent.is_dir():
                raise StoreError(
                    f"cannot make the store {self.directory}: {parent} is a file; choose "
                    "another --store path"
                )
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot make the store {self.directory} ({exc.strerror}); choose a writable "
                "--store path"
            ) from None

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        if self.create:
            self._make_directory()
        elif not self.path.is_file():
            raise FileNotFoundError(f"no lrkit.db in {self.directory}; check the store path")
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            try:
                _prepare(conn)
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            yield conn
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            raise self._error(exc) from None
        finally:
            conn.close()

    def _error(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if "not a database" in text or "malformed" in text:
            fix = "it is not an lrkit store (corrupt or another file); move it away or choose "
            fix += "another --store"
        elif "readonly" in text or "unable to open" in text or "disk I/O" in text:
            fix = "it cannot be written here; check its permissions or choose another --store"
        else:
            fix = "check the file or choose another --store"
        return StoreError(f"store {self.path}: {text}; {fix}")

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

    def claim(self, run_ids: Sequence[str], *, take_over: bool = False) -> list[str]:
        """Mark the given runs ``running`` by this process; return the ones to run now.

        Skipped: runs already done, and runs whose owner is alive (another process, here or on
        another host: see the module docstring). Runs of a gone owner, this process's own,
        failed ones, and with ``take_over=True`` every running one, are taken.
        """
        host, pid, me = socket.gethostname(), os.getpid(), owner_identity()
        now = time.time()
        taken: list[str] = []
        with self.transaction() as conn:
            for run_id in run_ids:
                row = conn.execute(
                    "SELECT status, owner, heartbeat FROM runs WHERE id = ?", (run_id,)
                ).fetchone()
                if row is None or row[0] == "done":
                    continue
                status, owner, heartbeat = row
                if (
                    status == "running"
                    and not take_over
                    and owner is not None
                    and owner != me
                    and _owner_alive(owner, heartbeat, now)
                ):
                    continue
                conn.execute(
                    "UPDATE runs SET status = 'running', host = ?, pid = ?, owner = ?, "
                    "started = ?, heartbeat = ?, error = NULL WHERE id = ?",
                    (host, pid, me, now, now, run_id),
                )
                taken.append(run_id)
        return taken

    def heartbeat(self) -> None:
        """Renew the heartbeat of every run this process is running."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET heartbeat = ? WHERE owner = ? AND status = 'running'",
                (time.time(), owner_identity()),
            )

    def running_elsewhere(self, run_ids: Sequence[str]) -> dict[str, str]:
        """``{run id: owner}`` of the given runs that another owner is running."""
        me = owner_identity()
        wanted = set(run_ids)
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT id, owner FROM runs WHERE status = 'running' AND owner IS NOT NULL"
            ).fetchall()
        return {r[0]: r[1] for r in rows if r[0] in wanted and r[1] != me}

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
        """The sweep ids (``<name>-<hash>``) in the store, oldest first."""
        with self.connect() as conn:
            return [r[0] for r in conn.execute("SELECT name FROM sweeps ORDER BY created")]

    def describe_sweeps(self) -> str:
        """The store's sweeps in one line: id, task, epochs, runs done."""
        parts = []
        with self.connect() as conn:
            rows = conn.execute("SELECT name, spec FROM sweeps ORDER BY created").fetchall()
            for name, spec_text in rows:
                spec = json.loads(spec_text)
                done, total = conn.execute(
                    "SELECT SUM(status = 'done'), COUNT(*) FROM runs WHERE sweep = ?", (name,)
                ).fetchone()
                parts.append(f"{name} ({spec.get('task')}, {spec.get('epochs')} epochs, "
                             f"{done or 0}/{total} done)")  # fmt: skip
        return "; ".join(parts) or "none"

    def resolve_sweep(self, name: str | None) -> str:
        """The sweep id that ``name`` means: an id, a unique name or id prefix, or, with
        ``None``, the store's only sweep. Ambiguity is an error listing the sweeps."""
        ids = self.sweeps()
        if name is None:
            if len(ids) == 1:
                return ids[0]
            raise ValueError(
                f"{self.path} holds {len(ids)} sweeps: {self.describe_sweeps()}; name one "
                "with --sweep"
                if ids
                else f"{self.path} holds no sweep yet"
            )
        if name in ids:
            return name
        matches = [i for i in ids if i.rpartition("-")[0] == name or i.startswith(name)]
        if len(matches) == 1:
            return matches[0]
        what = "several sweeps match" if matches else "no sweep matches"
        raise ValueError(
            f"{what} {name!r} in {self.path}; sweeps there: {self.describe_sweeps()}; "
            "pass one id with --sweep"
        )

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
