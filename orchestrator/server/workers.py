"""`signoria serve --workers N`: N processes answering on one listening socket.

Why fork rather than uvicorn's own `workers=`: uvicorn's supervisor starts fresh
interpreters that import the app from a string, so the app, the bounded protocol and the
settings would all have to be rebuilt from the environment. Here the parent binds the
socket, then forks the workers before any model, database connection, thread or event
loop exists, and each worker builds its server exactly as a one-process `serve` does.
The kernel hands each new connection to one of the workers accepting on the socket.

Per worker: local models (memory times N), the in-flight cap, the response cache, the
circuit breakers. Shared: in the database, the records, keys, budgets and rate
admission; in `PROMETHEUS_MULTIPROC_DIR`, the metrics, which any worker's `/metrics`
sums. The parent forwards SIGINT and SIGTERM; when one worker exits, the others are
stopped and the parent exits with the first non-zero code, so a supervisor (systemd,
Kubernetes) restarts the whole service.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import tempfile
import traceback
from collections.abc import Callable
from types import FrameType

from signoria.errors import SignoriaError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Read by prometheus_client when it is first imported: it must be set before the fork,
# and this module must not import prometheus_client itself (the parent would then have
# chosen the single-process mode that the workers inherit).
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def bind(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """The listening socket every worker accepts on; a taken port is one clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SignoriaError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def _forget_metrics(pid: int) -> None:
    """A dead worker's live gauges (requests in flight) stop counting."""
    if os.environ.get(MULTIPROCESS_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _exit_code(status: int) -> int:
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else 1


def _worker(run: Callable[[], None]) -> int:
    """A worker's whole life; its exit code. Signals are uvicorn's again (default first)."""
    for signum in STOP_SIGNALS:
        signal.signal(
            signum, signal.SIG_DFL if signum == signal.SIGTERM else signal.default_int_handler
        )
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    try:
        run()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except SignoriaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def run_workers(count: int, run: Callable[[], None]) -> int:
    """Fork `count` workers that each call `run` (which serves on the inherited socket
    until stopped); supervise them; return the exit code for the whole service.

    Metrics: before the fork, prometheus_client's multiprocess mode is turned on (a
    private directory in `PROMETHEUS_MULTIPROC_DIR`, unless one is set), so that each
    worker's counts land in files that any worker's `/metrics` sums."""
    with tempfile.TemporaryDirectory(prefix="signoria-metrics-") as metrics_dir:
        own = not os.environ.get(MULTIPROCESS_ENV)
        if own:
            os.environ[MULTIPROCESS_ENV] = metrics_dir
        try:
            return _supervise(count, run)
        finally:
            if own:
                os.environ.pop(MULTIPROCESS_ENV, None)


def _supervise(count: int, run: Callable[[], None]) -> int:
    children: set[int] = set()
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        # Stop signals wait while forking: a worker must not run the parent's handler
        # (it would signal its siblings) before it has put the defaults back.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            for _ in range(count):
                pid = os.fork()
                if pid == 0:
                    os._exit(_worker(run))
                children.add(pid)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        code = 0
        while children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            children.discard(pid)
            _forget_metrics(pid)
            child_code = _exit_code(status)
            if child_code and not code and not stopping:
                code = child_code
            if not stopping:  # one worker gone: the service is not whole, stop the rest
                stop(signal.SIGTERM, None)
        return code
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
