"""A SQLite cache of judgments, written one row as each lands, so a killed run resumes without repeating a call;
beside them, a ledger of what each run has spent and holds in flight, shared by every process that judges the run."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path

_HOST = socket.gethostname()
HOLD_S = 600.0  # a hold older than this can no longer settle: it counts as spent (JudgeCache(hold_s=...))


def cache_key(judge_model: str, base_url: str, rubric: str, question: str, answer: str, mode: str,
              temperature: float = 0.0) -> str:
    """SHA-256 of everything that decides a judgment (never the API key); temperature 0 keeps the older keys."""
    parts = [judge_model, base_url, rubric, question, answer, mode] + ([float(temperature)] if temperature else [])
    blob = json.dumps(parts, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _alive(pid: int) -> bool:
    import psutil

    return psutil.pid_exists(pid)


class JudgeCache:
    """key -> judgment dict, and the spend ledger; each write is one transaction. Safe to share between threads, and
    between processes: the ledger's holds and spend are read and written under SQLite's write lock (BEGIN IMMEDIATE)."""

    def __init__(self, path: str | os.PathLike, hold_s: float = HOLD_S):
        self.path, self.hold_s = Path(path), hold_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS judgments (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS spend (ledger TEXT PRIMARY KEY, dollars REAL NOT NULL, "
                             "calls INTEGER NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS holds (id INTEGER PRIMARY KEY, ledger TEXT NOT NULL, "
                             "key TEXT, dollars REAL NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL, until REAL)")
            if "until" not in {row[1] for row in self._db.execute("PRAGMA table_info(holds)")}:  # an older cache
                with contextlib.suppress(sqlite3.OperationalError):  # another process added it first
                    self._db.execute("ALTER TABLE holds ADD COLUMN until REAL")
        except sqlite3.DatabaseError as e:
            raise ValueError(f"{self.path}: not a usable judge cache ({e}); delete the file to start a fresh cache") from e

    def _write(self, work):
        """Run `work(db)` in one IMMEDIATE transaction (other processes wait for the write lock)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = work(self._db)
                self._db.execute("COMMIT")
                return result
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get_many(self, keys) -> dict[str, dict]:
        """The cached judgments among `keys`."""
        keys, found = list(dict.fromkeys(keys)), {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                rows = self._db.execute(
                    f"SELECT key, value FROM judgments WHERE key IN ({','.join('?' * len(chunk))})", chunk)
                found.update((k, json.loads(v)) for k, v in rows)
        return found

    def put(self, key: str, value: dict) -> None:
        """Store one judgment."""
        self._write(lambda db: _store(db, key, value))

    # -- the ledger ----------------------------------------------------------------------------------
    def reserve(self, ledger: str, key: str | None, dollars: float, cap: float) -> tuple[str, object]:
        """Hold `dollars` for one attempt before it is sent, in one transaction. Returns ('hit', judgment) when
        another call cached the key meanwhile, ('wait', pid) when a live call holds the same key or the cap has
        no room while calls are in flight, ('cap', None) when the cap has no room, else ('held', hold id)."""
        def work(db):
            _reap(db)
            if key is not None:
                row = db.execute("SELECT value FROM judgments WHERE key = ?", (key,)).fetchone()
                if row:
                    return "hit", json.loads(row[0])
                row = db.execute("SELECT pid FROM holds WHERE key = ?", (key,)).fetchone()
                if row:
                    return "wait", row[0]
            spent, held, holder = _totals(db, ledger)
            if spent + held + dollars > cap + 1e-12:
                return ("wait", holder) if holder is not None else ("cap", None)
            cur = db.execute("INSERT INTO holds (ledger, key, dollars, pid, host, until) VALUES (?, ?, ?, ?, ?, ?)",
                             (ledger, key, dollars, os.getpid(), _HOST, time.time() + self.hold_s))
            return "held", cur.lastrowid
        return self._write(work)

    def settle(self, hold: int, ledger: str, dollars: float, key: str | None = None, value: dict | None = None):
        """Replace a hold by what the attempt cost and store its judgment (key None: nothing to keep): one commit."""
        def work(db):
            db.execute("DELETE FROM holds WHERE id = ?", (hold,))
            if key is not None:
                _store(db, key, value)
            _add_spend(db, ledger, dollars)
        self._write(work)

    def release(self, hold: int) -> None:
        """Drop a hold whose request never reached a server (connection refused, DNS): nothing was billed."""
        self._write(lambda db: db.execute("DELETE FROM holds WHERE id = ?", (hold,)))

    def spent(self, ledger: str) -> float:
        """Dollars `ledger` has spent or holds: calls settled, calls in flight, calls killed in flight (worst case)."""
        def work(db):
            _reap(db)
            spent, held, _ = _totals(db, ledger)
            return spent + held
        return self._write(work)

    def forget(self, ledger: str) -> None:
        """Remove a ledger that only one call used (judge_table's own cap)."""
        self._write(lambda db: db.execute("DELETE FROM spend WHERE ledger = ?", (ledger,)))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _store(db, key: str, value: dict) -> None:
    db.execute("INSERT OR REPLACE INTO judgments (key, value) VALUES (?, ?)",
               (key, json.dumps(value, ensure_ascii=False)))


def _add_spend(db, ledger: str, dollars: float) -> None:
    db.execute("INSERT INTO spend (ledger, dollars, calls) VALUES (?, ?, 1) ON CONFLICT(ledger) "
               "DO UPDATE SET dollars = dollars + excluded.dollars, calls = calls + 1", (ledger, dollars))


def _totals(db, ledger: str) -> tuple[float, float, int | None]:
    """(settled spend, dollars held in flight, the pid of one holder) of a ledger."""
    row = db.execute("SELECT dollars FROM spend WHERE ledger = ?", (ledger,)).fetchone()
    held = db.execute("SELECT COALESCE(SUM(dollars), 0), MIN(pid) FROM holds WHERE ledger = ?", (ledger,)).fetchone()
    return (float(row[0]) if row else 0.0), float(held[0]), held[1]


def _reap(db) -> None:
    """Holds that can no longer settle become spend at their worst case: those of processes on this machine that died
    in flight (a kill), and any hold past its time, whatever its process or machine (an interrupted call's)."""
    pids = db.execute("SELECT DISTINCT pid FROM holds WHERE host = ? AND pid != ?", (_HOST, os.getpid())).fetchall()
    dead = [pid for (pid,) in pids if not _alive(pid)]
    stale = db.execute(f"SELECT id, ledger, dollars FROM holds WHERE until IS NULL OR until < ? OR "
                       f"(host = ? AND pid IN ({','.join('?' * len(dead))}))", (time.time(), _HOST, *dead)).fetchall()
    for hold, ledger, dollars in stale:
        db.execute("DELETE FROM holds WHERE id = ?", (hold,))
        _add_spend(db, ledger, dollars)
