"""Real Linux NATs for the tests: network namespaces joined by veth pairs,
nftables masquerade and conntrack, all created here and removed after.

::

    h1 (10.0.1.2) -- nat1 (10.0.1.1 | 198.18.1.2) --+
                                                    inet (198.18.1.1, 198.18.2.1)
    h2 (10.0.2.2) -- nat2 (10.0.2.1 | 198.18.2.2) --+

``inet`` is the internet (it routes between the NATs and runs servers);
each NAT masquerades its hosts behind its outside address (``random``: a
new random port for every new mapping, a symmetric NAT) and, as a home
router does, drops whatever arrives unsolicited from outside.  Nothing is
given an address or a route in the root namespace: the veth pairs are made
inside the namespaces.  Sockets are opened inside a namespace from this
process (setns on the calling thread, then back), so one event loop drives
hosts in several namespaces.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socket
import subprocess

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def why_not() -> str | None:
    """None when NAT labs can run here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, nftables)"
    for tool in ("ip", "nft", "conntrack"):
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian: iproute2, nftables, conntrack; .ci/run installs them)"
    name = f"aiotcp-probe-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode != 0:
        return "cannot create network namespaces here"
    try:
        rules = "table ip t {\n chain c {\n type nat hook postrouting priority 100; masquerade;\n }\n}\n"
        probe = subprocess.run(["ip", "netns", "exec", name, "nft", "-f", "-"], input=rules.encode(),
                               capture_output=True)
        if probe.returncode != 0:
            return f"nftables NAT unavailable: {probe.stderr.decode().strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def _run(*argv, check=True, input=None):
    result = subprocess.run(list(argv), capture_output=True, input=input)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.decode().strip()}")
    return result.stdout.decode()


class Lab:
    INET = {1: "198.18.1.1", 2: "198.18.2.1"}
    OUTSIDE = {1: "198.18.1.2", 2: "198.18.2.2"}
    HOST = {1: "10.0.1.2", 2: "10.0.2.2"}

    def __init__(self, random_ports=(False, False)):
        tag = f"{os.getpid()}-{id(self) % 10000}"
        self.ns = {"inet": f"aiotcp-inet-{tag}", "nat1": f"aiotcp-nat1-{tag}", "nat2": f"aiotcp-nat2-{tag}",
                   "h1": f"aiotcp-h1-{tag}", "h2": f"aiotcp-h2-{tag}"}
        self.random_ports = random_ports

    # ------------------------------------------------------------ setup

    def exec(self, where: str, *argv, check=True, input=None) -> str:
        return _run("ip", "netns", "exec", self.ns[where], *argv, check=check, input=input)

    def up(self) -> "Lab":
        try:
            self._up()
        except BaseException:
            self.down()
            raise
        return self

    def _namespaces(self) -> None:
        """Each namespace of ``self.ns`` made, its loopback up."""
        for name in self.ns.values():
            _run("ip", "netns", "add", name)
        for where in self.ns:
            self.exec(where, "ip", "link", "set", "lo", "up")

    def _up(self) -> None:
        self._namespaces()
        for i in (1, 2):
            nat, host = f"nat{i}", f"h{i}"
            self._veth("inet", f"inet{i}", f"{self.INET[i]}/24", nat, "wan0", f"{self.OUTSIDE[i]}/24")
            self._veth(nat, "lan0", f"10.0.{i}.1/24", host, "eth0", f"{self.HOST[i]}/24")
            self.exec(nat, "ip", "route", "add", "default", "via", self.INET[i])
            self.exec(host, "ip", "route", "add", "default", "via", f"10.0.{i}.1")
            self.exec(nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            masquerade = "masquerade random" if self.random_ports[i - 1] else "masquerade"
            rules = f"""
table ip nat {{
    chain post {{ type nat hook postrouting priority 100; oifname "wan0" {masquerade}; }}
}}
table ip filter {{
    chain forward {{ type filter hook forward priority 0; policy drop;
        ct state established,related accept; iifname "lan0" accept; }}
    chain input {{ type filter hook input priority 0; policy accept;
        ct state established,related accept; iifname "wan0" drop; }}
}}
"""
            self.exec(nat, "nft", "-f", "-", input=rules.encode())
        self.exec("inet", "sysctl", "-qw", "net.ipv4.ip_forward=1")

    def _veth(self, a: str, a_name: str, a_addr: str, b: str, b_name: str, b_addr: str) -> None:
        # made inside the namespaces: nothing ever appears in the root one
        self.exec(a, "ip", "link", "add", a_name, "type", "veth", "peer", "name", b_name, "netns", self.ns[b])
        self.exec(a, "ip", "addr", "add", a_addr, "dev", a_name)
        self.exec(a, "ip", "link", "set", a_name, "up")
        self.exec(b, "ip", "addr", "add", b_addr, "dev", b_name)
        self.exec(b, "ip", "link", "set", b_name, "up")

    def down(self) -> None:
        for name in self.ns.values():
            _run("ip", "netns", "del", name, check=False)

    # ------------------------------------------------------------ using it

    def socket(self, where: str, bind=("0.0.0.0", 0), type=socket.SOCK_DGRAM) -> socket.socket:
        """A socket in namespace ``where``, bound to ``bind``."""
        with self.inside(where):
            sock = socket.socket(socket.AF_INET, type)
        try:
            sock.bind(bind)
        except OSError:
            sock.close()
            raise
        return sock

    @contextlib.contextmanager
    def inside(self, where: str):
        """Run the block with this thread in namespace ``where``."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.ns[where]}", os.O_RDONLY)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            try:
                yield
            finally:
                if _libc.setns(own, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back")
        finally:
            os.close(own)
            os.close(target)

    def flush_udp(self, nat: str) -> list:
        """Forget every UDP mapping of ``nat`` (``conntrack -D -p udp``): the
        next datagram out gets a new one, a rebinding.  The command (for an
        asyncio subprocess)."""
        return ["ip", "netns", "exec", self.ns[nat], "conntrack", "-D", "-p", "udp"]

    def udp_timeout(self, nat: str, seconds: int) -> None:
        """How long ``nat`` keeps a silent UDP mapping (one-way and two-way)."""
        self.exec(nat, "sysctl", "-qw", f"net.netfilter.nf_conntrack_udp_timeout={seconds}",
                  f"net.netfilter.nf_conntrack_udp_timeout_stream={seconds}")

    def mappings(self, nat: str) -> str:
        return self.exec(nat, "conntrack", "-L", "-p", "udp", check=False)
