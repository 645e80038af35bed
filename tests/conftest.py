import asyncio
import os
import random

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


def pytest_asyncio_loop_factories(config, item):
    """Every asyncio test runs on the default loop and on uvloop."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
