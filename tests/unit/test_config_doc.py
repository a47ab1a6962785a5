"""docs/settings.md is generated from the table, and the check notices when it is stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from corral.config import settings_table

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_settings_doc.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_committed_doc_is_current() -> None:
    result = run("--check")
    assert result.returncode == 0, result.stderr


def test_stale_doc_is_detected(tmp_path: Path) -> None:
    doc = tmp_path / "settings.md"
    assert run("--output", str(doc)).returncode == 0
    assert run("--check", "--output", str(doc)).returncode == 0
    doc.write_text(doc.read_text().replace("`CORRAL_WORKERS`", "`CORRAL_WORKER`"))
    result = run("--check", "--output", str(doc))
    assert result.returncode == 1
    assert "stale" in result.stderr
    assert run("--check", "--output", str(tmp_path / "missing.md")).returncode == 1


def test_doc_covers_every_setting_and_the_precedence() -> None:
    text = (ROOT / "docs" / "settings.md").read_text()
    for name, row in settings_table().items():
        assert f"### `{name}`" in text
        assert f"`{row.env}`" in text
    assert "defaults" in text.lower() and "GUNICORN_CMD_ARGS" in text
    assert "- `keepalive`: `75` rather than `2`:" in text
