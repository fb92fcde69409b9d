"""The failsafe share: every charger of a site falling back at once stays under every limit."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from charge_point_sim.profiles import Profile, Purpose
from smart_charging.failsafe import (
    charger_lines,
    connector_cap,
    failsafe_shares,
    node_limits,
    node_paths,
)
from smart_charging.model import ChargerPlace, GroupConfig, SiteConfig, SiteTree
from tests.csms.api.conftest import Api
from tests.smart_charging.support import SITE_LIMIT, start_site_fleet, watch_profiles
from tests.waiting import eventually

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


def site(**fields: object) -> SiteConfig:
    return SiteConfig(site_id="depot", **fields)  # type: ignore[arg-type]


def test_the_site_limit_is_divided_by_its_chargers() -> None:
    tree = SiteTree(
        site(phase_limit_a=100.0),
        chargers=tuple(ChargerPlace(f"CP{i}", max_current_a=32.0) for i in range(4)),
    )
    assert failsafe_shares(tree, NOW) == {f"CP{i}": 25.0 for i in range(4)}


def test_below_the_minimum_current_some_chargers_get_the_minimum_and_the_rest_nothing() -> None:
    # 32 A over 8 chargers is 4 A each, which no EV charges at: five get 6 A (30 A), three 0 A;
    # the higher-priority charger is served first.
    chargers = [ChargerPlace(f"CP{i}", max_current_a=32.0) for i in range(8)]
    chargers[7] = ChargerPlace("CP7", max_current_a=32.0, priority=5)
    shares = failsafe_shares(SiteTree(site(phase_limit_a=32.0), chargers=tuple(chargers)), NOW)
    assert sorted(shares.values()) == [0.0] * 3 + [6.0] * 5
    assert shares["CP7"] == 6.0
    assert [cp for cp, a in shares.items() if a == 0.0] == ["CP4", "CP5", "CP6"]


def test_a_power_limit_counts_the_lines_each_charger_loads() -> None:
    # 23 kW = 100 A summed over lines; one 3-phase (3 lines) and one 1-phase (1 line): 25 A each.
    tree = SiteTree(
        site(power_limit_kw=23.0),
        chargers=(ChargerPlace("TRI", max_current_a=32.0), ChargerPlace("MONO", phases=1)),
    )
    assert failsafe_shares(tree, NOW) == {"TRI": 25.0, "MONO": 25.0}


def test_a_group_limit_and_the_hardware_maximum_cap_the_share() -> None:
    tree = SiteTree(
        site(phase_limit_a=200.0),
        groups=(GroupConfig("feeder", phase_limit_a=20.0),),
        chargers=(
            ChargerPlace("A", group_id="feeder"),
            ChargerPlace("B", group_id="feeder"),
            ChargerPlace("C", max_current_a=16.0),
        ),
    )
    assert failsafe_shares(tree, NOW) == {"A": 10.0, "B": 10.0, "C": 16.0}


def test_a_two_connector_charger_holds_what_it_can_draw_and_no_more() -> None:
    # 100 A per line. DUO has two connectors but draws at most 32 A in all: its
    # connectors hold 16 A each (32 A), and the 68 A left go to the single-connector
    # chargers (32 A each, their maximum), not 25 A per connector for everyone.
    tree = SiteTree(
        site(phase_limit_a=100.0),
        chargers=(
            ChargerPlace("DUO", max_current_a=32.0, connectors=2),
            ChargerPlace("A", max_current_a=32.0),
            ChargerPlace("B", max_current_a=32.0),
        ),
    )
    assert failsafe_shares(tree, NOW) == {"DUO": 16.0, "A": 32.0, "B": 32.0}


def test_two_connectors_that_can_both_draw_hold_a_share_each() -> None:
    # 64 A per line, DUO can draw 2 x 32 A: every connector gets the same 16 A.
    tree = SiteTree(
        site(phase_limit_a=64.0),
        chargers=(
            ChargerPlace("DUO", max_current_a=64.0, connectors=2),
            ChargerPlace("A", max_current_a=32.0),
            ChargerPlace("B", max_current_a=32.0),
        ),
    )
    assert failsafe_shares(tree, NOW) == {"DUO": 16.0, "A": 16.0, "B": 16.0}


def test_what_a_capped_charger_cannot_use_goes_to_the_others() -> None:
    tree = SiteTree(
        site(phase_limit_a=60.0),
        chargers=(
            ChargerPlace("SMALL", max_current_a=10.0),
            ChargerPlace("A", max_current_a=32.0),
            ChargerPlace("B", max_current_a=32.0),
        ),
    )
    assert failsafe_shares(tree, NOW) == {"SMALL": 10.0, "A": 25.0, "B": 25.0}


def test_a_fixed_fallback_is_the_operators_choice() -> None:
    tree = SiteTree(
        site(phase_limit_a=100.0, fallback_current_a=0.0),
        chargers=(ChargerPlace("A"), ChargerPlace("B")),
    )
    assert failsafe_shares(tree, NOW) == {"A": 0.0, "B": 0.0}


def test_a_site_without_limits_falls_back_to_the_hardware_maximum() -> None:
    tree = SiteTree(site(), chargers=(ChargerPlace("A", max_current_a=16.0),))
    assert failsafe_shares(tree, NOW) == {"A": 16.0}


limits = st.one_of(st.none(), st.floats(min_value=0, max_value=400, allow_nan=False))


@st.composite
def trees(draw: st.DrawFn) -> SiteTree:
    group_ids = draw(st.lists(st.sampled_from("abcde"), unique=True, max_size=4))
    groups = tuple(
        GroupConfig(
            g,
            parent_id=draw(st.one_of(st.none(), st.sampled_from(group_ids[:i] or [None]))),
            phase_limit_a=draw(limits),
            power_limit_kw=draw(st.one_of(st.none(), st.floats(0, 200, allow_nan=False))),
        )
        for i, g in enumerate(group_ids)
    )
    chargers = tuple(
        ChargerPlace(
            f"CP{i:02d}",
            group_id=draw(st.one_of(st.none(), st.sampled_from(group_ids or ["none"]))),
            max_current_a=draw(st.floats(0, 80, allow_nan=False)),
            phases=draw(st.sampled_from([1, 3])),
            priority=draw(st.integers(-2, 2)),
            connectors=draw(st.integers(1, 3)),
        )
        for i in range(draw(st.integers(0, 30)))
    )
    return SiteTree(
        SiteConfig(
            "site",
            phase_limit_a=draw(limits),
            power_limit_kw=draw(st.one_of(st.none(), st.floats(0, 300, allow_nan=False))),
            min_current_a=draw(st.sampled_from([0.0, 6.0, 8.0])),
        ),
        groups=groups,
        chargers=chargers,
    )


@settings(max_examples=400, deadline=None)
@given(trees())
def test_every_charger_falling_back_at_once_stays_under_every_limit(tree: SiteTree) -> None:
    shares = failsafe_shares(tree, NOW)
    assert set(shares) == {c.charge_point_id for c in tree.chargers}
    paths, node_limit = node_paths(tree), node_limits(tree, NOW)
    drawn = {node: [0.0, 0.0, 0.0, 0.0] for node in node_limit}
    for place in tree.chargers:
        share = shares[place.charge_point_id]
        drawing = share * place.connectors  # every connector of it drawing the share
        assert 0.0 <= drawing <= place.max_current_a + 1e-9
        assert share == 0.0 or share >= tree.site.min_current_a - 1e-9  # no useless trickle
        for node in paths[place.charge_point_id]:
            for line in charger_lines(place):
                drawn[node][line] += drawing
                drawn[node][3] += drawing
    for node, (per_line, total) in node_limit.items():
        for line in range(3):
            assert drawn[node][line] <= per_line[line] + 1e-6, (node, line)
        assert drawn[node][3] <= total + 1e-6, node


@settings(max_examples=300, deadline=None)
@given(trees())
def test_a_charger_below_its_cap_is_stopped_by_a_full_node(tree: SiteTree) -> None:
    """Nothing is held back for nothing: a share under the charger's cap means a full node."""
    tree = SiteTree(replace(tree.site, min_current_a=0.0), tree.groups, tree.chargers)
    shares = failsafe_shares(tree, NOW)
    paths, node_limit = node_paths(tree), node_limits(tree, NOW)
    drawn = {node: [0.0, 0.0, 0.0, 0.0] for node in node_limit}
    for place in tree.chargers:
        for node in paths[place.charge_point_id]:
            for line in charger_lines(place):
                drawn[node][line] += shares[place.charge_point_id] * place.connectors
                drawn[node][3] += shares[place.charge_point_id] * place.connectors
    # Floored to 0.1 A per connector: a node may keep 0.1 A per connector below it.
    slack = 0.1 * sum(c.connectors for c in tree.chargers) + 1e-6

    def full(node: str, place: ChargerPlace) -> bool:
        per_line, total = node_limit[node]
        lines = charger_lines(place)
        return drawn[node][3] >= total - slack * 3 or any(
            drawn[node][line] >= per_line[line] - slack for line in lines
        )

    for place in tree.chargers:
        cp = place.charge_point_id
        if shares[cp] < connector_cap(place) - 0.1 - 1e-9:
            assert any(full(node, place) for node in paths[cp]), cp


