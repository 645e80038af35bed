"""The suite's own machinery (conftest.py): an asyncio test that hangs fails
with its loop's tasks' stacks instead of holding the run."""
import os
import subprocess
import sys
import textwrap


def test_a_hung_asyncio_test_fails_with_its_tasks_stacks(tmp_path):
    (tmp_path / "test_hangs.py").write_text(textwrap.dedent('''
        import asyncio
        import pytest

        pytestmark = pytest.mark.asyncio

        async def never_answered(future):
            await future

        async def test_hangs():
            loop = asyncio.get_running_loop()
            waiter = asyncio.ensure_future(never_answered(loop.create_future()))
            try:
                await loop.create_future()
            finally:
                await asyncio.shield(waiter)  # hangs again: cancelled once more

        async def test_passes():
            await asyncio.sleep(0)
    '''))
    here = os.path.dirname(__file__)
    env = dict(os.environ, AIOTCP_HANG_LIMIT="0.5", PYTHONPATH=here + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
                             "--rootdir", str(tmp_path), str(tmp_path / "test_hangs.py")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    print(result.stdout[-3000:], result.stderr[-2000:])
    assert result.returncode == 1
    assert "2 failed, 2 passed" in result.stdout  # test_hangs on both loops
    assert "hung: still running after 0.5 s" in result.stdout
    assert "in never_answered" in result.stdout  # the other task's stack is shown
