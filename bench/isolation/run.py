#!/usr/bin/env python3
"""Isolation overhead: spawn-to-accepting time of an imperium vassal under imperium's
Emperor, side by side in the same run, for
  - no isolation,
  - emperor-use-clone = pid,net,fs (new pid, network and mount namespaces),
  - a per-vassal cgroup (emperor-cgroup, with memory and pids limits),
  - both together.
Each round runs one sample of every mode, in a shuffled order, with a pause after each
vassal's teardown. Each sample writes a new vassal config (a UNIX socket, which works across network
namespaces) into the watched directory and polls connect() on the socket until it
succeeds; then the config is removed and the next one written. The same binary, machine
and vassal config for every mode; samples alternate between modes, so load drifts hit
all of them alike. Prints a Markdown table with medians and ratios to "no isolation".

    python3 bench/isolation/run.py [--samples 30]

Requires target/release/imperium (cargo build --release -p imperium) and root.
"""
import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, "target", "release", "imperium")

MODES = [
    ("no isolation", []),
    ("pid+net+mount namespaces", ["--emperor-use-clone", "pid,net,fs"]),
    ("cgroup (memory+pids limits)", ["--emperor-cgroup", "imperium-bench-%d" % os.getpid(), "--emperor-cgroup-memory-max", "256M", "--emperor-cgroup-pids-max", "64"]),
    ("namespaces + cgroup", ["--emperor-use-clone", "pid,net,fs", "--emperor-cgroup", "imperium-bench2-%d" % os.getpid(), "--emperor-cgroup-memory-max", "256M"]),
]


def wait_connect(path, deadline):
    while time.monotonic() < deadline:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            return True
        except OSError:
            time.sleep(0.0005)
        finally:
            s.close()
    return False


def cleanup_cgroups(spec):
    for root, _, _ in os.walk("/sys/fs/cgroup"):
        if os.path.basename(root) == spec:
            for sub in sorted(os.listdir(root), reverse=True):
                p = os.path.join(root, sub)
                if os.path.isdir(p):
                    try:
                        os.rmdir(p)
                    except OSError:
                        pass
            try:
                os.rmdir(root)
            except OSError:
                pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=30)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="imperium-bench-iso-")
    emperors = []
    try:
        for i, (name, extra) in enumerate(MODES):
            d = os.path.join(work, "m%d" % i)
            os.makedirs(os.path.join(d, "vassals"))
            log = open(os.path.join(d, "emperor.log"), "w")
            p = subprocess.Popen([BIN, "--emperor", os.path.join(d, "vassals"), "--emperor-freq", "1"] + extra,
                                 cwd=d, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            emperors.append((name, d, p, []))
        time.sleep(1.0)
        for (name, d, p, _) in emperors:
            if p.poll() is not None:
                raise SystemExit("the Emperor for %r exited; see %s/emperor.log" % (name, d))
        rng = random.Random(1)
        for n in range(args.samples + 1):
            # A shuffled order each round, and a pause after each teardown, so that no
            # mode pays for the previous one's vassal still exiting.
            order = list(emperors)
            rng.shuffle(order)
            for (name, d, p, samples) in order:
                sock = os.path.join(d, "v%d.sock" % n)
                cfg = os.path.join(d, "vassals", "v%d.ini" % n)
                tmp = cfg + ".tmp"
                with open(tmp, "w") as f:
                    f.write("[uwsgi]\nsocket = %s\nmaster = true\nprocesses = 1\nvacuum = true\n" % sock)
                t0 = time.monotonic()
                os.rename(tmp, cfg)
                ok = wait_connect(sock, t0 + 30)
                dt = time.monotonic() - t0
                if not ok:
                    raise SystemExit("vassal never accepted under %r; see %s/emperor.log" % (name, d))
                if n > 0:  # the first sample of each mode is a warm-up
                    samples.append(dt * 1000)
                os.unlink(cfg)
                deadline = time.monotonic() + 5
                while os.path.exists(sock) and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(0.15)
        base = statistics.median(emperors[0][3])
        print("| mode | median spawn→accepting (ms) | p90 (ms) | ratio to no isolation |")
        print("| --- | --- | --- | --- |")
        for (name, _, _, samples) in emperors:
            med = statistics.median(samples)
            p90 = sorted(samples)[int(len(samples) * 0.9) - 1]
            print("| %s | %.2f | %.2f | %.2f |" % (name, med, p90, med / base))
        print("\n%d samples per mode (after one warm-up), modes interleaved." % args.samples)
    finally:
        for (_, _, p, _) in emperors:
            p.terminate()
        for (_, _, p, _) in emperors:
            try:
                p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                p.kill()
        for _, extra in MODES:
            if "--emperor-cgroup" in extra:
                cleanup_cgroups(extra[extra.index("--emperor-cgroup") + 1])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
