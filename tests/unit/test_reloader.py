"""The reloader's choices: which files count (include/exclude), engines, failing files, mtimes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from corral.reloader import Reloader, Watched, choose_engine, failing_files


def touch(path: Path, mtime: float | None = None) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return str(path)


def test_include_patterns_match_from_the_right_under_root(tmp_path: Path) -> None:
    page = touch(tmp_path / "app" / "templates" / "page.html")
    style = touch(tmp_path / "static" / "site.css")
    watched = Watched(str(tmp_path), include=["*.html", "static/*"])
    assert watched.wanted([page, style]) == [page, style]
    assert {page, style} <= watched.files()
    assert str(tmp_path / "app" / "templates") in watched.directories()


def test_exclude_patterns_and_defaults(tmp_path: Path) -> None:
    kept = touch(tmp_path / "templates" / "page.html")
    draft = touch(tmp_path / "templates" / "drafts" / "draft.html")  # an excluded directory
    hidden = touch(tmp_path / ".git" / "info.html")  # uvicorn's default: hidden directories
    swap = touch(tmp_path / "templates" / ".page.html.swp")
    outside = touch(tmp_path.parent / f"{tmp_path.name}-other" / "page.html")  # not under root
    watched = Watched(str(tmp_path), include=["*.html", "*.swp"], exclude=["drafts"])
    assert watched.wanted([kept, draft, hidden, swap, outside]) == [kept]
    assert watched.files() & {kept, draft, hidden, swap, outside} == {kept}
    assert str(tmp_path / ".git") not in watched.directories()


def test_modules_and_added_files_count_unless_excluded(tmp_path: Path) -> None:
    broken = touch(tmp_path / "broken.py")
    watched = Watched(str(tmp_path))
    watched.added.add(broken)
    assert watched.wanted([broken, __file__]) == [broken, __file__]  # a loaded module's file
    assert Watched(str(tmp_path), exclude=["broken.py"]).wanted([broken]) == []


def test_extra_file_globs_expand_on_every_pass(tmp_path: Path) -> None:
    watched = Watched(str(tmp_path), extra_files=[str(tmp_path / "conf" / "*.toml")])
    assert not {p for p in watched.files() if p.endswith(".toml")}
    new = touch(tmp_path / "conf" / "app.toml")
    assert new in watched.files()


def test_choose_engine() -> None:
    assert choose_engine("poll") == ("poll", None)
    assert choose_engine("auto") == ("inotify", None)  # watchfiles is in the test extra
    assert choose_engine("inotify") == ("inotify", None)
    with pytest.raises(ValueError, match="reload_engine"):
        choose_engine("kqueue")


def test_failing_files_name_the_file_with_the_syntax_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n")
    with pytest.raises(SyntaxError) as caught:
        compile(bad.read_text(), str(bad), "exec")
    # The file with the error, then the traceback's (here, this test's).
    assert failing_files(caught.value) == [str(bad), __file__]


def test_a_file_saved_while_the_worker_loaded_counts_as_changed(tmp_path: Path) -> None:
    since = time.time() - 10
    saved_during_load = touch(tmp_path / "during.py", since + 5)
    saved_before = touch(tmp_path / "before.py", since - 5)
    from_the_future = touch(tmp_path / "future.py", time.time() + 3600)  # a skewed clock
    watched = Watched(str(tmp_path), extra_files=[saved_during_load, saved_before, from_the_future])
    reloader = Reloader(watched, lambda path: None, since=since)
    # This test file, just written, is a loaded module saved after `since` too.
    pending = set(reloader.pending) & {saved_during_load, saved_before, from_the_future}
    assert pending == {saved_during_load}
    assert reloader.check() == []  # from now on, only new changes
