"""Linux's own TCP through the same impairment relay aiotcp crosses in
bench/lossy.py: a kernel TCP sender and receiver, each behind a TUN
gateway (``aiotcp.tools.gateway``, the one ``python -m aiotcp gateway``
runs), the gateways' datagrams through the relay, all inside a network
namespace this script creates (and removes).  The sender's controller is
chosen per socket with TCP_CONGESTION.

    kernel sender (10.77.0.1) -> TUN gw1 -> UDP -> relay (loss, delay, rate) -> UDP -> gw2 TUN -> kernel receiver (10.78.0.1)

Run as root.  ``measure()`` is what bench/lossy.py calls; ``why_not()``
says why the Linux columns must stay empty where they cannot run.

    python bench/linux_path.py --cc bbr --loss 0.01 --rtt 0.02 --seconds 8
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time

PORT = 5201

RECEIVER = r"""
import json, socket, sys, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("10.78.0.1", int(sys.argv[1]))); srv.listen(1)
print("ready", flush=True)
conn, _ = srv.accept()
total, first, last = 0, None, None
while True:
    chunk = conn.recv(1 << 18)
    if not chunk:
        break
    now = time.perf_counter()
    if first is None:
        first = now
    total += len(chunk)
    last = now
print(json.dumps({"bytes": total, "seconds": (last - first) if first else 0.0}), flush=True)
"""

SENDER = r"""
import json, socket, struct, sys, time
cc, seconds, port = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
s.settimeout(30)
s.connect(("10.77.0.2", port))
block = b"g" * (1 << 16)
start = last = time.perf_counter()
rtts = []
def info():  # struct tcp_info: tcpi_rtt (us) at 68, tcpi_total_retrans at 100
    raw = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return struct.unpack_from("I", raw, 68)[0] / 1e6, struct.unpack_from("I", raw, 100)[0]
while (now := time.perf_counter()) - start < seconds:
    s.sendall(block)
    if now - last > 0.1:
        last = now
        rtts.append(info()[0])
settled = rtts[len(rtts) // 4:]
retrans = info()[1]
s.close()
print(json.dumps({"rtt_under_load": sum(settled) / len(settled) if settled else None, "retrans": retrans,
                  "congestion_control": cc}), flush=True)
"""


def why_not() -> str | None:
    """None when the Linux columns can be measured here, else why not."""
    if os.geteuid() != 0:
        return "needs root (a network namespace and TUN devices)"
    if shutil.which("ip") is None:
        return "needs ip (iproute2)"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun"
    return None


def available(cc: str) -> bool:
    try:
        with open("/proc/sys/net/ipv4/tcp_available_congestion_control") as f:
            return cc in f.read().split()
    except OSError:
        return False


async def _inside(args) -> dict:
    """In the namespace: gateways, relay, receiver, sender; the goodput."""
    from aiotcp.tools.gateway import Gateway
    from aiotcp.tools.relay import Impairment, Relay

    loop = asyncio.get_running_loop()
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    gw1 = Gateway(tun_name="lpa%d", kernel_ip="10.77.0.1", virtual_ip="10.77.0.2",
                  listen=("127.0.0.1", 0), peer_host="127.0.0.2")
    gw2 = Gateway(tun_name="lpb%d", kernel_ip="10.78.0.1", virtual_ip="10.78.0.2",
                  listen=("127.0.0.1", 0), peer_host="127.0.0.1")
    for gw in (gw1, gw2):
        gw.configure()
        gw.start(loop)
    # gw1 sends what the kernel sends to port PORT to (127.0.0.2, PORT): the
    # relay listens there and forwards to gw2, which hands it to the receiver
    imp = Impairment(loss=args.loss, delay=args.rtt / 2, rate=args.rate, queue=args.queue)
    relay = await Relay(("127.0.0.2", PORT), gw2.address, up=imp, down=Impairment(
        loss=args.loss, delay=args.rtt / 2), seed=args.seed).start()
    receiver = await asyncio.create_subprocess_exec(sys.executable, "-c", RECEIVER, str(PORT),
                                                    stdout=subprocess.PIPE)
    assert (await receiver.stdout.readline()).strip() == b"ready"
    sender = await asyncio.create_subprocess_exec(sys.executable, "-c", SENDER, args.cc, str(args.seconds),
                                                  str(PORT), stdout=subprocess.PIPE)
    try:
        line = await asyncio.wait_for(receiver.stdout.readline(), args.seconds + 60)
        sent = json.loads((await sender.stdout.readline()) or b"{}")
        await sender.wait()
    finally:
        for proc in (sender, receiver):
            if proc.returncode is None:
                proc.kill()
        relay.close()
        gw1.close()
        gw2.close()
    result = json.loads(line)
    result.update(sent)
    result["mbps"] = result["bytes"] * 8 / 1e6 / result["seconds"] if result["seconds"] else 0.0
    result["relay"] = dict(relay.stats)
    return result


def measure(cc: str, seconds: float, rtt: float, loss: float, seed: int = 1, rate: float = 0.0,
            queue: int = 256 * 1024) -> dict:
    """Linux TCP with controller ``cc`` through the relay, in a namespace of
    its own: ``mbps`` (goodput), ``rtt_under_load`` (the sender's tcpi_rtt,
    seconds), ``retrans`` (tcpi_total_retrans) and ``relay`` (its counters).
    Raises RuntimeError if it fails."""
    ns = f"aiotcp-lossy-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, __file__, "--inside", "--cc", cc,
                               "--seconds", str(seconds), "--rtt", str(rtt), "--loss", str(loss),
                               "--seed", str(seed), "--rate", str(rate), "--queue", str(queue)],
                              capture_output=True, text=True, timeout=seconds + 120)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed")
        return json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cc", default="cubic")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rtt", type=float, default=0.02)
    parser.add_argument("--loss", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0, help="bottleneck bytes/s (0: none)")
    parser.add_argument("--queue", type=int, default=256 * 1024)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        print(json.dumps(asyncio.run(_inside(args))))
        return
    reason = why_not()
    if reason:
        sys.exit(f"linux_path: {reason}")
    start = time.perf_counter()
    result = measure(args.cc, args.seconds, args.rtt, args.loss, args.seed, args.rate, args.queue)
    print(f"linux {args.cc}: {result['mbps']:.1f} Mbit/s, rtt under load {result['rtt_under_load']}, "
          f"{result['retrans']} retransmissions ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
