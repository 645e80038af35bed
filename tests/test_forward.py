"""The tunnel (``python -m aiotcp forward``) with real programs: the
forwarders run as their own processes, on both loops; curl downloads from
``python -m http.server`` through them, directly and through
``python -m aiotcp relay`` with loss, duplication and reordering both ways;
kernel TCP clients and targets (asyncio over kernel sockets) check the
half-close, the resets, a refused target, a target that never reads, a
client that vanishes, TLS, the pre-shared key, the config file, the
counters and the graceful shutdown."""
import asyncio
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import struct
import sys

import pytest

import aiotcp
import aiotcp.forward as forward

MiB = 1 << 20
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOOPS = ("uvloop", "asyncio")


class Process:
    """A ``python -m aiotcp`` command running beside the test."""

    #: every one started, so that a test that fails before stopping its
    #: processes does not leave them running (_no_process_outlives_its_test)
    started: list = []

    def __init__(self, process, line: str, log_path: str):
        self.process = process
        self.line = line
        self.log_path = log_path

    @classmethod
    async def start(cls, tmp_path, *argv) -> "Process":
        log_path = str(tmp_path / f"{argv[0]}-{argv[1] if len(argv) > 1 else ''}-{random.randrange(1 << 30)}.log")
        with open(log_path, "wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "aiotcp", *argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=log)
        cls.started.append(process)
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert line, open(log_path).read()
        return cls(process, line, log_path)

    def log(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def address(self, pattern: str) -> tuple:
        match = re.search(pattern, self.line)
        assert match, self.line
        return match.group(1), int(match.group(2))

    async def stop(self, sig=signal.SIGTERM, timeout=30) -> int:
        if self.process.returncode is None:
            self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), timeout)

    def rss(self) -> int:
        """Resident memory, bytes."""
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")


