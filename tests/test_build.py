"""The build a newcomer meets through `make`: one line a step, the tools'
output in a log file that a failure names."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def checkout(tmp_path):
    """A copy of the source tree (compiled files included, so only what a
    test touches is rebuilt) sharing this checkout's virtual environment."""
    if not (ROOT / ".venv" / ".installed").exists() or shutil.which("make") is None:
        pytest.skip("needs the virtual environment that make builds, and make")
    copy = tmp_path / "aiotcp"
    shutil.copytree(ROOT, copy, symlinks=True,
                    ignore=shutil.ignore_patterns(".venv", ".git", "*.pcap", ".pytest_cache"))
    (copy / ".venv").symlink_to(ROOT / ".venv")
    # everything built, a minute ago (make compares modification times)
    past = os.stat(ROOT / ".venv" / ".installed").st_mtime + 1
    for path in [*copy.glob("aiotcp/**/*.so"), *copy.glob("aiotcp/**/*.c"), copy / "aiotcp" / ".built"]:
        os.utime(path, (past, past))
    return copy


def make(checkout, target):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(["make", target], cwd=checkout, capture_output=True, text=True, env=env, timeout=600)


def test_a_build_says_one_line_and_keeps_the_compiler_quiet(checkout):
    (checkout / "aiotcp" / "aio" / "udp.py").touch()  # a module no other cimports: one to compile
    result = make(checkout, "aiotcp/.built")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "building the compiled core (about a minute)\n"
    assert result.stderr == ""
    assert (checkout / "build.log").exists()


def test_a_failed_build_names_its_log(checkout):
    source = checkout / "aiotcp" / "aio" / "udp.py"
    source.write_text(source.read_text() + "\ndef broken(:\n")
    result = make(checkout, "aiotcp/.built")
    assert result.returncode != 0
    log = checkout / "build.log"
    assert f"build failed: the full log is {log}" in result.stdout
    assert "udp.py" in log.read_text()
