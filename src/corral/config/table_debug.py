"""Settings table, part 6: debugging (reload, spew, check_config, print_config)."""

# ruff: noqa: RUF009  (setting() returns a dataclasses.Field, the documented way to attach
# metadata; it is not a default computed once and shared.)

from __future__ import annotations

from dataclasses import dataclass

from corral.config import parsers as p
from corral.config.spec import setting


@dataclass
class DebugTable:
    """Debugging settings."""

    reload: bool = setting(
        False,
        section="Debugging",
        parse=p.BOOL,
        cli=("--reload",),
        mode="true",
        help="""
        Restart workers when the application's code changes. For development only.

        A file saved with a syntax error (or any error the app's code raises while importing)
        does not stop the server: the worker logs the traceback, answers 500, and reloads on
        the next save. A wrong APP still stops it.
        """,
    )
    reload_engine: str = setting(
        "auto",
        section="Debugging",
        parse=p.choice(("auto", "poll", "inotify")),
        cli=("--reload-engine",),
        metavar="STRING",
        help="""
        How `reload` watches files. `auto` uses inotify through watchfiles when it is
        installed (`pip install 'corral[reload]'`), else polls modification times once a
        second; `inotify` wants watchfiles and polls, with a warning, without it; `poll`
        always polls.
        """,
    )
    reload_extra_files: list[str] = setting(
        [],
        section="Debugging",
        parse=p.STRING_LIST,
        cli=("--reload-extra-file",),
        metavar="FILES",
        mode="append",
        help="""
        More files for `reload` to watch (templates, configuration); repeatable.
        """,
    )
    reload_include: list[str] = setting(
        [],
        section="Debugging",
        parse=p.STRING_LIST,
        cli=("--reload-include",),
        metavar="PATTERN",
        mode="append",
        corral_only=True,
        help="""
        Glob patterns of more files for `reload` to watch under the working directory, as
        uvicorn's `--reload-include`; repeatable. The source files of loaded modules are
        always watched. Patterns match from the right, as uvicorn's (`*.html` at any depth,
        `templates/*`); hidden files and directories, bytecode and editor swap files never
        match.
        """,
    )
    reload_exclude: list[str] = setting(
        [],
        section="Debugging",
        parse=p.STRING_LIST,
        cli=("--reload-exclude",),
        metavar="PATTERN",
        mode="append",
        corral_only=True,
        help="""
        Glob patterns of files `reload` ignores, as uvicorn's `--reload-exclude`; repeatable.
        Matched against the path below the working directory and each directory it is in
        (`drafts`, `.git`, `*.tmp`); applies to module files too.
        """,
    )
    spew: bool = setting(
        False,
        section="Debugging",
        parse=p.BOOL,
        cli=("--spew",),
        mode="true",
        help="""
        Trace every line the server executes. A last resort for debugging.
        """,
    )
    check_config: bool = setting(
        False,
        section="Debugging",
        parse=p.BOOL,
        cli=("--check-config",),
        mode="true",
        help="""
        Load the configuration and import the application, then exit.

        Exit status 0 when both succeed; otherwise the error is printed and the status is
        non-zero.
        """,
    )
    print_config: bool = setting(
        False,
        section="Debugging",
        parse=p.BOOL,
        cli=("--print-config",),
        mode="true",
        help="""
        Print every setting with its value and where it came from, then exit.

        When an application is given it is also imported, as with `check_config`.
        """,
    )
