"""One flag policy, two runtimes: the handheld's prediction (firmware/agent/predict.py, under
micropython) against the bridge's policy (companion/policy.py), on the vectors the CPython
policy makes (tools/make_policy_vectors.py), on generated evidence, and the vector file
kept current."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from .support import MicroPythonRunner, firmware_vector_results, load_tool, load_vectors


def test_the_handheld_predicts_what_the_bridge_derives_on_every_vector():
    results = firmware_vector_results("policy")
    *mismatches, summary = results
    assert mismatches == []
    assert summary["ran"] == len(load_vectors("policy")["cases"]) > 3000
    assert summary["words"] is True, "the display words of each reason code are the same in both"


def test_the_vector_file_is_what_the_policy_says_today():
    mod = load_tool("make_policy_vectors")
    v = load_vectors("policy")
    assert mod.vectors() == {k: v[k] for k in ("hubs", "logs", "cases")}, \
        "run: python tools/make_policy_vectors.py"


def test_same_hub_exchange_takes_the_new_meter_whatever_the_log_order():
    from companion import policy

    mod = load_tool("make_policy_vectors")
    hub = {"chf": "00-1B-C5-0C-00-00-00-01", "generation": "SMETS2", "dcc": True, "gpf": None}
    new = {"eui": "00-1B-C5-0C-00-00-00-20", "type": "ESME", "status": "Commissioned", "mpxn": mod.MPAN,
           "answered": True}
    for old_status, answered in (("Decommissioned", False), ("Withdrawn", None), ("Commissioned", False)):
        old = {"eui": "00-1B-C5-0C-00-00-00-10", "type": "ESME", "status": old_status, "mpxn": mod.MPAN,
               "answered": answered}
        for log in ([old, new], [new, old]):
            ev = mod._event("commission", mod.MPAN, {"hub": hub, "wan": {"connected": True}, "devices": log})
            assert policy.observe(ev, mod.MPAN).flag == "A", (old_status, log[0]["status"])
            assert [d.eui for d in policy.stale_devices(ev, mod.MPAN)] == [old["eui"]]


_device = st.fixed_dictionaries({
    "eui": st.sampled_from(["00-1B-C5-0C-00-00-00-10", "00-1B-C5-0C-00-00-00-11", "00-1B-C5-0C-00-00-00-12"]),
    "type": st.sampled_from(["ESME", "GSME", "IHD"]),
    "status": st.sampled_from(["Commissioned", "InstalledNotCommissioned", "Whitelisted", "Decommissioned",
                               "Withdrawn", "Pending", None]),
    "mpxn": st.sampled_from(["1312345678907", "1234567890", None]),
    "answered": st.sampled_from([True, False, None])})
_evidence = st.one_of(
    st.just({"hub": None, "wan": None, "devices": []}),
    st.fixed_dictionaries({
        "hub": st.fixed_dictionaries({"chf": st.just("00-1B-C5-0C-00-00-00-01"),
                                      "generation": st.sampled_from(["SMETS1", "SMETS2"]),
                                      "dcc": st.sampled_from([True, False, None]),
                                      "gpf": st.sampled_from([None, "00-1B-C5-0C-00-00-00-02"])}),
        "wan": st.one_of(st.none(), st.fixed_dictionaries({"connected": st.booleans()})),
        "devices": st.lists(_device, max_size=5)}))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["install", "commission", "install_and_leave", "removal"]),
                          st.sampled_from(["1312345678907", "1234567890"]), _evidence), min_size=1, max_size=25))
def test_prediction_equals_the_bridges_observation_on_generated_evidence(batch):
    from companion import policy

    mod = load_tool("make_policy_vectors")
    want = [list((o.flag, o.code)) for o in (policy.observe(mod._event(t, m, ev), m) for t, m, ev in batch)]
    code = ("import json\nfrom agent import predict\nB = json.loads(%r)\n"
            "print(json.dumps([list(predict.observe(t, ev, m)) for t, m, ev in B]))\n") % json.dumps(batch)
    got = json.loads(MicroPythonRunner()(code, mpy=True))
    assert got == want
