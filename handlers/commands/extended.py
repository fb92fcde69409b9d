"""Operator commands added for OCPP breadth (issue 16): certificates, reports, transaction status.

Models and both versions' translations in one place; the specs are listed in
:mod:`handlers.commands`. Certificate types use 2.0.1's names; 1.6 (security
extension) calls the CSMS root ``CentralSystemRootCertificate`` and knows only
that one and the manufacturer root.
"""

from __future__ import annotations

from typing import Any, Literal

from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from pydantic import Field

from handlers.commands.models import Command
from handlers.commands.v16 import NotInThisVersion

CertificateType = Literal[
    "CSMSRootCertificate", "ManufacturerRootCertificate", "V2GRootCertificate", "MORootCertificate"
]
_V16_TYPE = {
    "CSMSRootCertificate": "CentralSystemRootCertificate",
    "ManufacturerRootCertificate": "ManufacturerRootCertificate",
}


def _v16_type(certificate_type: str) -> str:
    try:
        return _V16_TYPE[certificate_type]
    except KeyError:
        raise NotInThisVersion(f"1.6 chargers keep no {certificate_type}") from None


class InstallCertificate(Command):
    certificate_type: CertificateType
    certificate: str = Field(min_length=1, max_length=5500, description="PEM")


class CertificateHashData(Command):
    hash_algorithm: Literal["SHA256", "SHA384", "SHA512"] = "SHA256"
    issuer_name_hash: str = Field(min_length=1, max_length=128)
    issuer_key_hash: str = Field(min_length=1, max_length=128)
    serial_number: str = Field(min_length=1, max_length=40)


class DeleteCertificate(Command):
    certificate_hash_data: CertificateHashData


class GetInstalledCertificateIds(Command):
    certificate_types: list[CertificateType | Literal["V2GCertificateChain"]] | None = Field(
        default=None, description="1.6: exactly one; 2.0.1: none means all"
    )


class GetTransactionStatus(Command):
    transaction_id: str | None = Field(default=None, max_length=36)


class GetBaseReport(Command):
    report_base: Literal["ConfigurationInventory", "FullInventory", "SummaryInventory"] = (
        "FullInventory"
    )


def _hash_data(cmd: DeleteCertificate) -> dict[str, Any]:
    return cmd.certificate_hash_data.model_dump()


def install_certificate_v16(cmd: InstallCertificate, request_id: int) -> Any:
    return call16.InstallCertificate(
        certificate_type=_v16_type(cmd.certificate_type), certificate=cmd.certificate
    )


def install_certificate_v201(cmd: InstallCertificate, request_id: int) -> Any:
    return call201.InstallCertificate(
        certificate_type=cmd.certificate_type, certificate=cmd.certificate
    )


def delete_certificate_v16(cmd: DeleteCertificate, request_id: int) -> Any:
    return call16.DeleteCertificate(certificate_hash_data=_hash_data(cmd))


def delete_certificate_v201(cmd: DeleteCertificate, request_id: int) -> Any:
    return call201.DeleteCertificate(certificate_hash_data=_hash_data(cmd))


def installed_ids_v16(cmd: GetInstalledCertificateIds, request_id: int) -> Any:
    if not cmd.certificate_types or len(cmd.certificate_types) != 1:
        raise NotInThisVersion("1.6 GetInstalledCertificateIds asks for exactly one type")
    return call16.GetInstalledCertificateIds(certificate_type=_v16_type(cmd.certificate_types[0]))


def installed_ids_v201(cmd: GetInstalledCertificateIds, request_id: int) -> Any:
    return call201.GetInstalledCertificateIds(certificate_type=cmd.certificate_types or None)


def get_transaction_status(cmd: GetTransactionStatus, request_id: int) -> Any:
    return call201.GetTransactionStatus(transaction_id=cmd.transaction_id)


def get_base_report(cmd: GetBaseReport, request_id: int) -> Any:
    return call201.GetBaseReport(request_id=request_id, report_base=cmd.report_base)
