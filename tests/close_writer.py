"""A separate process that writes a seeded number of bytes over aiotcp,
closes as asyncio's documentation teaches (close(), then wait_closed()) and
exits at once: whatever it wrote must arrive.  Prints the SHA-256 sent.

    python close_writer.py LOOP HOST PORT SIZE [MODE]

MODE "wait" (the default) or "nowait": return from the loop without
wait_closed(), while data is still unacknowledged."""
import asyncio
import hashlib
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import aiotcp  # noqa: E402


async def main(host, port, size, mode):
    data = random.Random(size).randbytes(size)
    reader, writer = await aiotcp.open_connection(host, port)
    for i in range(0, size, 1 << 16):
        writer.write(data[i:i + (1 << 16)])
    writer.close()
    if mode == "wait":
        await writer.wait_closed()
    print(hashlib.sha256(data).hexdigest(), flush=True)


if __name__ == "__main__":
    loop, host, port, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    mode = sys.argv[5] if len(sys.argv) > 5 else "wait"
    if loop == "uvloop":
        import uvloop
        uvloop.run(main(host, port, size, mode))
    else:
        asyncio.run(main(host, port, size, mode))
