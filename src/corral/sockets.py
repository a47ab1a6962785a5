"""Listening sockets: bind parsing, creation, adoption of inherited fds, and cleanup.

Bind syntax (each `-b`/`bind` entry):

- `HOST:PORT`, `HOST` (port 8000), `:PORT` (all IPv4 interfaces), `tcp://HOST:PORT`;
- `[IPV6]:PORT` or `[IPV6]`: IPv6 literals always in brackets; bound with IPV6_V6ONLY, so
  `[::]:8000` and `0.0.0.0:8000` can be bound side by side;
- `unix:PATH` (also `unix://PATH`): a Unix socket file; `unix:PATH?mode=660` sets its octal
  permission bits (otherwise the umask decides), `unix:@NAME` is Linux's abstract namespace;
- `fd://N`: an already-open socket, e.g. passed by a supervisor; bound, and listening or not.

Listeners are created once in the arbiter. Workers inherit them through fork; across an upgrade
re-exec they pass as inheritable fds named in CORRAL_FDS. They are not inheritable otherwise, so
a subprocess started by the app never holds the server's ports open.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import stat
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Literal

from corral.hostport import port_number, split_host_port

DEFAULT_PORT = 8000
SD_LISTEN_FDS_START = 3  # sd_listen_fds(3): passed sockets start at fd 3
INHERIT_ENV = "CORRAL_FDS"
SYSTEMD_ENV = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


class BindError(Exception):
    """A bind string is malformed, or its socket cannot be created; the message says which."""


@dataclass(frozen=True)
class BindSpec:
    """One parsed bind address."""

    kind: Literal["tcp", "unix", "fd"]
    host: str = ""
    port: int = 0
    path: str = ""  # unix: the file path, or "@name" for the abstract namespace
    mode: int | None = None  # unix: permission bits; None = whatever the umask gives
    fd: int = -1

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}" + (f"?mode={self.mode:o}" if self.mode is not None else "")
        if self.kind == "fd":
            return f"fd://{self.fd}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_bind(text: str) -> BindSpec:
    """Parse one bind string (syntax in the module docstring); BindError when malformed."""
    raw = text.strip()
    if not raw:
        raise BindError("bind '': empty address")
    if raw.startswith("unix:"):
        return _parse_unix(raw, raw[5:])
    if raw.startswith("fd://"):
        digits = raw[5:]
        if not (digits.isascii() and digits.isdigit()):
            raise BindError(f"bind {text!r}: fd://N needs a file descriptor number")
        return BindSpec("fd", fd=int(digits))
    if raw.startswith("tcp://"):
        raw = raw[6:]
    return _parse_tcp(text, raw)


def _parse_unix(text: str, rest: str) -> BindSpec:
    if rest.startswith("//"):
        rest = rest[2:]
    path, _, query = rest.partition("?")
    if not path:
        raise BindError(f"bind {text!r}: unix: needs a path")
    mode = None
    if query:
        key, _, value = query.partition("=")
        if key != "mode":
            raise BindError(f"bind {text!r}: the only unix socket option is ?mode=OCTAL")
        try:
            mode = int(value.removeprefix("0o"), 8)
        except ValueError:
            raise BindError(f"bind {text!r}: mode {value!r} is not octal (e.g. 660)") from None
        if not 0 <= mode <= 0o777:
            raise BindError(f"bind {text!r}: mode {value} is outside 0..777")
        if path.startswith("@"):
            raise BindError(f"bind {text!r}: an abstract socket has no file mode")
    return BindSpec("unix", path=path, mode=mode)


def _parse_tcp(text: str, raw: str) -> BindSpec:
    try:
        host, port_text, bracketed = split_host_port(raw)
    except ValueError as exc:
        raise BindError(f"bind {text!r}: {exc}") from None
    if bracketed:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise BindError(f"bind {text!r}: {host!r} is not an IPv6 address") from None
    else:
        host = host or "0.0.0.0"
    if any(c.isspace() or c in "/?#@" for c in host):
        raise BindError(f"bind {text!r}: {host!r} is not a host name or address")
    port = DEFAULT_PORT
    if port_text is not None:
        number = port_number(port_text)
        if number is None or number > 65535:
            raise BindError(f"bind {text!r}: port {port_text!r} is not a number in 0..65535")
        port = number
    return BindSpec("tcp", host=host.lower(), port=port)


@dataclass
class Listener:
    """A listening socket and what the arbiter needs to know about it."""

    sock: socket.socket
    spec: BindSpec | None = None  # None for sockets handed to us (systemd, upgrade)
    # The (st_dev, st_ino) of a Unix socket file we created: only that file is ever unlinked.
    owned_file: tuple[int, int] | None = None

    def fileno(self) -> int:
        return self.sock.fileno()

    def url(self, scheme: str = "http") -> str:
        """Where clients connect: `http://127.0.0.1:8000`, `https://[::1]:8000`, `unix:/path`."""
        return format_address(self.sock.family, self.sock.getsockname(), scheme)

    def unix_path(self) -> str | None:
        """The filesystem path of a Unix socket, None otherwise (and for abstract sockets)."""
        if self.sock.family != socket.AF_UNIX:
            return None
        name = self.sock.getsockname()
        return name if isinstance(name, str) and name and not name.startswith("\0") else None

    def close(self, unlink: bool) -> None:
        """Close our fd; with `unlink`, remove the socket file if it is still the one we made."""
        path = self.unix_path()
        self.sock.close()
        if unlink and path is not None and self.owned_file is not None:
            with contextlib.suppress(OSError):
                st = os.stat(path)
                if (st.st_dev, st.st_ino) == self.owned_file:
                    os.unlink(path)


def format_address(family: int, name: object, scheme: str = "http") -> str:
    """A socket name in the form the "Listening at:" log line uses."""
    if family == socket.AF_UNIX:
        if isinstance(name, bytes):
            name = name.decode("utf-8", "backslashreplace")
        text = str(name)
        return "unix:@" + text[1:] if text.startswith("\0") else f"unix:{text}"
    if family == socket.AF_INET6 and isinstance(name, tuple):
        return f"{scheme}://[{name[0]}]:{name[1]}"
    if isinstance(name, tuple):
        return f"{scheme}://{name[0]}:{name[1]}"
    return str(name)


def take_systemd_fds(environ: MutableMapping[str, str], pid: int) -> list[int]:
    """The fds systemd socket activation passed to `pid` (sd_listen_fds(3)), and unset its vars.

    The variables are removed whether or not they were meant for us, so our workers and anything
    they start never mistake the sockets for their own.
    """
    count, target = environ.get("LISTEN_FDS"), environ.get("LISTEN_PID")
    for name in SYSTEMD_ENV:
        environ.pop(name, None)
    if count is None or target is None:
        return []
    try:
        n, target_pid = int(count), int(target)
    except ValueError:
        raise BindError(f"LISTEN_FDS={count!r} LISTEN_PID={target!r}: not numbers") from None
    if target_pid != pid or n <= 0:
        return []
    return list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + n))


def adopt_fd(fd: int, backlog: int, spec: BindSpec | None = None) -> Listener:
    """Wrap an open socket fd (family and type detected); listen() if it does not yet."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise BindError(f"fd {fd} is not an open socket: {exc.strerror}") from None
    if sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise BindError(f"fd {fd} is not a stream socket")
    sock.set_inheritable(False)
    # A socket that already listens keeps the backlog its owner chose.
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        try:
            sock.listen(backlog)
        except OSError as exc:
            sock.detach()
            raise BindError(f"fd {fd}: cannot listen: {exc.strerror}") from None
    return Listener(sock, spec)


