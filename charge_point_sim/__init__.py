"""OCPP 1.6J / 2.0.1 charge-point simulator used by CI, demos and load tests.

The simulator is a real OCPP client (built on the ``ocpp`` library), so every
frame the CSMS sees went through the same schema validation and routing a real
charger's firmware would exercise. The importable API is re-exported here so
tests can write ``from charge_point_sim import Fleet, FleetConfig``.
"""

from charge_point_sim.charger import ChargerConfig
from charge_point_sim.clock import SimClock
from charge_point_sim.commands import SimCharger
from charge_point_sim.ev import EVSpec, EVState
from charge_point_sim.fleet import Fleet, FleetConfig, run_fleet
from charge_point_sim.scenario import Arrival, FaultSpec, load_schedule, parse_fault
from charge_point_sim.stats import Stats, Summary
from charge_point_sim.v16 import V16Charger
from charge_point_sim.v201 import V201Charger

__all__ = [
    "Arrival",
    "ChargerConfig",
    "EVSpec",
    "EVState",
    "FaultSpec",
    "Fleet",
    "FleetConfig",
    "SimCharger",
    "SimClock",
    "Stats",
    "Summary",
    "V16Charger",
    "V201Charger",
    "load_schedule",
    "parse_fault",
    "run_fleet",
]
