"""The image and the wheel carry every package the CSMS imports."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _packages() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    return [pattern.rstrip("*") for pattern in include]


def test_every_installed_package_exists() -> None:
    for package in _packages():
        assert (ROOT / package / "__init__.py").is_file(), package


def test_the_dockerfile_copies_every_package() -> None:
    copied = {
        line.split()[1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and not line.startswith("COPY --from")
    }
    missing = set(_packages()) - copied
    assert not missing, f"Dockerfile does not COPY {sorted(missing)}: the image would lack them"