def create_listener(
    spec: BindSpec,
    *,
    backlog: int,
    reuse_port: bool = False,
    owner: tuple[int, int] | None = None,
) -> Listener:
    """Bind and listen on `spec`; BindError (naming the address) when that fails."""
    if spec.kind == "fd":
        return adopt_fd(spec.fd, backlog, spec)
    try:
        if spec.kind == "unix":
            return _create_unix(spec, backlog, owner)
        return _create_tcp(spec, backlog, reuse_port)
    except OSError as exc:
        raise BindError(f"cannot listen at {spec}: {exc.strerror or exc}") from None


# How long the kernel holds a connection that has sent nothing before handing it over anyway.
DEFER_ACCEPT_SECONDS = 5


def _create_tcp(spec: BindSpec, backlog: int, reuse_port: bool) -> Listener:
    family, addr = _resolve(spec)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Rebinding right after a restart must not fail on connections still in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            if not hasattr(socket, "SO_REUSEPORT"):
                raise BindError("reuse_port: SO_REUSEPORT is not available on this platform")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if hasattr(socket, "TCP_DEFER_ACCEPT"):
            # HTTP clients speak first: accept() returns once the request's bytes are there, so
            # a worker reads it at once instead of waiting, and a silent connect costs no worker.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_ACCEPT_SECONDS)
        sock.bind(addr)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return Listener(sock, spec)


