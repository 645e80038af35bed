import asyncio
import functools
import inspect
import io
import os
import random
import ssl
import subprocess

import pytest
import uvloop


def pytest_report_header(config):
    import aiotcp

    return [f"aiotcp compiled extension: {aiotcp._fast.__file__}"]


@pytest.fixture
def seeded_rng(request):
    """A random.Random seeded from AIOTCP_SEED or a fresh seed, printed so a
    failing run can be replayed."""
    seed = int(os.environ.get("AIOTCP_SEED", random.randrange(2**32)))
    print(f"\n[{request.node.name}] seed={seed} (replay with AIOTCP_SEED={seed})")
    return random.Random(seed)


#: an asyncio test still running after this many seconds has hung: it is
#: cancelled and fails with the stacks of its loop's tasks, instead of
#: holding the whole run until CI's limit.  No test comes near it: it is
#: a guard against a hang, never a timing assertion.
HANG_LIMIT = float(os.environ.get("AIOTCP_HANG_LIMIT", 180))


def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("asyncio") is not None and inspect.iscoroutinefunction(getattr(item, "obj", None)):
            item.obj = _hang_guarded(item.obj)


def _hang_guarded(test):
    @functools.wraps(test)
    async def guarded(*args, **kwargs):
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        stacks = []
        handles = []

        def hung():
            if not stacks:
                for each in asyncio.all_tasks(loop):
                    out = io.StringIO()
                    each.print_stack(file=out)
                    stacks.append(out.getvalue())
            task.cancel()
            handles.append(loop.call_later(min(10.0, HANG_LIMIT), hung))  # a finally clause that hangs again

        handles.append(loop.call_later(HANG_LIMIT, hung))
        try:
            return await test(*args, **kwargs)
        except asyncio.CancelledError:
            if stacks:
                pytest.fail(f"hung: still running after {HANG_LIMIT:g} s; its loop's tasks were:\n"
                            + "".join(stacks), pytrace=False)
            raise
        finally:
            for handle in handles:
                handle.cancel()
    return guarded


def pytest_asyncio_loop_factories(config, item):
    """Every asyncio test runs on the default loop and on uvloop."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """A self-signed certificate for localhost and 127.0.0.1 (its own CA)
    and its key: (cert path, key path)."""
    directory = tmp_path_factory.mktemp("tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return str(cert), str(key)


@pytest.fixture(scope="session")
def tls_contexts(tls_files):
    cert, key = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    return server_ctx, client_ctx
