"""Run by test_crash_safety.py in a subprocess: `python slow_add.py INDEX FOLDER MODE`, to be killed.

MODE "slow": a slow embedder, and "done N" printed after each file (the test kills it mid-way).
MODE "kill-in-commit": the process SIGKILLs itself inside the 4th file's transaction, just before COMMIT.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fake_embedder import FakeEmbedder  # noqa: E402

from edge_sdk.rag import Index  # noqa: E402
from edge_sdk.runtime.rag import store  # noqa: E402

index_path, folder, mode = sys.argv[1:4]
embedder = FakeEmbedder(delay=0.01 if mode == "slow" else 0.0)

if mode == "kill-in-commit":
    commits = 0

    class Connection:  # sqlite3.Connection's methods are read-only: wrap it
        def __init__(self, conn):
            self._conn = conn

        def execute(self, sql, *args):
            global commits
            if sql == "COMMIT":
                commits += 1
                if commits == 4:
                    os.kill(os.getpid(), signal.SIGKILL)
            return self._conn.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self._conn, name)

    real_init = store.Store.__init__

    def init(self, path, conn):
        real_init(self, path, Connection(conn))

    store.Store.__init__ = init


def progress(done, total, path):
    print(f"done {done}", flush=True)


with Index.open(index_path, embedder) as index:
    index.add([folder], progress=progress)
print("finished", flush=True)
