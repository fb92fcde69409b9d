"""Refresh the README's dashboard screenshots: the browser tests, saving to docs/screenshots.

    .venv/bin/python -m tests.csms.dashboard.update_screenshots

The tests save a PNG of each page they visit (see conftest.py); here they save
them to ``docs/screenshots/`` instead of pytest's temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
TARGET = ROOT / "docs" / "screenshots"


def main() -> int:
    TARGET.mkdir(parents=True, exist_ok=True)
    for old in TARGET.glob("*.png"):
        old.unlink()
    env = dict(os.environ, CSMS_DASHBOARD_ARTIFACTS=str(TARGET))
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/csms/dashboard",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, check=False)
    print(f"screenshots in {TARGET}: {sorted(p.name for p in TARGET.glob('*.png'))}")
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
