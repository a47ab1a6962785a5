"""Process identity: resolve `user`/`group` settings and drop privileges in a worker."""

from __future__ import annotations

import grp
import os
import pwd


class PrivilegeError(Exception):
    """A user or group setting names nobody, or the switch to it failed."""


def resolve_uid(user: int | str | None) -> int | None:
    """A uid from a uid, a numeric string or a user name; None when unset."""
    if user is None or user == "":
        return None
    if isinstance(user, int):
        return user
    if user.isascii() and user.isdigit():
        return int(user)
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise PrivilegeError(f"user {user!r} does not exist") from None


def resolve_gid(group: int | str | None) -> int | None:
    """A gid from a gid, a numeric string or a group name; None when unset."""
    if group is None or group == "":
        return None
    if isinstance(group, int):
        return group
    if group.isascii() and group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise PrivilegeError(f"group {group!r} does not exist") from None


def target_ids(user: int | str | None, group: int | str | None) -> tuple[int, int] | None:
    """The (uid, gid) workers run as, or None when that is simply who we already are."""
    uid, gid = resolve_uid(user), resolve_gid(group)
    if uid is None and gid is None:
        return None
    if uid is None:
        uid = os.geteuid()
    if gid is None:
        gid = _primary_gid(uid)
    if (uid, gid) == (os.geteuid(), os.getegid()):
        return None
    return uid, gid


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def _primary_gid(uid: int) -> int:
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return os.getegid()


def drop_privileges(uid: int, gid: int, *, initgroups: bool = False) -> None:
    """Become `uid`:`gid` for good: groups first, while we still may change them.

    Supplementary groups become the user's own with `initgroups`, else just `gid`: a worker
    must not keep root's supplementary groups after dropping root.
    """
    try:
        if os.geteuid() == 0:
            name = _user_name(uid) if initgroups else None
            if name is not None:
                os.initgroups(name, gid)
            else:
                os.setgroups([gid])
        os.setgid(gid)
        os.setuid(uid)
    except OSError as exc:
        raise PrivilegeError(f"cannot switch to uid {uid}, gid {gid}: {exc.strerror}") from None
