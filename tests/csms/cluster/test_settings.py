"""Node identity and lease settings."""

from __future__ import annotations

import os
import socket

import pytest

from csms.app import Csms
from csms.config import Settings


def test_a_node_is_named_after_its_own_process_unless_told() -> None:
    assert Settings().node_id == ""
    assert Csms(Settings()).settings.node_id == f"{socket.gethostname()}-{os.getpid()}"
    named = Settings.from_env({"CSMS_NODE_ID": "eu-west-1a", "CSMS_NODE_LEASE_SECONDS": "6"})
    assert (named.node_id, named.node_lease_seconds) == ("eu-west-1a", 6.0)
    assert Csms(named).settings.node_id == "eu-west-1a"


@pytest.mark.parametrize("bad", ["0", "-1", "soon"])
def test_a_lease_must_be_a_positive_number_of_seconds(bad: str) -> None:
    with pytest.raises(ValueError):
        Settings.from_env({"CSMS_NODE_LEASE_SECONDS": bad})
