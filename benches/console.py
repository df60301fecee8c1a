"""Console benchmark: bytes of the first load, and time to a usable list of
5,000 registries in headless Chromium. Needs a built binary, Debian's
chromium and the playwright package (scripts/test installs both).

    cargo build --release && python3 benches/console.py [target/release/registry-resolver]

Everything listens on 127.0.0.1 and stops when the script ends.
"""

import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from playwright.sync_api import sync_playwright

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/registry-resolver"
RECORDS = 5000
TOKEN = "bench-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(admin):
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz") as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("server not ready")


def serve(work, port, admin):
    return subprocess.Popen(
        [BIN, "serve", "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}",
         "--data-dir", f"{work}/data", "--certs-dir", f"{work}/certs", "--admin-token", TOKEN,
         "--log-level", "warn"],
        stderr=subprocess.DEVNULL)


def main():
    work = tempfile.mkdtemp()
    port, admin = free_port(), free_port()
    # Create the store, then fill it directly: 5,000 records through the API
    # would measure the write path, not the console.
    server = serve(work, port, admin)
    wait_ready(admin)
    server.terminate()
    server.wait()
    db = sqlite3.connect(f"{work}/data/registries.db")
    rows = []
    for i in range(RECORDS):
        record = {"name": f"registry-{i:05d}", "server": f"https://registry-{i:05d}.example.com",
                  "hasPassword": False, "namespaces": [f"team-{i % 1000}", f"team-{(i + 1) % 1000}"],
                  "defaultFor": [], "tls": {"insecureSkipVerify": False}, "pullSecretName": f"registry-{i:05d}",
                  "pinDigests": False, "createdAt": "2026-11-30T00:00:00Z", "updatedAt": "2026-11-30T00:00:00Z",
                  "status": {"verified": False}}
        rows.append((record["name"], json.dumps(record)))
    db.executemany("INSERT INTO registries (name, record, password) VALUES (?, ?, NULL)", rows)
    db.commit()
    db.close()
    server = serve(work, port, admin)
    try:
        wait_ready(admin)
        url = f"https://localhost:{port}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 860})
            context.add_init_script(f"sessionStorage.setItem('registry-resolver.token', '{TOKEN}')")
            times, first_load = [], None
            for run in range(6):
                page = context.new_page()
                page.route("**/*", lambda route: route.continue_(headers={**route.request.headers, "cache-control": "no-cache"}))
                start = time.perf_counter()
                page.goto(url + "/#/registries")
                page.get_by_text(f"1–20 of {RECORDS:,}".replace(",", "")).wait_for()
                page.locator("tbody tr").nth(19).wait_for()
                elapsed = time.perf_counter() - start
                if run == 0:
                    first_load = page.evaluate("""() => {
                        const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
                        const assets = entries.filter(e => !e.name.includes('/api/'));
                        const api = entries.filter(e => e.name.includes('/api/'));
                        const sum = list => list.reduce((n, e) => n + e.decodedBodySize, 0);
                        return {assets: sum(assets), api: sum(api), requests: entries.length};
                    }""")
                else:
                    times.append(elapsed)
                page.close()
            browser.close()
        print(f"first load: {first_load['assets']:,} bytes of pages, scripts and styles (uncompressed), "
              f"{first_load['api']:,} bytes of API answers for {RECORDS:,} records, {first_load['requests']} requests")
        print(f"time to a usable list of {RECORDS:,} registries (navigation to 20 rows shown), "
              f"5 warm runs: median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
