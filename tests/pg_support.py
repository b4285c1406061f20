"""A real PostgreSQL server for the tests: Debian's ``postgresql`` package, started by the suite.

``PgServer.start()`` runs ``initdb`` into a temporary folder and ``pg_ctl start`` on a free
loopback port (socket in the same folder), trust authentication on loopback only. As root
(CI), the server runs as the ``postgres`` user the package creates (``initdb`` refuses root).
No server binary is a test failure naming what to install, never a skip.

``new_database()`` gives each test its own empty database, so tests never see each other's
rows. ``restart()``/``terminate_connections()`` serve the chaos tests.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field

__all__ = ["PgServer", "pg_bindir"]


def pg_bindir() -> str:
    """The folder holding initdb/pg_ctl (Debian keeps them off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(os.path.realpath(initdb))
    raise RuntimeError(
        "PostgreSQL server binaries not found (initdb): install Debian's postgresql package "
        "(scripts/test.sh does)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    root: str = ""
    port: int = 0
    bindir: str = ""
    _user: str | None = None  # run the server as this OS user (root cannot)
    databases: list[str] = field(default_factory=list)

    @property
    def datadir(self) -> str:
        return os.path.join(self.root, "data")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = list(argv)
        if self._user:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)

    @classmethod
    def start(cls) -> "PgServer":
        bindir = pg_bindir()
        root = tempfile.mkdtemp(prefix="td-graph-pg-")
        user = None
        if os.geteuid() == 0:
            user = "postgres"
            try:
                info = pwd.getpwnam(user)
            except KeyError:
                raise RuntimeError("running as root and no 'postgres' user to run PostgreSQL as") from None
            os.chown(root, info.pw_uid, info.pw_gid)
        server = cls(root=root, port=_free_port(), bindir=bindir, _user=user)
        server._run(
            os.path.join(bindir, "initdb"), "-D", server.datadir, "-U", "postgres",
            "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C",
        )
        with open(os.path.join(server.datadir, "postgresql.auto.conf"), "a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {server.port}\n"
                f"unix_socket_directories = '{root}'\nfsync = off\nmax_connections = 200\n"
                "shared_buffers = 32MB\n"
            )
        server._start()
        return server

    def _start(self) -> None:
        log = os.path.join(self.root, "server.log")
        result = self._run(
            os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-l", log, "-w", "-t", "60", "start",
            check=False,
        )
        if result.returncode != 0:
            tail = open(log).read()[-2000:] if os.path.exists(log) else ""
            raise RuntimeError(f"pg_ctl start failed: {result.stderr.strip()} {tail}")

    def stop(self, mode: str = "fast") -> None:
        self._run(os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        """Stop (fast: every connection is cut) and start again on the same port."""
        self.stop()
        self._start()

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        result = subprocess.run(
            [os.path.join(self.bindir, "psql") if os.path.exists(os.path.join(self.bindir, "psql")) else "psql",
             "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", dbname, "-c", sql],
            capture_output=True, text=True, timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def new_database(self) -> str:
        """A new empty database; returns its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.psql(f"CREATE DATABASE {name}")
        self.databases.append(name)
        return self.url(name)

    def terminate_connections(self, dbname: str | None = None, application_name: str | None = None) -> int:
        """pg_terminate_backend on client connections (of one database / application name)."""
        where = ["pid <> pg_backend_pid()", "backend_type = 'client backend'"]
        if dbname:
            where.append(f"datname = '{dbname}'")
        if application_name:
            where.append(f"application_name = '{application_name}'")
        out = self.psql(f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE {' AND '.join(where)}")
        return int(out or 0)

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
