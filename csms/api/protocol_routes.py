"""API routes of the OCPP breadth work (issue 16), for :func:`csms.api.app.create_app`."""

from __future__ import annotations

from fastapi import APIRouter

from csms.api import (
    log_uploads,
    ocpp_data,
    ocpp_raw,
    password_rotation,
    security_upgrade,
)

ROUTERS: tuple[APIRouter, ...] = (
    ocpp_raw.router,
    ocpp_data.router,
    log_uploads.router,
    password_rotation.router,
    security_upgrade.router,
)
