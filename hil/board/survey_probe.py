# Runs on an emulated board (micropython): survey the premises on a serial port and
# print one JSON line: {"ok": true, "evidence": ..., "ms": ..., "link": ...} or
# {"ok": false, "error": TYPE, "message": ..., "ms": ..., "link": ...}.
# Usage: micropython survey_probe.py PORT [expect_hub=1] [peak]
import json
import sys
import time

from agent import link, survey, uart

port = sys.argv[1]
expect_hub = len(sys.argv) < 3 or sys.argv[2] != "0"
u = uart.UART(port)
lk = link.Link(u)
t0 = time.ticks_ms()
try:
    ev = survey.survey(lk, time.time, expect_hub=expect_hub)
    out = {"ok": True, "evidence": ev}
except link.LinkError as e:
    out = {"ok": False, "error": e.kind, "message": str(e)}
out["ms"] = time.ticks_diff(time.ticks_ms(), t0)
out["link"] = lk.stats()
if len(sys.argv) > 3:
    import gc
    import micropython

    gc.collect()
    out["mem_peak"] = micropython.mem_peak()
u.close()
print(json.dumps(out))
