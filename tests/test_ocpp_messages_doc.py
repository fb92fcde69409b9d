"""docs/ocpp-messages.md names every OCPP action of both versions, in the right table."""

from __future__ import annotations

import re
from pathlib import Path

from csms.events import Protocol
from csms.ocpp_catalog import CHARGER_INITIATED, CSMS_INITIATED

DOC = Path(__file__).resolve().parent.parent / "docs" / "ocpp-messages.md"


def _table_actions(section: str) -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in body.splitlines():
        if line.startswith("| ") and not line.startswith("| Message") and "---" not in line:
            names |= set(re.findall(r"[A-Z][A-Za-z0-9]+", line.split("|")[1]))
    return names


def test_every_charger_initiated_action_is_documented() -> None:
    documented = _table_actions("Sent by the charger")
    for protocol in Protocol:
        missing = CHARGER_INITIATED[protocol] - documented
        assert not missing, (protocol, missing)


def test_every_csms_initiated_action_is_documented() -> None:
    documented = _table_actions("Sent by the CSMS")
    for protocol in Protocol:
        missing = CSMS_INITIATED[protocol] - documented
        assert not missing, (protocol, missing)
