"""Failpoints are inert unless armed, crash once, and poison only the marked messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared import failpoints


def _run(code: str, directory: Path | None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"}
    if directory is not None:
        env["KEFU_FAILPOINTS_DIR"] = str(directory)
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=30,
    )


CRASH = "from shared import failpoints; failpoints.crash('relay-after-confirm.intake'); print('on')"


def test_crash_is_inert_without_the_directory(tmp_path: Path) -> None:
    (tmp_path / "relay-after-confirm.intake").touch()
    done = _run(CRASH, None)
    assert done.returncode == 0 and done.stdout.strip() == "on"


def test_an_armed_crash_kills_the_process_once(tmp_path: Path) -> None:
    assert _run(CRASH, tmp_path).returncode == 0  # not armed
    (tmp_path / "relay-after-confirm.intake").touch()
    first = _run(CRASH, tmp_path)
    assert first.returncode == failpoints.CRASH_EXIT_CODE and first.stdout == ""
    # Disarmed by firing: the process that replaces it goes on.
    assert not (tmp_path / "relay-after-confirm.intake").exists()
    assert _run(CRASH, tmp_path).returncode == 0


def test_poison_matches_only_messages_holding_the_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(failpoints, "_DIRECTORY", str(tmp_path))
    assert not failpoints.poisons("poison.need_analyzer", b'{"text": "POISON-1"}')
    (tmp_path / "poison.need_analyzer").write_text("POISON-1\n")
    assert failpoints.poisons("poison.need_analyzer", b'{"text": "x POISON-1"}')
    assert not failpoints.poisons("poison.need_analyzer", b'{"text": "POISON-2"}')
    assert not failpoints.poisons("poison.feedback", b'{"text": "POISON-1"}')
    (tmp_path / "poison.need_analyzer").write_text("")
    assert not failpoints.poisons("poison.need_analyzer", b"anything")
