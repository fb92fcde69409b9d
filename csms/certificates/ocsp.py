"""GetCertificateStatus (M06): ask the certificate's OCSP responder, pass its answer on.

A 2.0.1 charger that cannot reach the internet itself (ISO 15118 Plug & Charge)
sends the OCSP request data of a certificate; the CSMS builds the OCSP request,
POSTs it to the responder URL the charger named (RFC 6960 over HTTP), checks the
answer parses as a successful OCSP response, and returns it base64-encoded.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

MAX_RESULT_LENGTH = 5500  # ocspResult's maxLength in the 2.0.1 schema
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}


@dataclass(frozen=True, slots=True)
class OcspOutcome:
    status: str  # Accepted or Failed (GetCertificateStatusEnumType)
    ocsp_result: str | None = None  # base64 DER OCSPResponse
    reason: str | None = None


def build_request(data: dict[str, Any]) -> bytes:
    """DER OCSP request from OCPP OCSPRequestDataType (snake_case keys)."""
    algorithm = _HASHES[str(data["hash_algorithm"])]()
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(
            bytes.fromhex(str(data["issuer_name_hash"])),
            bytes.fromhex(str(data["issuer_key_hash"])),
            int(str(data["serial_number"]), 16),
            algorithm,
        )
        .build()
    )
    return request.public_bytes(serialization.Encoding.DER)


async def certificate_status(data: dict[str, Any], timeout_s: float) -> OcspOutcome:
    try:
        request = build_request(data)
    except (KeyError, ValueError) as error:
        return OcspOutcome("Failed", reason=f"unusable OCSP request data: {error}")
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            answer = await client.post(
                str(data["responder_url"]),
                content=request,
                headers={"Content-Type": "application/ocsp-request"},
            )
        answer.raise_for_status()
        response = ocsp.load_der_ocsp_response(answer.content)
    except (httpx.HTTPError, ValueError) as error:
        return OcspOutcome("Failed", reason=f"OCSP responder: {error}")
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return OcspOutcome("Failed", reason=f"OCSP responder: {response.response_status.name}")
    encoded = base64.b64encode(answer.content).decode()
    if len(encoded) > MAX_RESULT_LENGTH:
        return OcspOutcome("Failed", reason=f"OCSP response of {len(encoded)} characters")
    return OcspOutcome("Accepted", encoded)