def _resolve(spec: BindSpec) -> tuple[int, tuple[str, int]]:
    """Address literals bind as given; a name binds its first address (AI_PASSIVE)."""
    try:
        ip = ipaddress.ip_address(spec.host)
    except ValueError:
        pass
    else:
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        return family, (spec.host, spec.port)
    try:
        infos = socket.getaddrinfo(
            spec.host, spec.port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise BindError(f"cannot listen at {spec}: {exc.strerror}") from None
    family, _, _, _, sockaddr = infos[0]
    return family, (str(sockaddr[0]), int(sockaddr[1]))


def _create_unix(spec: BindSpec, backlog: int, owner: tuple[int, int] | None) -> Listener:
    abstract = spec.path.startswith("@")
    if not abstract:
        _remove_stale(spec.path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if abstract:
            sock.bind("\0" + spec.path[1:])
            sock.listen(backlog)
            return Listener(sock, spec)
        # With an explicit mode, create the file with no access at all and chmod it after, so
        # it is never reachable with laxer bits than asked for.
        old_umask = os.umask(0o777) if spec.mode is not None else None
        try:
            sock.bind(spec.path)
        finally:
            if old_umask is not None:
                os.umask(old_umask)
        if spec.mode is not None:
            os.chmod(spec.path, spec.mode)
        if owner is not None:
            os.chown(spec.path, *owner)
        st = os.stat(spec.path)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return Listener(sock, spec, owned_file=(st.st_dev, st.st_ino))


def _remove_stale(path: str) -> None:
    """Remove a socket file left by a dead server; refuse a live one or a non-socket."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise BindError(f"cannot listen at unix:{path}: the file exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # nobody listens: a leftover from a server that died
        return
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
        return
    finally:
        probe.close()
    raise BindError(f"cannot listen at unix:{path}: another server is listening there")


def open_listeners(
    binds: Sequence[str],
    environ: MutableMapping[str, str],
    pid: int,
    *,
    backlog: int,
    reuse_port: bool = False,
    owner: tuple[int, int] | None = None,
) -> list[Listener]:
    """The arbiter's listeners: systemd's sockets, else an upgrade's, else bound from `binds`.

    On error every socket opened so far is closed and BindError raised.
    """
    systemd = take_systemd_fds(environ, pid)
    if systemd:
        return _all_or_nothing(adopt_fd(fd, backlog) for fd in systemd)
    inherited = environ.pop(INHERIT_ENV, None)
    if inherited:
        return _all_or_nothing(_adopt_inherited(inherited, binds, backlog))
    specs = list(dict.fromkeys(parse_bind(b) for b in binds))  # a bind given twice binds once
    return _all_or_nothing(
        create_listener(s, backlog=backlog, reuse_port=reuse_port, owner=owner) for s in specs
    )


def _adopt_inherited(value: str, binds: Sequence[str], backlog: int) -> Iterable[Listener]:
    """Listeners from an upgrading master; Unix files we bound stay ours to remove at exit."""
    unix_paths = {s.path for s in map(parse_bind, binds) if s.kind == "unix"}
    for item in value.split(","):
        if not item.strip().isdigit():
            raise BindError(f"{INHERIT_ENV}={value!r}: expected comma-separated fd numbers")
        listener = adopt_fd(int(item), backlog)
        path = listener.unix_path()
        if path is not None and path in unix_paths:
            with contextlib.suppress(OSError):
                st = os.stat(path)
                listener.owned_file = (st.st_dev, st.st_ino)
        yield listener


def _all_or_nothing(listeners: Iterable[Listener]) -> list[Listener]:
    made: list[Listener] = []
    try:
        for listener in listeners:
            made.append(listener)
    except BaseException:
        close_listeners(made, unlink=True)
        raise
    return made


def close_listeners(listeners: Iterable[Listener], unlink: bool) -> None:
    """Close every listener; with `unlink`, remove the Unix socket files we created."""
    for listener in listeners:
        listener.close(unlink)
