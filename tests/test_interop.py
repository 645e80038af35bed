"""Linux's own TCP as the test peer, through the TUN gateway, inside a
network namespace that this module creates and removes.  Nothing is
configured in the root namespace."""
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

PEER = str(Path(__file__).resolve().parent / "interop_peer.py")


def _why_not():
    if sys.platform != "linux":
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root (ip netns, TUN)"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    if shutil.which("ip") is None or shutil.which("ss") is None:
        return "needs iproute2 (ip, ss)"
    return None


pytestmark = [pytest.mark.netns, pytest.mark.skipif(_why_not() is not None, reason=str(_why_not()))]


@pytest.fixture(scope="module")
def netns():
    name = f"aiotcp-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def run(netns, scenario, size=0, drop_to_peer=0.0, drop_to_kernel=0.0, seed=1, wscale=True, timestamps=True,
        sack=True):
    env = dict(os.environ, AIOTCP_WSCALE="1" if wscale else "0", AIOTCP_TS="1" if timestamps else "0",
               AIOTCP_SACK="1" if sack else "0")
    result = subprocess.run(["ip", "netns", "exec", netns, sys.executable, PEER, scenario, str(size),
                             str(drop_to_peer), str(drop_to_kernel), str(seed)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(json.dumps({k: v for k, v in report.items() if not k.endswith("sha")}, indent=1))
    return report


def assert_exact(report):
    assert report.get("server_received_sha") == report["client_sent_sha"]
    assert report.get("client_received_sha") == report["server_sent_sha"]


MiB = 1 << 20


@pytest.mark.parametrize("scenario", ["aiotcp-client", "linux-client"])
def test_50_mib_each_way_at_once(netns, scenario):
    report = run(netns, scenario, 50 * MiB)
    assert_exact(report)
    assert "ESTAB" in report["states_during"]
    # after the teardown Linux holds at most TIME-WAIT (if it closed first)
    # and its listening socket: no connection is left half open
    assert set(report["states_after"]) <= {"TIME-WAIT", "LISTEN"}


@pytest.mark.parametrize("sack", [True, False])
@pytest.mark.parametrize("timestamps", [True, False])
@pytest.mark.parametrize("wscale", [True, False])
def test_handshake_options_with_linux(netns, wscale, timestamps, sack):
    report = run(netns, "aiotcp-client", 64 * 1024, wscale=wscale, timestamps=timestamps, sack=sack)
    assert_exact(report)
    hs = report["handshake"]
    # Linux offers all three; each is on exactly when we offer it too
    assert hs["ts_ok"] == timestamps and hs["sack_ok"] == sack
    assert hs["mss"] == (1440 if timestamps else 1452)  # 1452 less 12 bytes of timestamps
    if wscale:
        # ours covers the 6 MiB receive autotuning may grow to; Linux's own shift
        assert hs["aiotcp_rcv_wscale"] == 7 and hs["aiotcp_snd_wscale"] > 0
    else:
        assert hs["aiotcp_rcv_wscale"] == 0 and hs["aiotcp_snd_wscale"] == 0
    assert hs["srtt"] is not None and hs["srtt"] < 1.0


def test_linux_sees_our_window_scale_and_mss(netns):
    report = run(netns, "linux-client", 64 * 1024)
    assert_exact(report)
    info = report["kernel_tcp_info"]
    assert re.search(r"wscale:7,\d+", info), info  # "wscale:snd,rcv": snd is the 7 we offered
    # the TUN's MTU gives 1452; Linux sending 1440 means it took the 12 bytes
    # of the timestamps we agreed on out of every segment, as we do
    assert "mss:1440" in info, info


@pytest.mark.parametrize("scenario", ["aiotcp-client-refused", "linux-client-refused"])
def test_connection_refused_both_ways(netns, scenario):
    assert run(netns, scenario)["client_error"] == "ConnectionRefusedError"


def test_icmp_for_a_vanished_peer_reaches_linux_as_icmp(netns):
    """No UDP socket at the aiotcp peer's address: the gateway gets an ICMP
    port unreachable for the datagram carrying Linux's SYN and hands Linux
    the same ICMP for the SYN, so connect() fails at once with
    ECONNREFUSED, not after two minutes of SYN retries."""
    report = run(netns, "linux-client-unreachable")
    assert report["client_error"] == "ConnectionRefusedError"
    assert report["seconds"] < 5
    assert report["gateway"]["unreachable_from_peer"] >= 1
    assert report["gateway"]["unreachable_to_kernel"] >= 1


@pytest.mark.parametrize("scenario", ["aiotcp-client-reset", "linux-client-reset"])
def test_abort_resets_the_peer_both_ways(netns, scenario):
    assert run(netns, scenario)["client_error"] == "ConnectionResetError"


@pytest.mark.parametrize("scenario", ["aiotcp-client-unread", "linux-client-unread"])
def test_closing_with_unread_data_resets_both_ways(netns, scenario):
    """RFC 1122 4.2.2.13: the server closes with data it has not read; the
    client's read fails with ECONNRESET instead of ending at an orderly EOF."""
    assert run(netns, scenario)["client_error"] == "ConnectionResetError"


@pytest.mark.parametrize("scenario", ["aiotcp-client-late", "linux-client-late"])
def test_writing_after_the_peer_closed_draws_a_reset_both_ways(netns, scenario):
    """RFC 9293 3.6.1: data arriving after the server's close() is answered
    with a RST, so the client that goes on writing gets an error."""
    report = run(netns, scenario)
    assert report["client_eof"]
    assert report["client_error"] in ("ConnectionResetError", "BrokenPipeError")


def test_linux_sender_recovers_with_our_sacks(netns):
    """Linux sends into 1% loss; the SACK blocks in our ACKs drive its SACK
    recovery (its own counters say so), with few timeouts."""
    report = run(netns, "linux-client", 8 * MiB, drop_to_peer=0.01, seed=7)
    assert_exact(report)
    assert report["gateway"]["dropped_to_peer"] > 0
    kernel = report["kernel_counters"]
    assert kernel["TcpExtTCPSackRecovery"] > 0
    assert kernel["TcpExtTCPTimeouts"] <= kernel["TcpExtTCPSackRecovery"]


@pytest.mark.parametrize("sack", [True, False])
def test_we_recover_from_loss_with_linux_acks(netns, sack):
    """We send into 1% loss; Linux's ACKs (with SACK blocks, or without for
    NewReno) drive our recovery: mostly fast retransmits, few timeouts."""
    report = run(netns, "aiotcp-client", 8 * MiB, drop_to_kernel=0.01, seed=7, sack=sack)
    assert_exact(report)
    assert report["gateway"]["dropped_to_kernel"] > 0
    info = report["aiotcp_client_info"]
    assert info["fast_retransmits"] > 0
    assert info["rto_count"] <= info["fast_retransmits"]
    assert (info["sack_retransmits"] > 0) == sack


@pytest.mark.parametrize("topology", ["aiotcp-client", "linux-client"])
@pytest.mark.parametrize("initiator", ["client", "server"])
def test_close_initiated_by_each_side_with_states_on_both(netns, topology, initiator):
    steps = run(netns, f"close-{topology}-{initiator}")["steps"]
    aiotcp_initiates = (topology == "aiotcp-client") == (initiator == "client")
    if aiotcp_initiates:
        # we sent the first FIN: we wait in FIN_WAIT_2, Linux in CLOSE-WAIT
        assert steps[0] == {"aiotcp": "FIN_WAIT_2", "kernel": "CLOSE-WAIT"}
        assert steps[1] == {"aiotcp": "TIME_WAIT", "kernel": "CLOSED"}
    else:
        assert steps[0] == {"aiotcp": "CLOSE_WAIT", "kernel": "FIN-WAIT-2"}
        assert steps[1] == {"aiotcp": "CLOSED", "kernel": "TIME-WAIT"}
