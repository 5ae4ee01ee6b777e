"""Throwaway CouchDB-compatible servers for tests: a private pouchdb-server, or ``COUCHDB_URL``.

:class:`LocalCouchServer` starts ``pouchdb-server`` (the npm package, e.g. installed with
``npm install pouchdb-server``) on a free loopback port, with its databases, its
``config.json`` and its ``log.txt`` in a temporary directory that is removed again on
stop. An admin account is created right after start-up, which ends pouchdb-server's
"admin party".

When the environment variable ``COUCHDB_URL`` is set, :func:`server_from_environment` uses
that server instead (credentials from ``COUCHDB_USER`` / ``COUCHDB_PASSWORD``) and starts
nothing.

Only the standard library is used here: starting a server imports nothing of the client.

Beware, pouchdb-server 4.2.0 *exits* on two kinds of request: a ``_changes`` filter other
than ``_doc_ids``, and ``PUT /{db}`` by a non-admin. Never send those to it.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol

__all__ = [
    "DEFAULT_PASSWORD",
    "DEFAULT_USER",
    "POUCHDB_SERVER_COMMAND",
    "CouchServer",
    "ExternalCouchServer",
    "LocalCouchServer",
    "ServerStartError",
    "external_server_from_environment",
    "server_from_environment",
]

DEFAULT_USER = "admin"
DEFAULT_PASSWORD = "password"

#: The program :class:`LocalCouchServer` runs when given none: looked up on ``PATH``.
POUCHDB_SERVER_COMMAND = "pouchdb-server"

_HOST = "127.0.0.1"
_PORT_ATTEMPTS = 3
_STOP_TIMEOUT = 10.0

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

# urllib would honour http_proxy & co.; requests to the test server must never go to a proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerStartError(RuntimeError):
    """The test server could not be started or set up."""


class _PortTakenError(ServerStartError):
    """Some other server listens on the port that was picked."""


class CouchServer(Protocol):
    """What the tests need to know about a server, local or external."""

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:5984``."""
        ...

    @property
    def user(self) -> str:
        """Name of a server admin."""
        ...

    @property
    def password(self) -> str:
        """Password of :attr:`user`."""
        ...

    @property
    def is_pouchdb(self) -> bool:
        """True for pouchdb-server, False for Apache CouchDB."""
        ...


@dataclass(frozen=True)
class _Response:
    status: int
    body: Any  # decoded JSON, or None if the body was not JSON


def _request(
    method: str,
    url: str,
    *,
    auth: tuple[str, str] | None = None,
    body: Any = None,
    timeout: float = 5.0,
) -> _Response:
    """Send one request with ``Accept: application/json`` and decode the JSON answer.

    HTTP error statuses are returned, not raised; connection errors raise :class:`OSError`.
    """
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status: int = response.status
            raw: bytes = response.read()
    except urllib.error.HTTPError as error:
        status = error.code
        raw = error.read()
        error.close()
    try:
        decoded: Any = json.loads(raw)
    except ValueError:
        decoded = None
    return _Response(status, decoded)


def _is_pouchdb_welcome(welcome: Any) -> bool:
    return isinstance(welcome, dict) and "express-pouchdb" in welcome


def _load_libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


# Loaded here, not in the forked child, where dlopen could deadlock.
_LIBC = _load_libc()


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM the server when the Python process dies.

    Covers a test run that is killed before it could stop the server (Linux only). The
    kernel sends the signal when the *thread* that started the child ends, so only a
    server started from the main thread gets it (see :meth:`LocalCouchServer._spawn`).
    """
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    """A port on the loopback interface that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_taken(output: str) -> bool:
    # pouchdb-server checks the port itself: "Error: Port N is already in use." (exit code 0)
    return "already in use" in output or "EADDRINUSE" in output


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-limit:].strip()


