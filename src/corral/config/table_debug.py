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
        """,
    )
    reload_engine: str = setting(
        "auto",
        section="Debugging",
        parse=p.choice(("auto", "poll", "inotify")),
        cli=("--reload-engine",),
        metavar="STRING",
        help="""
        How `reload` watches files. corral polls the files' modification times once a
        second, which needs no extra package; `inotify` is accepted from gunicorn configs and
        also polls.
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
        uvicorn's `--reload-include` (`*.html`, `templates/*`); repeatable. Python files are
        always watched.
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
        Glob patterns of files `reload` ignores, as uvicorn's `--reload-exclude`
        (`*.pyc`, `.git/*`); repeatable.
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
