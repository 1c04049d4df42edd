"""The generated environment page matches the env docstring it comes from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_environment_page_is_current():
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_environment_page_has_every_section():
    page = (ROOT / "docs" / "environment.md").read_text(encoding="utf-8")
    for section in ("Description", "Action Space", "Action Language", "Observation Space", "Rewards",
                    "Starting State", "Episode End", "Info", "Arguments", "Version History"):
        assert f"## {section}" in page