async def tunnel(tmp_path, target, *, loop="uvloop", server_args=(), client_args=(), via=None):
    """A forward server towards ``target`` and a client towards it (or
    towards ``via``, a function of the server's UDP address giving the
    address to use instead, e.g. a relay's).  Returns (server, client,
    the client's kernel address)."""
    server = await Process.start(tmp_path, "forward", "server", "--listen", "127.0.0.1:0", "--target",
                                 f"{target[0]}:{target[1]}", "--loop", loop, *server_args)
    udp = server.address(r"udp ([\d.]+):(\d+)")
    to = udp if via is None else await via(udp)
    client = await Process.start(tmp_path, "forward", "client", "--listen", "127.0.0.1:0", "--server",
                                 f"{to[0]}:{to[1]}", "--tcp-port", str(udp[1]), "--loop", loop, *client_args)
    return server, client, client.address(r"client: ([\d.]+):(\d+)")


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test():
    yield
    for process in Process.started:
        if process.returncode is None:
            try:
                os.kill(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    Process.started.clear()


async def stop_all(*processes, expect=0):
    codes = [await p.stop() for p in processes]
    assert codes == [expect] * len(processes), (codes, [p.log()[-2000:] for p in processes])


def blob(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rst_close(writer) -> None:
    """Close a kernel socket with a RST (SO_LINGER 0)."""
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# -------------------------------------------------------------- curl, http.server

@pytest.fixture(scope="module")
def http_server(tmp_path_factory):
    """``python -m http.server`` serving one 16 MiB file."""
    directory = tmp_path_factory.mktemp("www")
    data = blob(16 * MiB, 7)
    (directory / "big.bin").write_bytes(data)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    import subprocess
    process = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                               cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            import time
            time.sleep(0.1)  # a separate program starting: nothing to wait on but its port
    yield ("127.0.0.1", port), sha(data)
    process.terminate()
    process.wait()


async def curl_eight(address, tmp_path) -> list:
    outputs = [tmp_path / f"out{i}" for i in range(8)]
    processes = [await asyncio.create_subprocess_exec(
        "curl", "-sS", "--max-time", "120", "-o", str(out), f"http://{address[0]}:{address[1]}/big.bin")
        for out in outputs]
    codes = [await p.wait() for p in processes]
    assert codes == [0] * 8
    return [sha(out.read_bytes()) for out in outputs]


@pytest.mark.asyncio
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("loop", LOOPS)
async def test_curl_downloads_through_the_tunnel(http_server, tmp_path, loop):
    target, digest = http_server
    server, client, address = await tunnel(tmp_path, target, loop=loop)
    assert await curl_eight(address, tmp_path) == [digest] * 8
    await stop_all(client, server)
    assert "bytes_down=" in client.log() and "connections=8" in client.log()


@pytest.mark.asyncio
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("loop", LOOPS)
async def test_curl_downloads_through_a_lossy_relay(http_server, tmp_path, loop, seeded_rng):
    """2% loss, 2% duplication and 2% reordering, both ways."""
    target, digest = http_server
    relays = []

    async def via(udp):
        relay = await Process.start(tmp_path, "relay", "--listen", "127.0.0.1:0", "--to", f"{udp[0]}:{udp[1]}",
                                    "--loss", "0.02", "--duplicate", "0.02", "--reorder", "0.02",
                                    "--seed", str(seeded_rng.randrange(1 << 30)))
        relays.append(relay)
        return relay.address(r"relay: ([\d.]+):(\d+)")

    server, client, address = await tunnel(tmp_path, target, loop=loop, via=via)
    assert await curl_eight(address, tmp_path) == [digest] * 8
    await stop_all(client, server)
    await relays[0].stop()
    last = [line for line in server.log().splitlines() if "aiotcp.forward.counters" in line][-1]
    counters = dict(re.findall(r"(\w+)=(\d+)", last))
    assert int(counters["retransmissions"]) > 0, server.log()[-1000:]  # the loss was real


# ---------------------------------------------------------- kernel peers

class Target:
    """A kernel TCP server in the test process running ``handler``."""

    def __init__(self, handler):
        self.handler = handler
        self.done = asyncio.get_running_loop().create_future()
        self.server = None

    async def _handle(self, reader, writer):
        try:
            result = await self.handler(reader, writer)
            if not self.done.done():
                self.done.set_result(result)
        except Exception as exc:  # the test reads it
            if not self.done.done():
                self.done.set_result(exc)

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    @property
    def address(self):
        return self.server.sockets[0].getsockname()


@pytest.mark.asyncio
@pytest.mark.parametrize("loop", LOOPS)
async def test_a_half_close_crosses_and_the_answer_comes_back(tmp_path, loop):
    """The kernel client sends 4 MiB and shuts down its sending side; the
    target reads to the EOF and only then answers with the digest."""
    async def digest_after_eof(reader, writer):
        data = await reader.read()  # to the EOF: the client's half-close, carried
        writer.write(hashlib.sha256(data).digest())
        await writer.drain()
        writer.close()
        return len(data)

    data = blob(4 * MiB, 11)
    async with Target(digest_after_eof) as target:
        server, client, address = await tunnel(tmp_path, target.address, loop=loop)
        reader, writer = await asyncio.open_connection(*address)
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        answer = await asyncio.wait_for(reader.read(), 60)
        assert answer == hashlib.sha256(data).digest()
        assert await asyncio.wait_for(target.done, 10) == len(data)
        writer.close()
    await stop_all(client, server)


@pytest.mark.asyncio
@pytest.mark.parametrize("loop", LOOPS)
async def test_a_reset_from_the_client_resets_the_target(tmp_path, loop):
    async def wait_for_reset(reader, writer):
        assert await reader.readexactly(5) == b"hello"
        writer.write(b"ready")
        return await reader.read()  # raises ConnectionResetError

    async with Target(wait_for_reset) as target:
        server, client, address = await tunnel(tmp_path, target.address, loop=loop)
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"hello")
        assert await asyncio.wait_for(reader.readexactly(5), 30) == b"ready"
        rst_close(writer)
        assert isinstance(await asyncio.wait_for(target.done, 30), ConnectionResetError)
    await stop_all(client, server)


@pytest.mark.asyncio
@pytest.mark.parametrize("loop", LOOPS)
async def test_a_reset_from_the_target_resets_the_client(tmp_path, loop):
    async def reset_after_hello(reader, writer):
        assert await reader.readexactly(5) == b"hello"
        writer.write(b"part of an answer")
        await writer.drain()
        rst_close(writer)
        return True

    async with Target(reset_after_hello) as target:
        server, client, address = await tunnel(tmp_path, target.address, loop=loop)
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"hello")
        with pytest.raises(ConnectionResetError):
            while await asyncio.wait_for(reader.read(1 << 16), 30):
                pass
        writer.close()
    await stop_all(client, server)


