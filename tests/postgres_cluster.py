"""A throwaway PostgreSQL cluster of the machine's own binaries, on loopback only, for the
tests that need one server database shared by several processes."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NoPostgres(RuntimeError):
    """The machine cannot run a throwaway cluster (no binaries, or root without a
    'postgres' user); the message says which."""


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """A new cluster in a temp dir on a free loopback port; yields its SQLAlchemy URL and
    removes everything on exit. Also used by `benchmarks/overhead.py --db postgres`."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise NoPostgres("PostgreSQL server binaries not installed (apt-get install postgresql)")
    bindir = Path(found[-1]).parent
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise NoPostgres(
                "running as root and no 'postgres' user to run the server as"
            ) from None
        as_user = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="signoria-pg-"))
    root.chmod(0o755)
    data = root / "data"
    data.mkdir()
    if as_user:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "signoria", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    log = (root / "server.log").open("wb")
    if as_user:
        shutil.chown(root / "server.log", "postgres")
    server = subprocess.Popen(
        [
            *as_user,
            str(bindir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(root),
            "-c",
            "listen_addresses=127.0.0.1",
        ],
        stdout=log,
        stderr=log,
    )
    url = f"postgresql+psycopg://signoria@127.0.0.1:{port}/postgres"
    try:
        engine = create_engine(url)
        for _ in range(600):  # up to a minute
            try:
                with engine.connect():
                    break
            except Exception:
                time.sleep(0.1)
        else:
            raise RuntimeError((root / "server.log").read_text()[-2000:])
        engine.dispose()
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    try:
        with throwaway_cluster() as url:
            yield url
    except NoPostgres as exc:
        pytest.skip(str(exc))
