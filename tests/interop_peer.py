"""Runs inside a network namespace made by test_interop.py: a TUN gateway,
Linux's TCP on one side and aiotcp on the other, one scenario per run.
Prints one JSON line with what each side saw."""
import array
import asyncio
import fcntl
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import termios
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import aiotcp  # noqa: E402
from aiotcp.tools.gateway import Gateway  # noqa: E402

KERNEL_IP, VIRTUAL_IP = "10.77.0.1", "10.77.0.2"


def kernel_states(port: int, peer_port: int | None = None) -> list:
    """States of kernel sockets on ``port`` (with local port ``port`` and
    remote port ``peer_port`` when given: one connection exactly), from ss."""
    query = f"( sport = :{port} or dport = :{port} )" if peer_port is None else \
        f"( sport = :{port} and dport = :{peer_port} )"
    out = subprocess.run(["ss", "-Htan", query], capture_output=True, text=True).stdout
    return sorted({line.split()[0] for line in out.splitlines() if line.strip()})


async def exchange(reader, writer, payload: bytes, report: dict, side: str):
    """Send payload and read until EOF at once, hashing both."""
    async def send():
        for i in range(0, len(payload), 1 << 16):
            writer.write(payload[i:i + (1 << 16)])
            await writer.drain()
        writer.write_eof()

    sender = asyncio.ensure_future(send())
    digest = hashlib.sha256()
    total = 0
    while chunk := await reader.read(1 << 18):
        digest.update(chunk)
        total += len(chunk)
    await sender
    report[f"{side}_received_sha"] = digest.hexdigest()
    report[f"{side}_received_len"] = total


