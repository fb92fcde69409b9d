"""The operator API fixture (a running CSMS with API keys) for billing's API tests."""

from tests.csms.api.conftest import api  # noqa: F401  (fixture)