async def test_chargers_of_a_site_get_their_failsafe_share_and_a_new_one_shrinks_it(
    api: Api,
) -> None:
    fleet = await start_site_fleet(api, chargers=4, fallback_current_a=None)
    defaults: dict[str, float] = {}

    def seen(charger_id: str, status: str, profile: Profile) -> None:
        if profile.purpose is Purpose.TX_DEFAULT and status == "Accepted":
            defaults[charger_id] = profile.periods[0].limit

    watch_profiles(fleet, seen)
    try:
        ids = [c.cfg.charger_id for c in fleet.chargers]
        for charger_id in ids[:3]:
            placed = await api.operator.put(
                f"/chargers/{charger_id}/site", json={"site_id": "s", "max_current_a": 16}
            )
            assert placed.status_code == 200, placed.text

        # 32 A over three chargers: 10.6 A each (floored to 0.1 A, never rounded up).
        async def shares_are(expected: dict[str, float]) -> bool:
            return defaults == expected

        await eventually(lambda: shares_are(dict.fromkeys(ids[:3], 10.6)), within=15)
        placed = await api.operator.put(
            f"/chargers/{ids[3]}/site", json={"site_id": "s", "max_current_a": 16}
        )
        assert placed.status_code == 200, placed.text
        await eventually(lambda: shares_are(dict.fromkeys(ids, 8.0)), within=15)
        assert sum(defaults.values()) <= SITE_LIMIT
        site = (await api.reader.get("/sites/s")).json()
        assert site["fallback_current_a"] is None
    finally:
        await fleet.stop()