async def _read_until_reset(address):
    """Connect a kernel TCP client to ``address`` and read until the end.
    The forwarder accepts at once and a refusal comes back within a
    millisecond, so the reset can reach the client before its loop has
    seen the connection complete: then connect() itself raises it."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("loop", LOOPS)
async def test_a_refused_target_resets_the_client_at_once(tmp_path, loop):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    nothing = sock.getsockname()  # bound, not listening: connecting is refused
    server, client, address = await tunnel(tmp_path, nothing, loop=loop)

    with pytest.raises(ConnectionResetError):
        await _read_until_reset(address)
    sock.close()
    await stop_all(client, server)
    assert "target_failed" in server.log() and "refused=1" in server.log()


@pytest.mark.asyncio
@pytest.mark.parametrize("loop", LOOPS)
async def test_a_target_that_never_reads_blocks_the_writer_with_bounded_memory(tmp_path, loop):
    """Backpressure end to end: the kernel client can hand over only what
    the buffers along the way hold (the target's kernel socket, the
    server's stream and aiotcp buffers, the window, the client's), and
    neither forwarder's memory grows with what the client tries to send."""
    stalled = asyncio.Event()

    async def never_read(reader, writer):
        await stalled.wait()
        writer.close()
        return True

    async with Target(never_read) as target:
        server, client, address = await tunnel(tmp_path, target.address, loop=loop)
        before = server.rss(), client.rss()
        reader, writer = await asyncio.open_connection(*address)
        writer.transport.set_write_buffer_limits(high=1 << 16)
        chunk, offered = bytes(1 << 16), 0
        while offered < 256 * MiB:
            writer.write(chunk)
            offered += len(chunk)
            try:
                await asyncio.wait_for(writer.drain(), 5)
            except asyncio.TimeoutError:
                break  # the whole path is full: the writer is blocked
        accepted = offered - writer.transport.get_write_buffer_size()
        assert accepted < 64 * MiB, accepted  # not the 256 MiB it tried
        after = server.rss(), client.rss()
        for b, a in zip(before, after):
            assert a - b < 48 * MiB, (before, after, accepted)
        stalled.set()
        rst_close(writer)
    await stop_all(client, server)


@pytest.mark.asyncio
@pytest.mark.parametrize("loop", LOOPS)
async def test_a_kernel_client_that_vanishes_mid_download_frees_the_target(tmp_path, loop):
    """The kernel client is a process killed while data it has not read
    waits for it: its kernel resets the connection, the tunnel carries it,
    the target's writes fail."""
    async def endless(reader, writer):
        chunk = bytes(1 << 16)
        while True:
            writer.write(chunk)
            await writer.drain()  # raises once the reset arrives

    async with Target(endless) as target:
        server, client, address = await tunnel(tmp_path, target.address, loop=loop)
        program = ("import socket, sys, time\n"
                   f"s = socket.create_connection(('{address[0]}', {address[1]}))\n"
                   "s.recv(1 << 16)\nprint('reading', flush=True)\ntime.sleep(60)\n")
        kernel_client = await asyncio.create_subprocess_exec(sys.executable, "-c", program,
                                                             stdout=asyncio.subprocess.PIPE)
        assert await asyncio.wait_for(kernel_client.stdout.readline(), 30) == b"reading\n"
        kernel_client.kill()
        await kernel_client.wait()
        assert isinstance(await asyncio.wait_for(target.done, 30), (ConnectionResetError, BrokenPipeError))
    await stop_all(client, server)


@pytest.mark.asyncio
async def test_a_forward_client_that_vanishes_is_found_by_keepalive(tmp_path):
    """The forward client process is killed (SIGKILL: no RST, no FIN, the
    UDP flow simply stops); the server's keepalive (--keepalive 1) finds
    the aiotcp peer gone and resets the target's connection."""
    arrived = asyncio.Event()

    async def idle(reader, writer):
        first = await reader.readexactly(1)
        arrived.set()
        try:
            return first + await reader.read()  # EOF or a reset: either ends it
        except ConnectionResetError as exc:
            return exc

    async with Target(idle) as target:
        server, client, address = await tunnel(tmp_path, target.address, server_args=("--keepalive", "1"))
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"x")
        await asyncio.wait_for(arrived.wait(), 30)
        assert await client.stop(signal.SIGKILL) == -signal.SIGKILL
        result = await asyncio.wait_for(target.done, 30)
        assert result == b"x" or isinstance(result, ConnectionResetError), result
        writer.close()
    await stop_all(server)
    assert "resets=1" in server.log() or "reset" in server.log()


