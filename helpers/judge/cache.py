"""A SQLite cache of judgments, written one row as each lands, so a killed run resumes without repeating a call;
beside them, a ledger of what each run has spent, so a dollar cap holds across reruns."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from pathlib import Path


def cache_key(judge_model: str, base_url: str, rubric: str, question: str, answer: str, mode: str,
              temperature: float = 0.0) -> str:
    """SHA-256 of everything that decides a judgment (never the API key); temperature 0 keeps the older keys."""
    parts = [judge_model, base_url, rubric, question, answer, mode] + ([float(temperature)] if temperature else [])
    blob = json.dumps(parts, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class JudgeCache:
    """key -> judgment dict; each `put` commits at once. Safe to share between threads."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS judgments (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS spend (ledger TEXT PRIMARY KEY, dollars REAL NOT NULL, "
                             "calls INTEGER NOT NULL)")
        except sqlite3.DatabaseError as e:
            raise ValueError(f"{self.path}: not a usable judge cache ({e}); delete the file to start a fresh cache") from e

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

    def put(self, key: str | None, value: dict | None, ledger: str | None = None, dollars: float = 0.0) -> None:
        """Store one judgment (None: nothing to keep) and add what its call cost to `ledger`, in one commit."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                if key is not None:
                    self._db.execute("INSERT OR REPLACE INTO judgments (key, value) VALUES (?, ?)",
                                     (key, json.dumps(value, ensure_ascii=False)))
                if ledger is not None:
                    self._db.execute("INSERT INTO spend (ledger, dollars, calls) VALUES (?, ?, 1) ON CONFLICT(ledger) "
                                     "DO UPDATE SET dollars = dollars + excluded.dollars, calls = calls + 1",
                                     (ledger, dollars))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def spent(self, ledger: str) -> float:
        """Dollars the calls recorded under `ledger` have cost so far."""
        with self._lock:
            row = self._db.execute("SELECT dollars FROM spend WHERE ledger = ?", (ledger,)).fetchone()
        return float(row[0]) if row else 0.0

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
