"""The documentation: the MkDocs site builds with warnings as errors and says what the code does."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from csms.api.reference import offline_app, to_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_the_docs_site_builds_strictly(tmp_path: Path) -> None:
    # --strict: a broken link or anchor, or a page left out of the nav, fails the build.
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    assert (tmp_path / "site" / "api" / "index.html").is_file()
    assert (tmp_path / "site" / "sites" / "index.html").is_file()


def test_the_api_reference_is_the_running_codes_openapi_document() -> None:
    current = to_markdown(offline_app().openapi())
    committed = (ROOT / "docs" / "api.md").read_text()
    assert committed == current, "regenerate: python -m csms.api.reference > docs/api.md"
    for path in offline_app().openapi()["paths"]:
        assert f" {path}`" in committed


def test_the_readme_is_short_and_its_links_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 150
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert links
    for link in links:
        if not link.startswith("http"):
            assert (ROOT / link).exists(), link
    # The two commands: the demo, and exactly what CI runs.
    assert ".venv/bin/pip install -e . && .venv/bin/csms demo" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert (
        "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/pytest" in ci
    )
    assert (
        "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/pytest"
        in readme
    )


def test_every_setting_is_documented() -> None:
    from csms.config import ENV_NAMES

    docs = "\n".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    missing = [
        name
        for name in ENV_NAMES.values()
        if name not in docs and not _documented_as_family(name, docs)
    ]
    assert not missing, f"settings not in docs/: {missing}"


def _documented_as_family(name: str, docs: str) -> bool:
    """`CSMS_KAFKA_TOPIC_STATION_STATUS` / `_CHARGING_SESSIONS` style rows count."""
    head, _, tail = name.rpartition("_")
    while head:
        if f"`{head}_" in docs and f"_{tail}`" in docs:
            return True
        head, _, rest = head.rpartition("_")
        tail = f"{rest}_{tail}"
    return False