# ------------------------------------------------------------ security

async def echo_round(address, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(*address)
    writer.write(data)
    writer.write_eof()
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    return answer


async def echo(reader, writer):
    while data := await reader.read(1 << 16):
        writer.write(data)
        await writer.drain()
    writer.close()
    return True


@pytest.mark.asyncio
@pytest.mark.parametrize("loop", LOOPS)
async def test_tls_with_client_certificates(tmp_path, loop, tls_files):
    """The aiotcp connection runs TLS; the server requires a client
    certificate its CA verifies, and a client without one is refused.
    A half-close crosses the TLS tunnel too (close_notify, then FIN)."""
    cert, key = tls_files
    data = blob(1 * MiB, 17)
    async with Target(echo) as target:
        server, client, address = await tunnel(
            tmp_path, target.address, loop=loop,
            server_args=("--tls", "--cert", cert, "--key", key, "--ca", cert, "--require-client-cert"),
            client_args=("--tls", "--ca", cert, "--cert", cert, "--key", key, "--server-name", "localhost"))
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"over TLS")
        assert await asyncio.wait_for(reader.readexactly(8), 30) == b"over TLS"
        writer.close()
        assert sha(await echo_round(address, data)) == sha(data)
        udp = server.address(r"udp ([\d.]+):(\d+)")
        anonymous = await Process.start(tmp_path, "forward", "client", "--listen", "127.0.0.1:0", "--server",
                                        f"{udp[0]}:{udp[1]}", "--tls", "--ca", cert, "--server-name", "localhost",
                                        "--loop", loop)
        reader, writer = await asyncio.open_connection(*anonymous.address(r"client: ([\d.]+):(\d+)"))
        writer.write(b"no certificate")
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 30)
        writer.close()
    await stop_all(anonymous, client, server)
    assert "unauthenticated" not in server.log() + client.log()


@pytest.mark.asyncio
@pytest.mark.parametrize("loop", LOOPS)
async def test_a_preshared_key_admits_its_holders_only(tmp_path, loop):
    good, bad = tmp_path / "good.key", tmp_path / "bad.key"
    good.write_text("correct horse battery staple\n")
    bad.write_text("incorrect horse battery staple\n")
    data = blob(1 * MiB, 13)
    async with Target(echo) as target:
        server, client, address = await tunnel(tmp_path, target.address, loop=loop,
                                               server_args=("--psk-file", str(good)),
                                               client_args=("--psk-file", str(good)))
        assert sha(await echo_round(address, data)) == sha(data)  # a half-close works with a PSK
        udp = server.address(r"udp ([\d.]+):(\d+)")
        wrong = await Process.start(tmp_path, "forward", "client", "--listen", "127.0.0.1:0", "--server",
                                    f"{udp[0]}:{udp[1]}", "--psk-file", str(bad), "--loop", loop)
        with pytest.raises(ConnectionResetError):
            await _read_until_reset(wrong.address(r"client: ([\d.]+):(\d+)"))
    await stop_all(wrong, client, server)
    assert "auth_failed" in server.log() and "auth_failed" in wrong.log()
    assert "unauthenticated" not in server.log()


def test_a_preshared_key_must_be_long_enough():
    with pytest.raises(ValueError):
        forward.PresharedKey(b"short")


@pytest.mark.asyncio
async def test_without_authentication_both_sides_warn(tmp_path):
    async with Target(echo) as target:
        server, client, address = await tunnel(tmp_path, target.address)
        assert await echo_round(address, b"plain") == b"plain"
    await stop_all(client, server)
    for process in (server, client):
        assert "WARNING aiotcp.forward.unauthenticated" in process.log()


# ------------------------------------------------------------ operations

