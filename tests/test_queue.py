"""A full send buffer: two network namespaces joined by a veth pair whose
sending side has a slow token-bucket queue (tc tbf), so that datagrams wait
below the socket and sendmsg answers EAGAIN, which loopback never does (it
frees each datagram as it is sent).  The endpoint must keep what it could not
send, in order, and send it when the socket is writable.  Nothing is
configured in the root namespace."""
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

PEER = str(Path(__file__).resolve().parent / "queue_peer.py")
A_IP, B_IP, PORT = "10.78.0.1", "10.78.0.2", 7000


def _why_not():
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs Linux and root (ip netns)"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "needs iproute2 (ip, tc)"
    return None


pytestmark = [pytest.mark.netns, pytest.mark.skipif(_why_not() is not None, reason=str(_why_not()))]


def sh(*args):
    subprocess.run(args, check=True)


@pytest.fixture
def slow_link():
    a, b = f"aiotcp-qa-{uuid.uuid4().hex[:6]}", f"aiotcp-qb-{uuid.uuid4().hex[:6]}"
    sh("ip", "netns", "add", a)
    sh("ip", "netns", "add", b)
    try:
        sh("ip", "-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b)
        for ns, dev, ip in ((a, "va", A_IP), (b, "vb", B_IP)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        # 20 Mbit/s with room for seconds of queue: the sender's socket
        # buffer fills long before the queue drops anything
        sh("ip", "netns", "exec", a, "tc", "qdisc", "add", "dev", "va", "root", "tbf",
           "rate", "20mbit", "burst", "32kb", "latency", "5s")
        yield a, b
    finally:
        subprocess.run(["ip", "netns", "del", a], check=False)
        subprocess.run(["ip", "netns", "del", b], check=False)


def test_a_full_send_buffer_holds_datagrams_in_order_until_writable(slow_link):
    a, b = slow_link
    size = 4 << 20
    server = subprocess.Popen(["ip", "netns", "exec", b, sys.executable, PEER, "server", str(PORT)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        client = subprocess.run(["ip", "netns", "exec", a, sys.executable, PEER, "client", B_IP, str(PORT),
                                 str(size)], capture_output=True, text=True, timeout=180)
        assert client.returncode == 0, client.stderr[-3000:]
        sent = json.loads(client.stdout.strip().splitlines()[-1])
        out, err = server.communicate(timeout=60)
        assert server.returncode == 0, err[-3000:]
        received = json.loads(out.strip().splitlines()[-1])
    finally:
        if server.poll() is None:
            server.kill()
    print(sent, received)
    assert {k: received[k] for k in ("received", "sha")} == {"received": size, "sha": sent["sha"]}
    # the socket said EAGAIN, and nothing was lost to it.  The queue drops
    # nothing, so a datagram the endpoint failed to keep would have had to be
    # retransmitted.  Retransmissions can still happen: veth hands packets to
    # the receiving CPU's backlog, so a dequeue on the other core reorders
    # them now and then, and RACK may take that for loss.  Those are
    # spurious, and the receiver says so with a D-SACK for each; a
    # retransmission of a datagram that never left has none.
    assert sent["send_blocked"] > 0
    assert sent["retransmitted"] <= sent["why"]["dsacks"], sent
