"""MPAN / MPRN / EUI-64 rules, the firmware and the companion agreeing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from companion import ids



def test_known_valid_mpan():
    # 1312345678907: the example four independent implementations agree on.
    assert ids.check_mpan("1312345678907") == "1312345678907"
    with pytest.raises(ValueError, match="check digit"):
        ids.check_mpan("1312345678906")


@pytest.mark.parametrize("bad", ["", "131234567890", "13123456789070", "131234567890x", "１３１２３４５６７８９０７",
                                 1312345678907])
def test_mpan_shape(bad):
    with pytest.raises(ValueError, match="13 digits"):
        ids.check_mpan(bad)


@pytest.mark.parametrize("mprn,ok", [("123456", True), ("1234567890", True), ("12345", False),
                                     ("12345678901", False), ("12345a", False), ("", False)])
def test_mprn_length(mprn, ok):
    if ok:
        assert ids.check_mprn(mprn) == mprn
    else:
        with pytest.raises(ValueError, match="6 to 10 digits"):
            ids.check_mprn(mprn)


def test_eui64_text_round_trip():
    assert ids.eui64_text(ids.eui64_bytes("00-1b-c5-0c-00-00-00-01")) == "00-1B-C5-0C-00-00-00-01"
    for bad in ("00-1B-C5-0C-00-00-00", "00:1B:C5:0C:00:00:00:01", "001BC50C00000001", "0G-1B-C5-0C-00-00-00-01"):
        with pytest.raises(ValueError, match="EUI-64"):
            ids.eui64_bytes(bad)


@settings(max_examples=200, deadline=None)
@given(st.text("0123456789", min_size=12, max_size=12))
def test_firmware_and_companion_compute_the_same_check_digit(server, first12):
    assert server.request(f"check12 {first12}") == f"ok {ids.mpan_check_digit(first12)}"


def test_firmware_identifier_checks(mpy):
    out = mpy(
        "from agent import ids\n"
        "print(ids.check_mpan('1312345678907'), ids.check_mprn('123456'))\n"
        "print(ids.eui64_text(ids.eui64_bytes('00-1b-c5-0c-00-00-00-01')))\n"
        "for f, v in ((ids.check_mpan, '1312345678906'), (ids.check_mprn, '12345'),\n"
        "             (ids.eui64_bytes, '00:1B:C5:0C:00:00:00:01')):\n"
        "    try:\n"
        "        f(v)\n"
        "    except ValueError as e:\n"
        "        print(e)\n"
    )
    assert out.splitlines() == [
        "1312345678907 123456",
        "00-1B-C5-0C-00-00-00-01",
        "MPAN core check digit mismatch: '1312345678906'",
        "MPRN must be 6 to 10 digits: '12345'",
        "EUI-64 must be XX-XX-XX-XX-XX-XX-XX-XX: '00:1B:C5:0C:00:00:00:01'",
    ]