@pytest.mark.asyncio
async def test_a_config_file_with_several_mappings(tmp_path):
    """Two targets behind one server UDP port, told apart by TCP port; the
    client's two listeners share one UDP socket (one NAT binding)."""
    async def hello_a(reader, writer):
        writer.write(b"A")
        writer.close()
        return True

    async def hello_b(reader, writer):
        writer.write(b"B")
        writer.close()
        return True

    async with Target(hello_a) as a, Target(hello_b) as b:
        server_toml = tmp_path / "server.toml"
        server_toml.write_text(f'listen = "127.0.0.1:0"\nmap = ["7001=127.0.0.1:{a.address[1]}", '
                               f'"7002=127.0.0.1:{b.address[1]}"]\nstats-interval = 0\n')
        server = await Process.start(tmp_path, "forward", "server", "--config", str(server_toml))
        udp = server.address(r"udp ([\d.]+):(\d+)")
        client_toml = tmp_path / "client.toml"
        client_toml.write_text(f'server = "127.0.0.1:{udp[1]}"\nmap = ["127.0.0.1:0=7001", "127.0.0.1:0=7002"]\n'
                               'loop = "asyncio"\n')
        client = await Process.start(tmp_path, "forward", "client", "--config", str(client_toml))
        first, second = re.findall(r"([\d.]+):(\d+) -> ", client.line)
        for (host, port), expected in ((first, b"A"), (second, b"B"), (first, b"A")):
            reader, writer = await asyncio.open_connection(host, int(port))
            assert await asyncio.wait_for(reader.read(), 30) == expected
            writer.close()
    await stop_all(client, server)
    assert "connections=3" in client.log()


@pytest.mark.parametrize("argv, why", [
    (["forward", "server", "--target", "127.0.0.1:1"], "--listen"),
    (["forward", "client", "--listen", "127.0.0.1:0"], "--server"),
    (["forward", "server", "--listen", "127.0.0.1:0", "--map", "nonsense"], "TCPPORT=HOST:PORT"),
    (["forward", "client", "--server", "x:1"], "--listen"),
])
def test_usage_errors_exit_2_and_say_why(argv, why, capsys):
    from aiotcp.__main__ import main
    assert main(argv) == forward.EXIT_USAGE
    assert why in capsys.readouterr().err


def test_an_address_in_use_exits_3(capsys):
    from aiotcp.__main__ import main
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        code = main(["forward", "server", "--listen", f"127.0.0.1:{sock.getsockname()[1]}", "--target",
                     "127.0.0.1:1", "--loop", "asyncio"])
    finally:
        sock.close()
    assert code == forward.EXIT_CANNOT_START and "cannot start" in capsys.readouterr().err


@pytest.mark.asyncio
async def test_counters_on_sigusr1_and_a_graceful_shutdown(tmp_path):
    """SIGUSR1 logs the counters; SIGTERM stops accepting, lets the open
    connection finish its transfer, exits 0."""
    release, arrived = asyncio.Event(), asyncio.Event()

    async def slow_answer(reader, writer):
        await reader.readexactly(1)
        arrived.set()  # so the client's pair is running
        await release.wait()
        writer.write(blob(2 * MiB, 17))
        await writer.drain()
        writer.close()
        return True

    async with Target(slow_answer) as target:
        server, client, address = await tunnel(tmp_path, target.address)
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"?")
        await writer.drain()
        await asyncio.wait_for(arrived.wait(), 30)
        client.process.send_signal(signal.SIGUSR1)
        counters = r"aiotcp.forward.counters side='client' connections=1 active=1 .*\n"
        for _ in range(300):
            if re.search(counters, client.log()):
                break
            await asyncio.sleep(0.1)  # another process's log: polled
        assert re.search(counters, client.log())
        client.process.send_signal(signal.SIGTERM)
        for _ in range(300):
            if "aiotcp.forward.stopping" in client.log():
                break
            await asyncio.sleep(0.1)
        with pytest.raises(OSError):  # no longer accepting
            await asyncio.open_connection(*address)
        release.set()
        data = await asyncio.wait_for(reader.read(), 60)
        assert sha(data) == sha(blob(2 * MiB, 17))  # the open connection finished
        writer.close()
        assert await asyncio.wait_for(client.process.wait(), 30) == forward.EXIT_OK
    await stop_all(server)


