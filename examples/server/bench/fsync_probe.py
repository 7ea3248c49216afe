#!/usr/bin/env python3
"""The disk's own commit latency, beside a benchmark (docs/benchmarks.md, "Soak").

Every grab the store acknowledges has waited for PostgreSQL's WAL flush, so a
grab's tail can be no shorter than the disk's fdatasync tail under the same
load. This probe measures that tail where the WAL lives: every INTERVAL
seconds it writes the next 8 kB block (a WAL page) of a 16 MB file in DIR (a
WAL segment, rewritten from its start when full), calls fdatasync, and
prints one line per call, "<unix seconds> <milliseconds>", so a caller can
cut the lines into the slices of its own run. It stops after SECONDS, or on
SIGTERM, and removes its file.

    examples/server/bench/fsync_probe.py DIR [SECONDS] [INTERVAL] > latencies

`pg_test_fsync` reports the mean of back-to-back syncs on an idle disk; a p99
or a stall of a second under a sale's writes is what this shows and it does not.
"""

import os
import signal
import sys
import time


def main() -> None:
    directory = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3600.0
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else 0.005
    path = os.path.join(directory, f"fsync_probe.{os.getpid()}")
    # A stop by the caller's kill still removes the file (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    block = b"\0" * 8192
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        end = time.time() + seconds
        offset = 0
        while time.time() < end:
            started = time.perf_counter()
            os.pwrite(fd, block, offset)
            offset = (offset + len(block)) % (16 << 20)
            os.fdatasync(fd)
            took = time.perf_counter() - started
            print(f"{time.time():.3f} {took * 1000:.3f}", flush=True)
            time.sleep(interval)
    finally:
        os.close(fd)
        os.unlink(path)


if __name__ == "__main__":
    main()
