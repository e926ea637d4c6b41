"""The flag policy (pure): every rule, and order independence over permutations."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from companion import policy

from .policy_events import DAY, MPAN, MPRN, T0, event, hub, meter


def flag(events, mpxn=MPAN):
    return policy.derive(mpxn, events)


def test_no_event_no_flag():
    f = flag([])
    assert (f.flag, f.effective_from, f.event_id) == (None, None, None)
    other = event("commission", T0, [meter(mpxn="2000012345672")], mpans=["2000012345672"])
    assert flag([other]).flag is None


def test_commissioned_electricity_is_active_from_the_evidence_date():
    ev = event("commission", T0 + 3600, [meter()])
    f = flag([ev])
    assert f.flag == "A"
    assert f.effective_from == "2026-11-28"
    assert f.event_id == ev.id.hex()
    assert "ESME 00-1B-C5-0C-00-00-00-10 commissioned" in f.reason and ev.id.hex()[:8] in f.reason


def test_installed_not_commissioned_is_i():
    assert flag([event("install", T0, [meter(status="InstalledNotCommissioned")])]).flag == "I"


def test_install_and_leave_is_i_with_no_wan():
    f = flag([event("install_and_leave", T0, [meter(status="InstalledNotCommissioned")], wan=False,
                    hub_=hub(dcc=False))])
    assert f.flag == "I"
    assert "no SM WAN" in f.reason


def test_commission_claim_with_no_wan_is_i_and_override_is_visible():
    f = flag([event("commission", T0, [meter()], wan=False, override="DCC said WAN is fine")])
    assert f.flag == "I"
    assert "no SM WAN" in f.reason
    assert f.override == "DCC said WAN is fine (overrode: wan_down)"


def test_whitelisted_devices_that_never_joined_are_i():
    f = flag([event("install", T0, [meter(status="Whitelisted", answered=False)])])
    assert f.flag == "I"
    assert "is Whitelisted" in f.reason and "did not answer" in f.reason


def test_commissioned_hub_not_dcc_served_is_i():
    assert flag([event("commission", T0, [meter()], hub_=hub(dcc=False))]).flag == "I"


def test_removal_after_active_is_n():
    a = event("commission", T0, [meter()])
    r = event("removal", T0 + 30 * DAY, no_hub=True, counter=2)
    f = flag([a, r])
    assert f.flag == "N"
    assert f.effective_from == "2026-12-28"
    assert "no hub at the premises" in f.reason


def test_removal_of_a_meter_that_no_longer_answers_is_n():
    a = event("commission", T0, [meter()])
    r = event("removal", T0 + DAY, [meter(answered=False)], counter=2)
    assert flag([a, r]).flag == "N"


def test_removal_alone_is_n():
    # The removal itself proves a smart meter was there (the registration systems' stale "A").
    assert flag([event("removal", T0, no_hub=True)]).flag == "N"


def test_removal_contradicted_by_the_evidence_keeps_the_evidence():
    a = event("commission", T0, [meter()])
    r = event("removal", T0 + DAY, [meter()], counter=2, override="meter is the neighbour's")
    f = flag([a, r])
    assert f.flag == "A"
    assert f.event_id == a.id.hex()  # unchanged: the removal did not change the flag


def test_decommissioned_meter_is_n():
    a = event("commission", T0, [meter()])
    d = event("install", T0 + DAY, [meter(status="Decommissioned")], counter=2)
    f = flag([a, d])
    assert f.flag == "N" and "Decommissioned" in f.reason


def test_smart_for_smart_exchange():
    old = event("commission", T0, [meter(n=0x10)])
    removal = event("removal", T0 + 10 * DAY, [meter(n=0x10, answered=False)], counter=2)
    install = event("install", T0 + 10 * DAY + 3600, [meter(n=0x20, status="InstalledNotCommissioned")],
                    counter=3)
    commission = event("commission", T0 + 11 * DAY, [meter(n=0x20)], counter=4)
    history = [old, removal, install, commission]
    got = [flag(history[: i + 1]) for i in range(4)]
    assert [f.flag for f in got] == ["A", "N", "I", "A"]
    assert [f.effective_from for f in got] == ["2026-11-28", "2026-12-08", "2026-12-08", "2026-12-09"]


def test_dual_fuel_gives_a_flag_per_meter_point():
    ev = event("commission", T0, [meter("ESME"), meter("GSME", n=0x11)], mprns=[MPRN])
    flags = policy.derive_all([ev])
    assert {m: f.flag for m, f in flags.items()} == {MPAN: "A", MPRN: "A"}


def test_gas_needs_the_gpf():
    ev = event("commission", T0, [meter("GSME", n=0x11)], mpans=[], mprns=[MPRN], hub_=hub(gpf=False))
    f = flag([ev], MPRN)
    assert f.flag == "I" and "no GPF" in f.reason


def test_electricity_meter_is_not_taken_for_gas():
    ev = event("commission", T0, [meter("ESME", mpxn=MPRN)], mpans=[], mprns=[MPRN])
    assert flag([ev], MPRN).flag is None


def test_smets1_enrolled_is_a_and_not_enrolled_is_n():
    enrolled = event("commission", T0, [meter()], hub_=hub("SMETS1", dcc=True, gpf=False))
    not_enrolled = event("install", T0, [meter(status="InstalledNotCommissioned")],
                         hub_=hub("SMETS1", dcc=False, gpf=False))
    assert flag([enrolled]).flag == "A"
    f = flag([not_enrolled])
    assert f.flag == "N" and "not enrolled" in f.reason


def test_several_handhelds_and_a_late_backlog():
    # Handheld 2 commissions on day 5; handheld 1's install from day 1 arrives a week later.
    install = event("install_and_leave", T0 + DAY, [meter(status="InstalledNotCommissioned")], wan=False,
                    device="hh1")
    commission = event("commission", T0 + 5 * DAY, [meter()], device="hh2")
    assert flag([commission, install]) == flag([install, commission])
    assert flag([commission, install]).flag == "A"
    assert flag([commission, install]).effective_from == "2026-12-03"


def test_event_without_the_meter_point_in_the_log_says_nothing():
    ev = event("commission", T0, [meter(mpxn="2000012345672")])  # names MPAN, log has another
    f = flag([ev])
    assert f.flag is None and f.event_ids == (ev.id.hex(),)


def test_legacy_mapping():
    assert [policy.legacy(f) for f in ("A", "I", "N", None)] == ["A", "", "W", ""]
    assert policy.legacy("I", {"A": "A", "I": "A", "N": "W"}) == "A"


# --- order independence -------------------------------------------------------------
def _site_history(choices: list[int]) -> list:
    """A random but plausible site history from a list of choices."""
    kinds = [
        lambda t, c: event("install", t, [meter(status="InstalledNotCommissioned")], counter=c),
        lambda t, c: event("install_and_leave", t, [meter(status="InstalledNotCommissioned")], wan=False,
                           counter=c, device="hh2"),
        lambda t, c: event("commission", t, [meter(), meter("GSME", n=0x11)], mprns=[MPRN], counter=c),
        lambda t, c: event("removal", t, no_hub=True, mprns=[MPRN], counter=c, device="hh3"),
        lambda t, c: event("commission", t, [meter()], wan=False, counter=c, override="x"),
        lambda t, c: event("install", t, [meter(status="Decommissioned")], counter=c),
        lambda t, c: event("commission", t, [meter()], hub_=hub("SMETS1", dcc=False), counter=c),
    ]
    # Equal read times on purpose: ties are broken by device time, then event id.
    return [kinds[k % len(kinds)](T0 + (i // 2) * DAY, i) for i, k in enumerate(choices)]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=7), st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_same_flags(choices, rnd):
    events = _site_history(choices)
    want = policy.derive_all(events)
    shuffled = list(events)
    rnd.shuffle(shuffled)
    assert policy.derive_all(shuffled) == want


def test_every_permutation_of_a_small_history():
    events = _site_history([0, 2, 3, 0, 2])
    want = policy.derive_all(events)
    for perm in itertools.permutations(events):
        assert policy.derive_all(perm) == want


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=9), st.integers(0, 9))
def test_extending_with_later_events_equals_deriving_everything(choices, cut):
    """The bridge's incremental path (policy.extend, for events newer than any of their meter
    point's) gives what deriving the whole history gives, one event or several at a time."""
    events = sorted(_site_history(choices), key=policy.order_key)
    cut = min(cut, len(events))
    for mpxn in (MPAN, MPRN):
        want = policy.derive(mpxn, events)
        assert policy.extend(policy.derive(mpxn, events[:cut]), events[cut:]) == want
        step = policy.derive(mpxn, [])
        for ev in events:
            step = policy.extend(step, [ev])
        assert step == want
    texts = [policy.order_text(e) for e in events]
    assert texts == sorted(texts) and len(set(texts)) == len(texts)
