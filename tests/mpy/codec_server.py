# Line protocol for property tests: one request per line, one reply per line.
#   roundtrip HEX -> "ok HEX" (firmware loads then dumps) | "err TYPE: MSG"
#   floats HEX    -> "ok HEX" (decoded list of floats, each as a big-endian double)
#   fuzz HEX      -> "ok" | "err TYPE: MSG"   (ValueError is the only allowed failure)
#   sign KEY MSG  -> "ok SIG"
#   check12 D12   -> "ok D"  (MPAN check digit)
import binascii
import struct
import sys

from agent import cbor, ecdsa, ids


def reply(s):
    sys.stdout.write(s + "\n")


while True:
    line = sys.stdin.readline()
    if not line:
        break
    parts = line.split()
    cmd, args = parts[0], parts[1:] or [""]
    try:
        data = [binascii.unhexlify(a) for a in args] if cmd != "check12" else args
        if cmd == "roundtrip":
            reply("ok " + binascii.hexlify(cbor.dumps(cbor.loads(data[0]))).decode())
        elif cmd == "floats":
            vals = cbor.loads(data[0])
            reply("ok " + binascii.hexlify(b"".join(struct.pack(">d", v) for v in vals)).decode())
        elif cmd == "fuzz":
            cbor.loads(data[0])
            reply("ok")
        elif cmd == "sign":
            reply("ok " + binascii.hexlify(ecdsa.sign(data[0], data[1])).decode())
        elif cmd == "check12":
            reply("ok %d" % ids.mpan_check_digit(data[0]))
        else:
            reply("err unknown command")
    except ValueError as e:
        reply("err %s: %s" % (type(e).__name__, e))
    except Exception as e:
        reply("crash %s: %s" % (type(e).__name__, e))
