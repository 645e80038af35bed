"""Command line: ``python -m aiotcp demo [--simultaneous-close | --refused]``,
``python -m aiotcp forward server|client``, ``python -m aiotcp gateway`` and
``python -m aiotcp relay``."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiotcp", description="TCP over UDP for asyncio")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="draw a real connection's life as a ladder diagram")
    group = demo.add_mutually_exclusive_group()
    group.add_argument("--simultaneous-close", action="store_true", help="both sides close at once (CLOSING)")
    group.add_argument("--refused", action="store_true", help="connect where nothing listens (RST)")
    gateway = commands.add_parser("gateway", help="a TUN gateway between kernel TCP and aiotcp peers (root)")
    gateway.add_argument("--kernel-ip", default="10.77.0.1")
    gateway.add_argument("--virtual-ip", default="10.77.0.2")
    gateway.add_argument("--listen-host", default="127.0.0.1")
    gateway.add_argument("--listen-port", type=int, default=7077)
    gateway.add_argument("--peer-host", default="127.0.0.1", help="UDP host of aiotcp servers")
    forward = commands.add_parser("forward", help="the tunnel: kernel TCP carried over aiotcp (server and client)")
    from .tools.forward import add_arguments as forward_arguments

    forward_arguments(forward)
    relay = commands.add_parser("relay", help="forward UDP both ways with seeded impairments")
    from .tools.relay import add_arguments

    add_arguments(relay)
    args = parser.parse_args(argv)
    if args.command == "forward":
        from .tools.forward import main as forward_main

        return forward_main(args)
    if args.command == "relay":
        import asyncio
        import signal

        from .tools.relay import run

        async def main():
            task = asyncio.ensure_future(run(args))
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, task.cancel)
            try:
                await task
            except asyncio.CancelledError:
                pass

        asyncio.run(main())
        return 0
    if args.command == "gateway":
        import asyncio

        from .tools.gateway import serve

        try:
            asyncio.run(serve(args))
        except KeyboardInterrupt:
            pass
        return 0
    if args.command == "demo":
        from .tools.demo import main as demo_main

        mode = "simultaneous-close" if args.simultaneous_close else "refused" if args.refused else "normal"
        demo_main(mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