@pytest.mark.asyncio
async def test_connections_left_after_the_grace_period_are_reset_exit_4(tmp_path):
    async def hold(reader, writer):
        await reader.readexactly(1)
        writer.write(b"y")
        return await reader.read()

    async with Target(hold) as target:
        server, client, address = await tunnel(tmp_path, target.address, client_args=("--grace", "0.5"))
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"x")
        assert await asyncio.wait_for(reader.readexactly(1), 30) == b"y"  # through to the target
        assert await client.stop() == forward.EXIT_RESET
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(), 30)
        writer.close()
    await stop_all(server)


# --------------------------------------------------------- the library API

@pytest.mark.asyncio
async def test_the_library_api_in_one_process():
    """serve_server and serve_client, what the command line wraps, on the
    test's own loop (both loops)."""
    async def upper_after_eof(reader, writer):
        data = await reader.read()
        writer.write(data.upper())
        writer.close()
        return True

    async with Target(upper_after_eof) as target:
        server = await forward.serve_server(("127.0.0.1", 0), {None: target.address})
        client = await forward.serve_client(("127.0.0.1", server.address[1]), [(("127.0.0.1", 0), server.address[1])])
        assert await echo_round(client.addresses[0], b"shout") == b"SHOUT"
        counters = client.counters()
        assert counters["connections"] == 1 and counters["bytes_up"] == 5 and counters["bytes_down"] == 5
        assert await client.shutdown(5.0) == 0 and await server.shutdown(5.0) == 0


# -------------------------------------------------------------- workers

async def _echo(reader, writer):
    writer.write(await reader.readexactly(4))
    await writer.drain()
    writer.close()


async def _echo_through(address, count: int) -> None:
    """``count`` aiotcp connections, each from its own UDP socket (so its
    own flow), each echoed by the target."""
    async def one(i):
        reader, writer = await aiotcp.open_connection(*address)
        writer.write(struct.pack("!I", i))
        assert await asyncio.wait_for(reader.readexactly(4), 30) == struct.pack("!I", i)
        writer.close()
        await writer.wait_closed()
    await asyncio.gather(*(one(i) for i in range(count)))


def _worker_counters(log: str) -> dict:
    """The last counters each worker logged: worker -> connections."""
    return {int(w): int(c) for w, c in
            re.findall(r"aiotcp.forward.counters side='server' worker=(\d+) connections=(\d+)", log)}


async def _counters_of_workers(server, workers: int) -> dict:
    server.process.send_signal(signal.SIGUSR1)  # the supervisor passes it on
    for _ in range(300):
        if len(_worker_counters(server.log())) == workers:
            break
        await asyncio.sleep(0.1)  # other processes' log: polled
    return _worker_counters(server.log())


def _children(pid: int) -> list:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


@pytest.mark.asyncio
async def test_workers_share_one_udp_port_and_a_dead_worker_is_replaced(tmp_path):
    """--workers 2: two processes on one UDP port (SO_REUSEPORT); the
    kernel spreads the flows over both; a worker killed is started again
    and new connections work; SIGTERM stops them all, exit 0."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    async with Target(_echo) as target:
        server = await Process.start(tmp_path, "forward", "server", "--listen", f"127.0.0.1:{port}", "--target",
                                     f"{target.address[0]}:{target.address[1]}", "--workers", "2")
        second = (await asyncio.wait_for(server.process.stdout.readline(), 30)).decode()
        assert sorted(re.findall(r"worker (\d)", server.line + second)) == ["0", "1"], (server.line, second)
        await _echo_through(("127.0.0.1", port), 24)
        counters = await _counters_of_workers(server, 2)
        assert sum(counters.values()) == 24 and min(counters.values()) > 0, counters  # 2**-23 odds of one worker
        workers = _children(server.process.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        again = (await asyncio.wait_for(server.process.stdout.readline(), 30)).decode()
        assert "worker" in again and "aiotcp.forward.worker_exited" in server.log()
        assert len(_children(server.process.pid)) == 2
        await _echo_through(("127.0.0.1", port), 8)
        assert await server.stop() == forward.EXIT_OK
    assert not os.path.exists(f"/proc/{workers[1]}")  # the workers stopped with it


def test_workers_need_a_fixed_port(capsys):
    from aiotcp.__main__ import main
    assert main(["forward", "server", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1",
                 "--workers", "2"]) == forward.EXIT_USAGE
    assert "fixed --listen port" in capsys.readouterr().err
