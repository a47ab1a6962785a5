"""control_socket: gunicorn 27's control socket, served by the arbiter's own loop, no threads."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import stat
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass

from corral.arbiter.commands import CommandError, CommandFailed, ControlTarget, Pending, execute
from corral.ctl import protocol
from corral.logging import Logger

MAX_REQUEST = 64 * 1024  # a command is a few words; a longer message is refused unread
MAX_CLIENTS = 16  # connections at once; more wait in the listen backlog
BACKLOG = 16
IDLE_TIMEOUT = 300.0  # gunicorn's: an interactive session may sit this long between commands
IO_TIMEOUT = 10.0  # a message half sent, or a reply left unread, for this long: dropped
_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid
# SO_PEERGROUPS (Linux 4.13): the peer's supplementary groups; the socket module may lack the name.
_SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)
_MAX_GROUPS = 1024


@dataclass(frozen=True)
class Peer:
    """Who is at the other end of a connection, as the kernel saw it at connect()."""

    pid: int
    uid: int
    gid: int
    groups: frozenset[int] = frozenset()


def peer_of(sock: socket.socket) -> Peer:
    """The connecting process's credentials (SO_PEERCRED and SO_PEERGROUPS)."""
    pid, uid, gid = _CREDENTIALS.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size)
    )
    groups: frozenset[int] = frozenset()
    with contextlib.suppress(OSError):  # an older kernel: the primary group only
        raw = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERGROUPS, 4 * _MAX_GROUPS)
        groups = frozenset(struct.unpack(f"{len(raw) // 4}I", raw[: len(raw) // 4 * 4]))
    return Peer(pid, uid, gid, groups)


def allowed(peer: Peer, owner: int, group: int, mode: int) -> bool:
    """Whether `peer` may use a socket owned by uid `owner` and gid `group` with `mode`.

    Our own uid and root always; a member of the socket's group when the mode lets the group
    write (gunicorn documents 0660 for that); anyone when it lets others write. The mode is the
    setting, not the file's: a socket file whose mode was widened later admits no one more.
    """
    if peer.uid in (owner, 0):
        return True
    if mode & stat.S_IWOTH:
        return True
    return bool(mode & stat.S_IWGRP) and (peer.gid == group or group in peer.groups)


class _Client:
    """One connection: requests coming in, replies going out, at most one reply pending."""

    def __init__(self, sock: socket.socket, now: float) -> None:
        self.sock = sock
        self.peer: Peer | None = None
        self.refusal: str | None = None  # set: a request gets it as its answer, then a close
        self.decoder = protocol.Decoder(MAX_REQUEST)
        self.out = b""
        self.pending: tuple[object, Pending] | None = None
        self.closing = False  # close once `out` is sent
        self.deadline = now + IDLE_TIMEOUT

    def events(self) -> int:
        if self.out:
            return select.POLLOUT
        return 0 if self.pending is not None or self.closing else select.POLLIN

    @property
    def done(self) -> bool:
        return self.closing and not self.out


class ControlSocket:
    """The listening socket and its clients: non-blocking, one poll turn at a time.

    The arbiter must never wait on a client (its loop reaps and restarts workers) and must not
    run threads (it forks), so every socket here is non-blocking and watched by the arbiter's
    own poll (`watched`); `ready` does what poll found possible.
    """

    def __init__(self, sock: socket.socket, path: str, mode: int, target: ControlTarget) -> None:
        self.sock = sock
        self.path = path
        self.mode = mode
        self.target = target
        st = os.stat(path)
        self.owned = (st.st_dev, st.st_ino)  # only this file is ever unlinked
        self.owner, self.group = os.geteuid(), st.st_gid
        self.log: Logger | None = None
        self._clients: dict[int, _Client] = {}
        self._accept_after = 0.0

    def watched(self) -> dict[int, int]:
        fds = {fd: events for fd, client in self._clients.items() if (events := client.events())}
        if len(self._clients) < MAX_CLIENTS and time.monotonic() >= self._accept_after:
            fds[self.sock.fileno()] = select.POLLIN
        return fds

    def ready(self, events: Iterable[tuple[int, int]], now: float) -> None:
        """Accept, read or write what poll found ready; answer pending replies; drop the late."""
        for fd, _ in events:
            if fd == self.sock.fileno():
                self._accept(now)
            elif (client := self._clients.get(fd)) is not None:
                self._step(client, now)
        for fd, client in list(self._clients.items()):
            if client.pending is not None:
                self._finish_pending(client, now)
            if client.done or now > client.deadline:
                self._drop(fd)

    def holds_path(self) -> bool:
        """Whether the file at our path is still the socket we made."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.owned

    def close(self, *, unlink: bool) -> None:
        """Stop serving. With `unlink` (the arbiter, not a forked worker, which only closes its
        copies of the fds), replies already made get a last chance to go (shutdown's), and the
        socket file is removed if it is still ours (a new master's is not)."""
        for fd, client in list(self._clients.items()):
            if unlink:
                with contextlib.suppress(OSError):
                    client.sock.send(client.out)
            self._drop(fd)
        self.sock.close()
        if unlink and self.holds_path():
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def _accept(self, now: float) -> None:
        while len(self._clients) < MAX_CLIENTS:
            try:
                sock, _ = self.sock.accept()
            except (BlockingIOError, ConnectionAbortedError):
                return
            except OSError as exc:
                # EMFILE and the like: the listener would stay readable and spin the loop.
                self._accept_after = now + 1.0
                self._warn("control socket: cannot accept a connection (next try in 1 s): %s", exc)
                return
            sock.setblocking(False)
            client = self._clients[sock.fileno()] = _Client(sock, now)
            self._identify(client)

    def _identify(self, client: _Client) -> None:
        """Who connected, and why they may not use the socket (`refusal`) if they may not."""
        try:
            peer = client.peer = peer_of(client.sock)
        except OSError as exc:
            self._warn("control socket: cannot tell who connected (%s): refused", exc)
            client.refusal = "permission denied: the server cannot tell who you are"
            return
        if allowed(peer, self.owner, self.group, self.mode):
            return
        self._warn(
            "control socket: refused pid %s (uid %s): control_socket_mode is %s and the "
            "socket belongs to uid %s",
            peer.pid,
            peer.uid,
            oct(self.mode),
            self.owner,
        )
        client.refusal = f"permission denied: uid {peer.uid} may not use this control socket"

    def _step(self, client: _Client, now: float) -> None:
        try:
            if client.out:
                sent = client.sock.send(client.out)
                client.out = client.out[sent:]
                if client.out:
                    return
                if client.closing:
                    self._drop(client.sock.fileno())
                    return
                client.deadline = now + IDLE_TIMEOUT
            else:
                data = client.sock.recv(65536)
                if not data:
                    self._drop(client.sock.fileno())
                    return
                client.decoder.feed(data)
            self._serve(client, now)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno not in (errno.ECONNRESET, errno.EPIPE):
                self._debug("control socket: connection failed: %s", exc)
            self._drop(client.sock.fileno())

    def _serve(self, client: _Client, now: float) -> None:
        """Answer the whole requests received, in order, until one's reply must wait."""
        while not client.out and client.pending is None and not client.closing:
            try:
                message = client.decoder.next()
            except protocol.FrameError as exc:
                self._reply(client, protocol.error(0, str(exc)), now)
                client.closing = True
                return
            if message is None:
                if client.decoder.partial:
                    client.deadline = min(client.deadline, now + IO_TIMEOUT)
                return
            self._answer(client, message, now)
        self._flush(client, now)

    def _answer(self, client: _Client, message: protocol.Message, now: float) -> None:
        request_id = message.get("id", 0)
        if client.refusal is not None:
            self._reply(client, protocol.error(request_id, client.refusal), now)
            client.closing = True
            return
        command, args = message.get("command"), message.get("args")
        if isinstance(command, str) and command.split()[:1] not in ([], ["show"], ["help"]):
            # What may change the server is logged, with who asked for it.
            line = " ".join([command, *map(str, args if isinstance(args, list) else [])])
            peer = client.peer
            assert peer is not None
            self._info("Control socket: %r from pid %s (uid %s)", line, peer.pid, peer.uid)
        reply = self._run(request_id, command, args)
        if isinstance(reply, dict):
            self._reply(client, reply, now)
        else:
            client.pending = (request_id, reply)
            self._finish_pending(client, now)

    def _run(self, request_id: object, command: object, args: object) -> protocol.Message | Pending:
        if not isinstance(command, str) or not command.strip():
            return protocol.error(request_id, "Empty command")
        values = args if isinstance(args, list) else []
        try:
            result = execute(command, values, self.target)
        except CommandError as exc:  # gunicorn's text for a ValueError
            return protocol.error(request_id, f"Invalid argument: {exc}")
        except CommandFailed as exc:
            return protocol.error(request_id, str(exc))
        except Exception as exc:  # a bug here must cost a command, not the arbiter
            if self.log is not None:
                self.log.exception("control socket: command %r failed", command)
            return protocol.error(request_id, f"Command failed: {exc}")
        return protocol.ok(request_id, result) if isinstance(result, dict) else result

    def _finish_pending(self, client: _Client, now: float) -> None:
        assert client.pending is not None
        request_id, pending = client.pending
        try:
            data = pending.poll(now)
        except Exception as exc:
            if self.log is not None:
                self.log.exception("control socket: a pending reply failed")
            client.pending = None
            self._reply(client, protocol.error(request_id, f"Command failed: {exc}"), now)
            return
        if data is not None:
            client.pending = None
            self._reply(client, protocol.ok(request_id, data), now)
            self._serve(client, now)  # requests sent behind it

    def _reply(self, client: _Client, message: protocol.Message, now: float) -> None:
        client.out += protocol.encode(message)
        client.deadline = now + IO_TIMEOUT
        self._flush(client, now)

    def _flush(self, client: _Client, now: float) -> None:
        """Send at once what can go (a reply usually fits the socket buffer): no poll turn."""
        if not client.out:
            return
        try:
            sent = client.sock.send(client.out)
        except BlockingIOError:
            return
        except OSError:
            client.out, client.closing = b"", True  # dropped at the end of this turn
            return
        client.out = client.out[sent:]
        if not client.out:
            client.deadline = now + IDLE_TIMEOUT

    def _drop(self, fd: int) -> None:
        client = self._clients.pop(fd, None)
        if client is not None:
            client.sock.close()

    def _info(self, text: str, *args: object) -> None:
        if self.log is not None:
            self.log.info(text, *args)

    def _warn(self, text: str, *args: object) -> None:
        if self.log is not None:
            self.log.warning(text, *args)

    def _debug(self, text: str, *args: object) -> None:
        if self.log is not None:
            self.log.debug(text, *args)


def control_path(disabled: bool, path: str) -> str | None:
    """Where the socket goes: None when off (`control_socket_disable`, or an empty path); a
    relative path is taken from the current directory at start, as gunicorn does."""
    if disabled or not path:
        return None
    return os.path.abspath(path)


def listening_pid(path: str) -> int | None:
    """The pid of the process listening at `path`; None when none is (no file, or stale).

    A non-blocking connect, so a server too busy to accept (its backlog full) costs nothing:
    it answers -1, a live holder of unknown pid.
    """
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.setblocking(False)
        probe.connect(path)
        pid, _, _ = _CREDENTIALS.unpack(
            probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size)
        )
        return int(pid)
    except BlockingIOError:
        return -1
    except OSError:
        return None
    finally:
        probe.close()


def bind_socket(path: str, mode: int) -> socket.socket:
    """A listening, non-blocking Unix socket at `path` with `mode`, replacing a socket file there.

    The parent directory is made (0700) when missing, as gunicorn does for ~/.gunicorn. A file
    there that is not a socket is left alone: OSError. The file is created under a umask that
    gives it `mode` from the start, so it is never reachable with wider permissions.
    """
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(errno.EEXIST, "a file that is not a socket is there")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        previous = os.umask(0o777 & ~mode)
        try:
            sock.bind(path)
        finally:
            os.umask(previous)
        os.chmod(path, mode)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class ControlService:
    """The arbiter's side of control_socket: opens it, polls it, moves it on HUP, closes it.

    As in gunicorn, a socket that cannot be made is a warning, not a reason to stop serving;
    a new master (USR2) takes the path over from the old one, which then never unlinks it.
    """

    def __init__(self, path: str | None, mode: int, log: Logger, target: ControlTarget) -> None:
        self.path = path
        self.mode = mode
        self.log = log
        self.target = target
        self.server: ControlSocket | None = None

    def open(self, *, predecessor: int = 0) -> None:
        if self.path is None:
            self.log.debug("Control socket disabled")
            return
        holder = listening_pid(self.path)
        try:
            sock = bind_socket(self.path, self.mode)
            self.server = ControlSocket(sock, self.path, self.mode, self.target)
        except OSError as exc:
            self.log.warning(
                "Control socket: cannot listen at %s: %s", self.path, exc.strerror or exc
            )
            return
        self.server.log = self.log
        if holder is not None and holder != predecessor:
            self.log.warning(
                "Control socket %s was in use by pid %s; it now reaches this server",
                self.path,
                "unknown" if holder < 0 else holder,
            )
        self.log.info("Control socket listening at %s", self.path)

    def reconfigure(self, path: str | None, mode: int, log: Logger) -> None:
        """HUP: the new logger; a new path or mode re-creates the socket."""
        self.log = log
        if self.server is not None:
            self.server.log = log
        if (path, mode) != (self.path, self.mode):
            self.close(unlink=True)
            self.path, self.mode = path, mode
            self.open()

    def reclaim(self) -> None:
        """After a failed upgrade: the new master took the path and removed it on exit."""
        if self.server is not None and not self.server.holds_path():
            self.close(unlink=False)
            self.open()

    def watched(self) -> dict[int, int]:
        return {} if self.server is None else self.server.watched()

    def ready(self, events: Iterable[tuple[int, int]]) -> None:
        if self.server is not None:
            self.server.ready(events, time.monotonic())

    def close(self, *, unlink: bool) -> None:
        """Stop serving; in a forked worker (`unlink` False) only the fds are closed."""
        if self.server is not None:
            self.server.close(unlink=unlink)
            self.server = None
