"""Get15118EVCertificate (M02/C07): hand the EV's EXI request to a contract-certificate provider.

The EV asks, through the charger, for a contract certificate from its mobility
operator's PKI; the CSMS only relays the base64 EXI request and response.
``CSMS_CERTIFICATES_CONTRACT_PROVIDER`` chooses the provider:

* an ``http(s)://`` URL: the request is POSTed as JSON ``{"chargePointId",
  "iso15118SchemaVersion", "action", "exiRequest"}`` and the answer must be
  ``{"status": "Accepted" | "Failed", "exiResponse": "<base64>"}``;
* ``local-test``: an in-process provider for labs and tests that accepts every
  request and answers a deterministic, clearly fake EXI response (it has no
  PKI: real EVs will not accept it);
* unset: no provider, the charger is answered Failed.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import httpx

LOCAL_TEST = "local-test"
MAX_EXI_RESPONSE = 5600  # exiResponse's maxLength in the 2.0.1 schema


@dataclass(frozen=True, slots=True)
class ContractOutcome:
    status: str  # Accepted or Failed (Iso15118EVCertificateStatusEnumType)
    exi_response: str = ""
    reason: str | None = None


def local_test_response(exi_request: str) -> str:
    digest = hashlib.sha256(exi_request.encode()).hexdigest()
    return base64.b64encode(f"TEST-CONTRACT-CERTIFICATE:{digest}".encode()).decode()


async def request_contract_certificate(
    provider: str | None,
    charge_point_id: str,
    schema_version: str,
    action: str,
    exi_request: str,
    timeout_s: float,
) -> ContractOutcome:
    if provider is None:
        return ContractOutcome("Failed", reason="no contract-certificate provider is configured")
    if provider == LOCAL_TEST:
        return ContractOutcome("Accepted", local_test_response(exi_request))
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            answer = await client.post(
                provider,
                json={
                    "chargePointId": charge_point_id,
                    "iso15118SchemaVersion": schema_version,
                    "action": action,
                    "exiRequest": exi_request,
                },
            )
        answer.raise_for_status()
        body = answer.json()
        status, exi_response = str(body["status"]), str(body.get("exiResponse") or "")
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
        return ContractOutcome("Failed", reason=f"contract-certificate provider: {error!r}")
    if status not in ("Accepted", "Failed") or len(exi_response) > MAX_EXI_RESPONSE:
        return ContractOutcome("Failed", reason="contract-certificate provider: unusable answer")
    return ContractOutcome(status, exi_response)