class LocalCouchServer:
    """A private pouchdb-server on 127.0.0.1, with an admin account, for one test session.

    Use it as a context manager::

        with LocalCouchServer() as server:
            print(server.url, server.user, server.password)

    or call :meth:`start` and :meth:`stop` yourself. The databases live in a temporary
    directory (on-disk leveldb, or in memory with ``in_memory=True``), which is also the
    server's working directory, so ``config.json`` and ``log.txt`` land there too. The
    directory is removed by :meth:`stop`.
    """

    is_pouchdb = True

    def __init__(
        self,
        user: str = DEFAULT_USER,
        password: str = DEFAULT_PASSWORD,
        *,
        port: int | None = None,
        in_memory: bool = False,
        executable: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        """Configure the server; nothing is started before :meth:`start`.

        :param user: name of the admin account to create.
        :param password: its password.
        :param port: port to listen on; by default a free one is picked.
        :param in_memory: keep databases in memory instead of leveldb files.
        :param executable: the ``pouchdb-server`` program: a path, or a name looked up on
            ``PATH`` when :meth:`start` runs; default :data:`POUCHDB_SERVER_COMMAND`.
        :param startup_timeout: seconds to wait for the server to answer.
        """
        self.user = user
        self.password = password
        self._requested_port = port
        self._in_memory = in_memory
        self._executable = (
            os.fspath(executable) if executable is not None else POUCHDB_SERVER_COMMAND
        )
        self._startup_timeout = startup_timeout
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._stdout: IO[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._uuid = ""
        self._program = ""

    # -- public API -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the running server, without a trailing slash."""
        if self._port is None:
            raise RuntimeError("the server is not running")
        return f"http://{_HOST}:{self._port}"

    @property
    def port(self) -> int:
        """The port the server listens on (only while it runs)."""
        if self._port is None:
            raise RuntimeError("the server is not running")
        return self._port

    @property
    def pid(self) -> int:
        """Process id of the node process (only while it runs)."""
        if self._process is None:
            raise RuntimeError("the server is not running")
        return self._process.pid

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def workdir(self) -> Path:
        """The temporary directory holding data, config.json and log.txt (while it runs)."""
        if self._workdir is None:
            raise RuntimeError("the server is not running")
        return self._workdir

    def start(self) -> LocalCouchServer:
        """Start the server, wait until it answers and create the admin account.

        :raises ServerStartError: with the server's output when it does not come up.
        """
        if self._process is not None:
            raise RuntimeError("the server is already running")
        self._program = _program(self._executable)
        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._requested_port if self._requested_port is not None else _free_port()
            try:
                self._launch(port)
                self._wait_until_up()
                self._create_admin()
            except ServerStartError as error:
                output = self.output()
                self.stop()
                # Another process may have taken the free port in the meantime: try again.
                taken = isinstance(error, _PortTakenError) or _port_taken(output)
                if attempt < attempts and taken:
                    continue
                raise ServerStartError(
                    f"{error}\n--- pouchdb-server output ---\n{output}"
                ) from None
            except BaseException:
                self.stop()
                raise
            break
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its temporary directory.

        Safe to call more than once.
        """
        process, self._process = self._process, None
        if process is not None:
            _terminate(process)
            atexit.unregister(self.stop)
        self._close_output()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._port = None

    def restart(self) -> None:
        """Stop the server and start it again on the same port, with the same data.

        Meanwhile connections are refused; open connections end as the process exits.
        Databases, documents, sequences and the admin account survive.

        :raises RuntimeError: if the server is not running or keeps its data in memory.
        :raises ServerStartError: when it does not come up again.
        """
        if self._in_memory:
            raise RuntimeError("an in-memory server would lose its data on restart")
        process, port = self._process, self._port
        if process is None or port is None or self._workdir is None:
            raise RuntimeError("the server is not running")
        _terminate(process)
        self._close_output()
        try:
            self._spawn(port)
            self._wait_until_up()
            self._check_admin()
        except ServerStartError as error:
            raise ServerStartError(
                f"{error}\n--- pouchdb-server output ---\n{self.output()}"
            ) from None

    def __enter__(self) -> LocalCouchServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not running"
        return f"<{type(self).__name__} {where}>"

    # -- internals ------------------------------------------------------------------------

    def _launch(self, port: int) -> None:
        workdir = Path(tempfile.mkdtemp(prefix="aiocouch-pouchdb-"))
        self._workdir = workdir
        # A server uuid of our own, shown in GET /, tells our process from any other server
        # that might answer on the same port.
        self._uuid = uuid.uuid4().hex
        config = {"couchdb": {"uuid": self._uuid}}
        (workdir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        if not self._in_memory:
            (workdir / "data").mkdir()
        self._spawn(port)

    def _spawn(self, port: int) -> None:
        """Runs pouchdb-server in the work directory (its data and config kept there)."""
        workdir = self.workdir
        self._port = port
        self._stdout = (workdir / "server.stdout").open("ab")
        self._stderr = (workdir / "server.stderr").open("ab")
        command = [
            self._program,
            "--host",
            _HOST,
            "--port",
            str(port),
            "--config",
            str(workdir / "config.json"),
            "--no-color",
        ]
        if self._in_memory:
            command.append("--in-memory")
        else:
            command += ["--dir", str(workdir / "data")]
        try:
            self._process = subprocess.Popen(
                command,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=self._stdout,
                stderr=self._stderr,
                # Own process group: Ctrl-C in a terminal reaches only Python, which then
                # shuts the server down in order.
                start_new_session=True,
                # From another thread (a restart in a worker thread, say), the signal
                # would kill the server when that thread ends; atexit stops it then.
                preexec_fn=(
                    _die_with_parent
                    if threading.current_thread() is threading.main_thread()
                    else None
                ),
            )
        except OSError as error:
            raise ServerStartError(f"cannot run {self._executable}: {error}") from error

    def _wait_until_up(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self._startup_timeout
        last_error = "no answer"
        while True:
            returncode = self._process.poll()
            if returncode is not None:
                raise ServerStartError(f"pouchdb-server exited with code {returncode}")
            try:
                response = _request("GET", self.url + "/", timeout=1.0)
            except OSError as error:
                last_error = str(error)
            else:
                body = response.body
                if response.status == 200 and _is_pouchdb_welcome(body):
                    if body.get("uuid") == self._uuid:
                        return
                    raise _PortTakenError(f"another server answers on {self.url}: {body!r}")
                last_error = f"GET / answered {response.status}: {body!r}"
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"pouchdb-server did not answer on {self.url} within "
                    f"{self._startup_timeout:g} s ({last_error})"
                )
            time.sleep(0.05)

    def _create_admin(self) -> None:
        # pouchdb-server starts in "admin party" mode; like CouchDB it takes admins through
        # PUT /_config/admins/<name> with the password as a JSON string, and stores a pbkdf2
        # hash of it in config.json.
        name = urllib.parse.quote(self.user, safe="")
        response = _request("PUT", f"{self.url}/_config/admins/{name}", body=self.password)
        if response.status != 200:
            raise ServerStartError(
                f"creating the admin failed: {response.status} {response.body!r}"
            )
        self._check_admin()

    def _check_admin(self) -> None:
        # Check without PUT /{db}: a non-admin PUT /{db} makes pouchdb-server 4.2.0 exit.
        session = _request("GET", self.url + "/_session", auth=(self.user, self.password))
        if "_admin" not in _roles(session.body):
            raise ServerStartError(f"admin login failed: {session.status} {session.body!r}")
        anonymous = _request("GET", self.url + "/_session")
        if "_admin" in _roles(anonymous.body):
            raise ServerStartError("anonymous requests still have the _admin role")

    def _close_output(self) -> None:
        for stream in (self._stdout, self._stderr):
            if stream is not None:
                stream.close()
        self._stdout = self._stderr = None

    def output(self) -> str:
        """The tail of the server's stderr and stdout, for error messages."""
        if self._workdir is None:
            return ""
        for stream in (self._stdout, self._stderr):
            if stream is not None:
                stream.flush()
        stderr = _tail(self._workdir / "server.stderr")
        stdout = _tail(self._workdir / "server.stdout")
        return f"stderr:\n{stderr or '(empty)'}\nstdout:\n{stdout or '(empty)'}"


def _program(executable: str) -> str:
    """The path of ``executable``: as given if it names a file, else found on ``PATH``.

    :raises ServerStartError: when there is no such program, or it cannot be run.
    """
    if os.sep in executable or (os.altsep is not None and os.altsep in executable):
        if os.access(executable, os.X_OK) and not os.path.isdir(executable):
            return executable
        raise ServerStartError(
            f"{executable} not found or not executable; install pouchdb-server "
            "(npm install pouchdb-server) and name its program, e.g. "
            "node_modules/.bin/pouchdb-server"
        )
    found = shutil.which(executable)
    if found is None:
        raise ServerStartError(
            f"{executable!r} not found on PATH; install pouchdb-server "
            "(npm install pouchdb-server) and name its program, e.g. "
            "node_modules/.bin/pouchdb-server"
        )
    return found


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """Ends the process: SIGTERM, then SIGKILL if it is still there after a while."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _roles(session: Any) -> list[Any]:
    if isinstance(session, dict):
        user_ctx = session.get("userCtx")
        if isinstance(user_ctx, dict):
            roles = user_ctx.get("roles")
            if isinstance(roles, list):
                return roles
    return []


@dataclass(frozen=True)
class ExternalCouchServer:
    """A server that runs elsewhere (``COUCHDB_URL``); nothing is started or stopped."""

    url: str
    user: str
    password: str
    is_pouchdb: bool = False


def external_server_from_environment() -> ExternalCouchServer | None:
    """The server named by ``COUCHDB_URL``, or None when the variable is unset or empty.

    Credentials come from ``COUCHDB_USER`` and ``COUCHDB_PASSWORD`` (default
    ``admin``/``password``). The server is asked for ``GET /`` once, both to fail early with
    a clear message and to tell a pouchdb-server (``is_pouchdb`` True) from CouchDB.

    :raises ServerStartError: when the server does not answer.
    """
    url = os.environ.get("COUCHDB_URL", "").strip().rstrip("/")
    if not url:
        return None
    user = os.environ.get("COUCHDB_USER", DEFAULT_USER)
    password = os.environ.get("COUCHDB_PASSWORD", DEFAULT_PASSWORD)
    try:
        welcome = _request("GET", url + "/", auth=(user, password))
    except OSError as error:
        raise ServerStartError(f"COUCHDB_URL={url} does not answer: {error}") from error
    if welcome.status != 200:
        raise ServerStartError(
            f"COUCHDB_URL={url}: GET / answered {welcome.status}: {welcome.body!r}"
        )
    return ExternalCouchServer(url, user, password, is_pouchdb=_is_pouchdb_welcome(welcome.body))


@contextlib.contextmanager
def server_from_environment(**kwargs: Any) -> Iterator[CouchServer]:
    """Yield the server from ``COUCHDB_URL`` if set, else a fresh :class:`LocalCouchServer`.

    ``kwargs`` are passed to :class:`LocalCouchServer` (and ignored for an external server).
    """
    external = external_server_from_environment()
    if external is not None:
        yield external
        return
    with LocalCouchServer(**kwargs) as server:
        yield server