async def main(scenario: str, size: int, drop_to_peer: float, drop_to_kernel: float, seed: int):
    loop = asyncio.get_running_loop()
    config = aiotcp.Config(window_scaling=os.environ.get("AIOTCP_WSCALE", "1") == "1",
                           timestamps=os.environ.get("AIOTCP_TS", "1") == "1",
                           sack=os.environ.get("AIOTCP_SACK", "1") == "1")
    gateway = Gateway(kernel_ip=KERNEL_IP, virtual_ip=VIRTUAL_IP, drop_to_peer=drop_to_peer,
                      drop_to_kernel=drop_to_kernel, seed=seed)
    gateway.configure()
    gateway.start(loop)
    port = gateway.address[1]
    report = {"scenario": scenario}
    data_c = os.urandom(size)
    data_s = os.urandom(size)
    report["client_sent_sha"] = hashlib.sha256(data_c).hexdigest()
    report["server_sent_sha"] = hashlib.sha256(data_s).hexdigest()
    done = loop.create_future()
    kernel_is_server = scenario.startswith("aiotcp-client")

    async def server_side(reader, writer):
        try:
            if scenario.endswith("reset"):
                await reader.readexactly(1)
                # a close resets only with SO_LINGER 0 (or unread data), on
                # Linux's sockets and on aiotcp's alike
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                done.set_result(None)
                return
            if scenario.endswith("unread"):
                # data received and not read at close(): a RST, not a FIN
                writer.transport.pause_reading()
                writer.write(b"?")  # now the client may send
                await wait_for(lambda: unread_bytes(writer) > 0)
                writer.close()
                done.set_result(None)
                return
            if scenario.endswith("late"):
                # the client goes on writing after our close(): a RST for it
                await reader.readexactly(1)
                writer.close()
                done.set_result(None)
                return
            await exchange(reader, writer, data_s, report, "server")
            info = writer.get_extra_info("tcp_info")
            if info:
                report["aiotcp_server_info"] = info
            writer.close()
            done.set_result(None)
        except Exception as exc:  # reported, not raised
            report["server_error"] = repr(exc)
            if not done.done():
                done.set_result(None)

    try:
        if kernel_is_server:
            # a TCP port of its own: the gateway's UDP port number may be
            # held by an earlier test's kernel socket that has not closed yet
            server = await asyncio.start_server(server_side, KERNEL_IP, 0)
            port = server.sockets[0].getsockname()[1]
            target = gateway.address  # the gateway's UDP socket
            opener = lambda host, udp: aiotcp.open_connection(host, udp, config=config, tcp_port=port)  # noqa: E731
        else:
            server = await aiotcp.start_server(server_side, "127.0.0.1", 0, config=config)
            port = server.sockets[0].getsockname()[1]
            target = (VIRTUAL_IP, port)
            opener = asyncio.open_connection
        if scenario.endswith("unreachable"):
            # nothing is bound at the aiotcp peer's UDP address any more:
            # the gateway's datagram draws an ICMP port unreachable, which
            # the gateway passes on to the kernel for the SYN inside
            server.close()
            await server.wait_closed()
            started = time.monotonic()
            report["client_error"] = await error_of(asyncio.wait_for(opener(*target), 10))
            report["seconds"] = time.monotonic() - started
            return report
        if scenario.endswith("refused"):
            if kernel_is_server:
                server.close()  # the kernel answers the SYN with a RST
                await server.wait_closed()
            else:
                # the aiotcp UDP endpoint stays, but no TCP port listens:
                # it answers the SYN with a RST (docs/wire-format.md "Ports")
                server.endpoint.core.listeners.clear()
            report["client_error"] = await error_of(asyncio.wait_for(opener(*target), 10))
            return report
        reader, writer = await asyncio.wait_for(opener(*target), 10)
        if scenario.endswith(("reset", "unread")):
            if scenario.endswith("unread"):
                await reader.readexactly(1)  # the server has paused reading
            writer.write(b"!" * 1000)
            report["client_error"] = await error_of(asyncio.wait_for(reader.read(), 10))
            await done
            return report
        if scenario.endswith("late"):
            writer.write(b"!")
            report["client_eof"] = await asyncio.wait_for(reader.read(), 10) == b""

            async def write_on():
                for _ in range(500):  # Linux and aiotcp both answer the first of these with a RST
                    writer.write(b"z" * 10_000)
                    await writer.drain()
                    await asyncio.sleep(0.01)

            report["client_error"] = await error_of(write_on())
            await done
            return report
        report["states_during"] = kernel_states(port)
        if kernel_is_server:
            conn = writer.get_extra_info("connection")
            report["handshake"] = {"aiotcp_rcv_wscale": conn.rcv_wscale, "aiotcp_snd_wscale": conn.snd_wscale,
                                   "mss": conn.info()["mss_max"], "ts_ok": conn.ts_ok, "sack_ok": conn.sack_ok,
                                   "srtt": conn.srtt}
        else:
            report["kernel_tcp_info"] = subprocess.run(["ss", "-Htin", f"( dport = :{port} )"],
                                                       capture_output=True, text=True).stdout
        await exchange(reader, writer, data_c, report, "client")
        info = writer.get_extra_info("tcp_info")
        if info:
            report["aiotcp_client_info"] = info
        writer.close()
        await asyncio.wait_for(done, 60)
        await asyncio.sleep(0.2)  # let the last ACKs cross: TIME_WAIT shows on the closer
        report["states_after"] = kernel_states(port)
        server.close()
    finally:
        report["gateway"] = dict(gateway.stats)
        report["kernel_counters"] = kernel_counters()
        gateway.close()
    return report


def kernel_counters() -> dict:
    """Linux's own TCP counters in this namespace (nstat, absolute values)."""
    names = ["TcpExtTCPSackRecovery", "TcpExtTCPTimeouts", "TcpExtTCPDSACKRecv", "TcpRetransSegs",
             "TcpExtTCPSACKReneging", "TcpExtTCPRenoRecovery", "TcpExtTCPLossProbes"]
    out = subprocess.run(["nstat", "-az", *names], capture_output=True, text=True).stdout
    counters = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in names:
            counters[parts[0]] = int(parts[1])
    return counters


