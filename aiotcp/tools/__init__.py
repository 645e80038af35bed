"""Tools built on aiotcp's public calls, apart from the core and the asyncio
layer: the ladder demo, the lossy relay, the TUN gateway to kernel TCP,
pcap tracing, and the seeded in-memory network for tests."""
