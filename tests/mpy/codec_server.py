# Line protocol for property tests: one request per line, one reply per line.
#   roundtrip HEX -> "ok HEX" (firmware loads then dumps) | "err TYPE: MSG"
#   floats HEX    -> "ok HEX" (decoded list of floats, each as a big-endian double)
#   fuzz HEX      -> "ok" | "err TYPE: MSG"   (ValueError is the only allowed failure)
#   sign KEY MSG  -> "ok SIG"
#   check12 D12   -> "ok D"  (MPAN check digit)
#   deframe HEX   -> "ok N [SEQ TYPE PAYLOADHEX]..." (one fresh deframer per request)
#   encode SEQ TYPE PAYLOADHEX -> "ok FRAMEHEX"
#   reqarg int N | bytes HEX -> "ok HEX" (a HAN request's payload {0: arg}, agent.link)
import binascii
import struct
import sys

from agent import cbor, ecdsa, frame, ids, link


def reply(s):
    sys.stdout.write(s + "\n")


while True:
    line = sys.stdin.readline()
    if not line:
        break
    parts = line.split()
    cmd, args = parts[0], parts[1:] or [""]
    try:
        data = [binascii.unhexlify(a) for a in args] if cmd not in ("check12", "encode", "reqarg") else args
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
        elif cmd == "deframe":
            got = frame.Deframer().feed(data[0])
            reply("ok %d %s" % (len(got), " ".join("%d %d %s" % (q, t, binascii.hexlify(p).decode() or "-")
                                                    for q, t, p in got)))
        elif cmd == "encode":
            payload = binascii.unhexlify(args[2]) if len(args) > 2 else b""
            reply("ok " + binascii.hexlify(frame.encode(int(args[0]), int(args[1]), payload)).decode())
        elif cmd == "reqarg":
            arg = int(args[1]) if args[0] == "int" else binascii.unhexlify(args[1] if len(args) > 1 else "")
            reply("ok " + binascii.hexlify(link._arg(arg)).decode())
        elif cmd == "check12":
            reply("ok %d" % ids.mpan_check_digit(data[0]))
        else:
            reply("err unknown command")
    except ValueError as e:
        reply("err %s: %s" % (type(e).__name__, e))
    except Exception as e:
        reply("crash %s: %s" % (type(e).__name__, e))
