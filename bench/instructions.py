"""The user-space instructions one connection costs, aiotcp against kernel
TCP, counted by valgrind (callgrind): a figure this shared, noisy machine
cannot blur, for telling a change to the connection's path apart from the
noise that the timed figures (bench/separate.py) carry.

Client and server run in one process on uvloop: bench/bench.py's
connection rate (open, one byte each way, close, one connection after
another).  The
count for N connections less the count for M, over N - M, is the cost of
one connection with the start-up (imports, the first connection's caches)
taken out.  Only user-space instructions are counted: the system calls'
own work (and kernel TCP's whole protocol) is not, so the ratio is the
share of the gap that is aiotcp's Python and C, not a prediction of the
rate.  Also printed: system calls per connection (strace -c), which carry
the part the count leaves out.

    python bench/instructions.py [--connections 600] [--warm 100] [--top 25] [--timed 5000]

``--top N`` lists the N compiled aiotcp functions with the most
instructions per connection (inclusive; a Python-level function is not
seen by valgrind, only the compiled code and the interpreter under it).
``--timed N`` also times N connections of each stack in one process
without valgrind (CPU per connection and the rate): no wakeup of another
process in it, so it shows the code's share of the separate-process gap.
Needs valgrind (and strace for the system calls); takes about a minute.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


# ------------------------------------------------------------ the workload

async def _connections(stack: str, count: int, timed: int = 0) -> None:
    """bench/bench.py's connection rate: ``count`` connections, then
    ``timed`` more, timed (CPU and wall clock per connection)."""
    from bench import connect_rate  # bench/bench.py, beside this file

    await connect_rate(stack, count)
    if timed:
        cpu = time.process_time()
        rate = await connect_rate(stack, timed)
        print(f"{(time.process_time() - cpu) / timed * 1e6:.1f} {rate:.1f}", flush=True)


def _run(stack: str, count: int, timed: int = 0) -> None:
    import uvloop
    sys.path.insert(0, ROOT)
    uvloop.run(_connections(stack, count, timed))


def _timed(stack: str, warm: int, count: int) -> tuple:
    """(CPU us per connection, connections/s) of ``count`` connections
    after ``warm``, client and server in one process, no valgrind."""
    out = subprocess.run([*_child(stack, warm), str(count)], capture_output=True, text=True, check=True).stdout
    cpu, rate = out.split()
    return float(cpu), float(rate)


# ------------------------------------------------------------ counting

def _child(stack: str, count: int) -> list:
    return [sys.executable, os.path.abspath(__file__), "--child", stack, str(count)]


def _instructions(stack: str, count: int, out: str) -> int:
    result = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                             *_child(stack, count)], capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(f"no count from valgrind: {result.stderr[-500:]}")
    return int(found.group(1))


def _syscalls(stack: str, count: int, out: str) -> int:
    subprocess.run(["strace", "-f", "-c", "-o", out, *_child(stack, count)], capture_output=True, check=True)
    with open(out) as f:
        for line in f:
            fields = line.split()
            if fields and fields[-1] == "total":
                return int(fields[3])
    raise RuntimeError(f"no total in {out}")


def _demangle(module: str, name: str) -> str:
    """Cython's C name of a function, less its module: in module aio/udp,
    ``3aio_3udp_11UDPEndpoint_5_on_readable`` is ``UDPEndpoint._on_readable``
    (length-prefixed module parts and class, then an index and the name)."""
    parts = []
    for _ in range(len(module.split("/")) + 1):  # the module's parts, then the class if any
        found = re.match(r"(\d+)([A-Za-z_]\w*)", name)
        if found is None:
            break
        size, rest = int(found.group(1)), found.group(2)
        if len(rest) <= size or rest[size] != "_" or (parts == module.split("/") and not rest[0].isalpha()):
            break
        parts.append(rest[:size])
        name = rest[size + 1:]
    function = re.sub(r"^\d+", "", name)
    return ".".join(parts[len(module.split("/")):] + [function])


def _functions(path: str) -> dict:
    """Inclusive instructions of each compiled aiotcp function in a
    callgrind file (callgrind_annotate)."""
    text = subprocess.run(["callgrind_annotate", "--auto=no", "--inclusive=yes", "--threshold=100", path],
                          capture_output=True, text=True, check=True).stdout
    counts: dict = {}
    for line in text.splitlines():
        found = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+\S*aiotcp/(\S+?)\.c:__pyx_(?:pw|f|pf)_6aiotcp_(\S+)", line)
        if found:
            name = f"{found.group(2).replace('/', '.')}: {_demangle(found.group(2), found.group(3))}"
            counts[name] = max(counts.get(name, 0), int(found.group(1).replace(",", "")))
    return counts


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=600)
    parser.add_argument("--warm", type=int, default=100)
    parser.add_argument("--top", type=int, default=0)
    parser.add_argument("--timed", type=int, default=0, metavar="N",
                        help="also time N connections of each stack without valgrind (3 runs, medians)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _run(args.child[0], *map(int, args.child[1:]))
    if shutil.which("valgrind") is None:
        sys.exit("bench/instructions.py needs valgrind (apt-get install valgrind)")
    span = args.connections - args.warm
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for stack in ("kernel", "aiotcp"):
            files = [os.path.join(tmp, f"{stack}.{n}") for n in (args.warm, args.connections)]
            low, high = (_instructions(stack, n, f) for n, f in zip((args.warm, args.connections), files))
            calls = None
            if shutil.which("strace"):
                calls = (_syscalls(stack, args.connections, files[1] + ".strace")
                         - _syscalls(stack, args.warm, files[0] + ".strace")) / span
            rows[stack] = ((high - low) / span, calls)
            if stack == "aiotcp" and args.top:
                before, after = _functions(files[0]), _functions(files[1])
                per = sorted(((after[k] - before.get(k, 0)) / span, k) for k in after)[::-1][:args.top]
                top = [f"{n:10,.0f}  {name}" for n, name in per]
    print(f"per connection (client and server in one process, uvloop; {args.warm} then {args.connections} "
          "connections):")
    print(f"{'':8s} {'instructions':>14s} {'system calls':>14s}")
    for stack, (ir, calls) in rows.items():
        print(f"{stack:8s} {ir:14,.0f} {'' if calls is None else f'{calls:14.1f}'}")
    kernel, ours = rows["kernel"], rows["aiotcp"]
    print(f"aiotcp / kernel: instructions {ours[0] / kernel[0]:.2f}x"
          + (f", system calls {ours[1] / kernel[1]:.2f}x" if ours[1] and kernel[1] else ""))
    if args.top:
        print("\ncompiled aiotcp functions, instructions per connection (inclusive):")
        print("\n".join(top))
    if args.timed:
        runs = {stack: [_timed(stack, args.warm, args.timed) for _ in range(3)] for stack in ("kernel", "aiotcp")}
        print(f"\ntimed, {args.timed} connections after {args.warm} (medians of 3, one process):")
        median = {stack: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs))
                  for stack, rs in runs.items()}
        for stack, (cpu, rate) in median.items():
            print(f"{stack:8s} {cpu:8.1f} us CPU per connection {rate:10.1f} connections/s")
        print(f"aiotcp / kernel: connections/s {median['aiotcp'][1] / median['kernel'][1]:.2f}x")


if __name__ == "__main__":
    main()
