"""Holds idle connections to a TLS server from one source address: half never
start a TLS handshake, half finish it and then send nothing (an idle
keep-alive connection). A connection the server closes is opened again at
once, until the time is up. Prints what it managed as JSON.

    python3 benches/idle_holder.py HOST PORT SOURCE COUNT SECONDS
"""
import asyncio
import json
import ssl
import sys
import time


async def hold(host, port, source, context, deadline, stats):
    while time.monotonic() < deadline:
        writer = None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host, port, local_addr=(source, 0),
                    ssl=context,
                    server_hostname="localhost" if context else None,
                ),
                timeout=max(0.1, deadline - time.monotonic()),
            )
            stats["opened"] += 1
            stats["open"] += 1
            stats["peak"] = max(stats["peak"], stats["open"])
            try:
                # Nothing is sent: wait until the server closes (or time is up).
                await asyncio.wait_for(reader.read(1), timeout=max(0.1, deadline - time.monotonic()))
                stats["closed_by_server"] += 1
            except asyncio.TimeoutError:
                pass
            finally:
                stats["open"] -= 1
        except (OSError, ssl.SSLError, asyncio.TimeoutError, ConnectionError):
            stats["refused"] += 1
            await asyncio.sleep(0.01)
        finally:
            if writer is not None:
                writer.close()


async def main():
    host, port, source, count, seconds = sys.argv[1:]
    port, count, seconds = int(port), int(count), float(seconds)
    deadline = time.monotonic() + seconds
    stats = {"opened": 0, "open": 0, "peak": 0, "refused": 0, "closed_by_server": 0}
    # One context for all: loading the CA store per connection costs more
    # than the handshakes.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    await asyncio.gather(
        *(hold(host, port, source, context if i % 2 else None, deadline, stats) for i in range(count))
    )
    del stats["open"]
    print(json.dumps(stats))


asyncio.run(main())
