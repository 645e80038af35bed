"""aiotcp is silent unless the application configures logging, and then
its events arrive as standard ``logging`` records of the logger ``aiotcp``."""
import logging
import subprocess
import sys
import textwrap

import aiotcp
from aiotcp.aio import log

APP = textwrap.dedent("""
    import asyncio, sys
    import aiotcp

    async def handle(reader, writer):
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    async def main():
        server = await aiotcp.start_server(handle, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await aiotcp.open_connection("127.0.0.1", port)
            writer.write(b"ping")
            assert await reader.read() == b"ping"
            writer.close()
            await writer.wait_closed()
            # a reset too, which is logged at INFO
            reader, writer = await aiotcp.open_connection("127.0.0.1", port)
            writer.transport.reset()

    asyncio.run(main())
    sys.stderr.write("done\\n")
""")


def test_an_application_that_configures_nothing_hears_nothing():
    result = subprocess.run([sys.executable, "-c", APP], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == "done\n"


def test_events_are_records_of_the_aiotcp_logger(caplog):
    caplog.set_level(logging.DEBUG, logger="aiotcp")
    log.get_logger(local_port=1).debug("aiotcp.test.event", value=3)
    (record,) = [r for r in caplog.records if r.name == "aiotcp"]
    assert record.levelno == logging.DEBUG
    assert record.getMessage() == "aiotcp.test.event local_port=1 value=3"
    assert record.aiotcp == {"event": "aiotcp.test.event", "local_port": 1, "value": 3}


def test_debug_events_cost_nothing_when_nobody_listens(caplog):
    caplog.set_level(logging.WARNING, logger="aiotcp")
    assert not log.debug_enabled()
    log.get_logger().debug("aiotcp.test.quiet")
    assert not [r for r in caplog.records if r.name == "aiotcp"]
    caplog.set_level(logging.DEBUG, logger="aiotcp")
    assert log.debug_enabled()


def test_exceptions_keep_their_traceback(caplog):
    try:
        raise ValueError("boom")
    except ValueError:
        log.get_logger().exception("aiotcp.test.failed", detail="x")
    (record,) = [r for r in caplog.records if r.name == "aiotcp"]
    assert record.levelno == logging.ERROR and record.exc_info[0] is ValueError


def test_the_package_never_configures_logging():
    assert aiotcp  # imported
    assert logging.getLogger("aiotcp").handlers == []
