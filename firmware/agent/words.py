# The words the display shows for each flag reason code (companion.policy.CODES; a test
# keeps the two the same). Apart, so that the ack check can show them without the predictor.
WORDS = {
    "commissioned": "commissioned, on the SM WAN",
    "removed_no_hub": "removed: no hub",
    "removed_not_in_log": "removed: not in the log",
    "removed_gone": "removed: meter gone",
    "removed_silent": "removed: meter silent",
    "no_hub": "no hub",
    "not_in_log": "not in the hub's log",
    "gone": "meter decommissioned",
    "smets1_not_enrolled": "SMETS1 not enrolled",
    "hub_not_dcc": "hub not commissioned",
    "no_wan": "no SM WAN",
    "no_gpf": "no GPF on the hub",
    "meter_not_commissioned": "meter not commissioned",
    "meter_silent": "meter silent on the HAN",
    "none": "no smart event seen",
}