async def error_of(awaitable) -> str | None:
    """The name of the exception awaiting raised, or None."""
    try:
        await awaitable
    except Exception as exc:
        return type(exc).__name__
    return None


def unread_bytes(writer) -> int:
    """Bytes received on this connection that the application has not read."""
    conn = writer.get_extra_info("connection")
    if conn is not None:  # aiotcp
        return conn.read_buffered
    buf = array.array("i", [0])
    fcntl.ioctl(writer.get_extra_info("socket").fileno(), termios.FIONREAD, buf)
    return buf[0]


async def wait_for(predicate, timeout=10.0):
    """Poll an outside condition (a kernel socket's state) until it holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def close_order(topology: str, initiator: str):
    """Half-close from ``initiator`` ("client" or "server"), then from the
    other side; record both stacks' states at each step."""
    loop = asyncio.get_running_loop()
    gateway = Gateway(kernel_ip=KERNEL_IP, virtual_ip=VIRTUAL_IP)
    gateway.configure()
    gateway.start(loop)
    port = gateway.address[1]
    accepted = loop.create_future()
    kernel_is_server = topology == "aiotcp-client"

    async def on_accept(reader, writer):
        accepted.set_result((reader, writer))

    if kernel_is_server:
        server = await asyncio.start_server(on_accept, KERNEL_IP, 0)  # a TCP port of its own, as above
        port = server.sockets[0].getsockname()[1]
        creader, cwriter = await aiotcp.open_connection(*gateway.address, tcp_port=port)
    else:
        server = await aiotcp.start_server(on_accept, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        creader, cwriter = await asyncio.open_connection(VIRTUAL_IP, port)
    sreader, swriter = await accepted
    sides = {"client": (creader, cwriter), "server": (sreader, swriter)}
    aiotcp_side = "client" if kernel_is_server else "server"
    conn = sides[aiotcp_side][1].get_extra_info("connection")
    other = "server" if initiator == "client" else "client"

    # the kernel's end of this one connection: other tests in the namespace
    # leave TIME-WAIT sockets, and one may share a port number with it
    if kernel_is_server:
        kernel_local, kernel_remote = port, conn.local_port
    else:
        kernel_local, kernel_remote = cwriter.get_extra_info("sockname")[1], port

    def kernel_state():
        found = [s for s in kernel_states(kernel_local, kernel_remote) if s != "LISTEN"]
        return found[0] if found else "CLOSED"

    steps = []
    sides[initiator][1].write_eof()
    assert await sides[other][0].read() == b""
    await wait_for(lambda: kernel_state() in ("FIN-WAIT-2", "CLOSE-WAIT")
                   and str(conn.state) in ("FIN_WAIT_2", "CLOSE_WAIT"))
    steps.append({"aiotcp": str(conn.state), "kernel": kernel_state()})
    sides[other][1].write_eof()
    assert await sides[initiator][0].read() == b""
    await wait_for(lambda: kernel_state() in ("TIME-WAIT", "CLOSED") and str(conn.state) in ("TIME_WAIT", "CLOSED"))
    steps.append({"aiotcp": str(conn.state), "kernel": kernel_state()})
    for _, writer in sides.values():
        writer.close()
    server.close()
    gateway.close()
    return {"scenario": f"close-{topology}-{initiator}", "steps": steps}


if __name__ == "__main__":
    scenario, size, d1, d2, seed = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    import logging

    logging.basicConfig(level=logging.WARNING)
    if scenario.startswith("close-"):
        initiator = scenario.rsplit("-", 1)[1]
        topology = scenario[len("close-"):-(len(initiator) + 1)]
        result = asyncio.run(asyncio.wait_for(close_order(topology, initiator), 60))
    else:
        result = asyncio.run(asyncio.wait_for(main(scenario, size, d1, d2, seed), 240))
    print(json.dumps(result, default=str))
