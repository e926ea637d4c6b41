"""The emulated DCC (hil/dcc.py), for tests: DUIS messages signed as the DCC signs them."""

from hil.dcc import DS, NS, Dcc

__all__ = ["DS", "NS", "Dcc"]
