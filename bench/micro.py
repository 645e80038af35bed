"""Micro-benchmark of the compiled hot path (aiotcp._fast), per call from Python.

Prints a table and one JSON line.  Figures are per call, best of several
repeats (the machines are shared and noisy: the best run is the least
disturbed one).
"""
import json
import random
import sys
import timeit

from aiotcp import _fast

REPEATS = 7


def per_call(stmt, number, setup=None, **names):
    timer = timeit.Timer(stmt, setup=setup or "pass", globals=names)
    return min(timer.repeat(REPEATS, number)) / number


def wheel_with(pending):
    rng = random.Random(1)
    wheel = _fast.TimerWheel(0.001)
    keep = [_fast.Timer(i) for i in range(pending)]
    for t in keep:
        wheel.schedule(t, rng.uniform(0.0, 120.0))
    return wheel, keep


def main():
    payload = bytes(random.Random(0).randrange(256) for _ in range(1452))
    datagram = _fast.encode(40000, 443, 123456, 654321, _fast.ACK | _fast.PSH, 512, payload, ts=(1000, 2000))
    enc = _fast.encode
    rows = {
        "decode + verify (1452 B, timestamps)": per_call("decode(d)", 200_000, decode=_fast.decode, d=datagram),
        "encode + fill (1452 B, timestamps)": per_call(
            "enc(40000, 443, 123456, 654321, 0x18, 512, p, -1, -1, False, None, ts)", 200_000,
            enc=enc, p=payload, ts=(1000, 2000)),
        "checksum only (1452 B)": per_call("c(p)", 200_000, c=_fast.internet_checksum, p=payload),
    }
    for pending in (10, 100_000):
        wheel, keep = wheel_with(pending)
        t = _fast.Timer()
        rows[f"timer schedule+cancel ({pending:,} pending)"] = per_call(
            "s(t, 30.0); c(t)", 500_000, s=wheel.schedule, c=wheel.cancel, t=t)
        rows[f"timer reschedule ({pending:,} pending)"] = per_call(
            "s(t, 30.0); s(t, 31.0)", 500_000, s=wheel.schedule, t=t) / 2
    width = max(map(len, rows))
    print(f"{'operation':<{width}}  ns/call")
    for name, seconds in rows.items():
        print(f"{name:<{width}}  {seconds * 1e9:8.1f}")
    print(json.dumps({"micro_ns": {k: round(v * 1e9, 1) for k, v in rows.items()}, "python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
