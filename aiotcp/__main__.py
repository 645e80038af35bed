"""Command line: ``python -m aiotcp demo [--scenario NAME] [--lang zh] [--html F] [--pcap F]``,
``python -m aiotcp forward server|client``, ``python -m aiotcp gateway`` and
``python -m aiotcp relay``."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiotcp", description="TCP over UDP for asyncio")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="draw a real connection's life as a ladder diagram")
    from .tools.demo import SCENARIOS

    group = demo.add_mutually_exclusive_group()
    group.add_argument("--scenario", choices=SCENARIOS, default=None, help="which path to draw (default normal)")
    group.add_argument("--simultaneous-close", action="store_true", help="the same as --scenario simultaneous-close")
    group.add_argument("--refused", action="store_true", help="the same as --scenario refused")
    group.add_argument("--list", action="store_true", help="list the scenarios")
    group.add_argument("--sysctl", action="store_true",
                       help="print the table of aiotcp.Config fields and the Linux sysctls they mirror")
    demo.add_argument("--lang", choices=("en", "zh"), default="en", help="step names and explanation language")
    demo.add_argument("--html", metavar="FILE", help="also write a self-contained page (SVG ladder, table)")
    demo.add_argument("--pcap", metavar="FILE", help="also write the segments as a capture for Wireshark")
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
        from .tools.demo import TITLES, sysctl_text
        from .tools.demo import main as demo_main

        if args.sysctl:
            print(sysctl_text())
            return 0
        if args.list:
            for name, title in TITLES[args.lang].items():
                print(f"{name:24} {title}")
            return 0
        scenario = args.scenario or ("simultaneous-close" if args.simultaneous_close else
                                     "refused" if args.refused else "normal")
        demo_main(scenario, args.lang, args.html, args.pcap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
