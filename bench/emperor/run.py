#!/usr/bin/env python3
"""Side-by-side benchmark: imperium's Emperor against the real uWSGI 2.0.31 Emperor, same
machine, same vassals, same run. Prints a Markdown table of measurements and ratios.

    python3 bench/emperor/run.py [--vassals 1000] [--uwsgi-vassals 100] [--idle 60]
    python3 bench/emperor/run.py --only scale [--vassals 1000] [--uwsgi-limit 120]

`--only scale` runs only (d), the shape of issue #6, and takes a minute or two (plus up to
`--uwsgi-limit` seconds for the uWSGI Emperor; `--no-uwsgi` skips it). `--vassals 200`
is a quicker iteration.

Measured for each Emperor:
  (a) latency: a config file written -> the (real uWSGI) vassal accepts TCP connections;
      the first vassal, then the median of the next ones (each a new file).
  (b) N tiny vassals (tiny_vassal.sh: sends bytes 1 and 5) placed before start: time until
      all are "ready" in the Emperor stats; Emperor RSS; Emperor CPU over an idle period,
      without and with every vassal sending a heartbeat every 5 s; with real uWSGI vassals
      (one uwsgi socket each, no app), time until all are ready and the memory (PSS) per
      vassal (master + worker).
  (c) Ragnarok: SIGTERM -> the Emperor exited and no vassal process is left.
  (d) issue #6: N vassals of each Emperor's own kind (imperium's Emperor with imperium
      vassals, uWSGI's Emperor with uWSGI vassals), each an .ini with one uwsgi UNIX
      socket, `master = true`, `processes = 1`, no app, placed before start: time until
      all are `ready`, then `accepting`, in the Emperor stats; how many sockets accept a
      connection then; Emperor RSS; PSS per vassal (master + worker, smaps_rollup); CPU
      time (from /proc/PID/schedstat, ns precision; less load-dependent than wall time, not immune) of the Emperor
      and of all vassal processes, per vassal; the load average before the run. The uWSGI
      Emperor's wait is capped at --uwsgi-limit seconds ("timeout" when not all ready).
Requires: target/release/imperium (cargo build --release) and a real uWSGI
(IMPERIUM_UWSGI or target/venv/bin/uwsgi, installed by scripts/test.sh).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TINY = os.path.join(ROOT, "bench", "emperor", "tiny_vassal.sh")
HZ = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def stats(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            data = b""
            while True:
                chunk = c.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        return json.loads(data)
    except (OSError, ValueError):
        return None


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ns(pid):
    """On-CPU time of a process (all its threads), in ns: /proc/PID/schedstat."""
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def descendants(pid):
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for k in kids.get(p, []):
            out.append(k)
            todo.append(k)
    return out


def marked_processes(marker):
    """Processes whose environment carries the marker (vassals of this run)."""
    out = []
    needle = ("BENCH_RUN=%s" % marker).encode()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/environ" % d, "rb") as f:
                    if needle in f.read().split(b"\0"):
                        out.append(int(d))
            except OSError:
                pass
    return out


class Emperor:
    def __init__(self, kind, binary, vassal_dir, vassal_binary, env_extra=None):
        self.kind = kind
        self.stats_port = free_port()
        self.marker = "%s-%d-%d" % (kind, os.getpid(), self.stats_port)
        args = [binary, "--emperor", vassal_dir, "--emperor-stats", "127.0.0.1:%d" % self.stats_port,
                "--binary-path", vassal_binary]
        env = dict(os.environ, BENCH_RUN=self.marker)
        env.update(env_extra or {})
        self.log = tempfile.TemporaryFile()
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)

    def ready_count(self):
        s = stats(self.stats_port)
        if not s:
            return -1
        return sum(1 for v in s.get("vassals", []) if v.get("ready") == 1)

    def wait_ready(self, n, limit):
        end = time.monotonic() + limit
        while time.monotonic() < end:
            if self.ready_count() >= n:
                return time.monotonic() - self.t0
            time.sleep(0.05)
        return None

    def ragnarok(self, limit=120):
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        while marked_processes(self.marker) and time.monotonic() - t < limit:
            time.sleep(0.02)
        left = marked_processes(self.marker)
        took = time.monotonic() - t
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        return took, len(left)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for p in marked_processes(self.marker):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass


def uwsgi_vassal_ini(port):
    return "[uwsgi]\nsocket = 127.0.0.1:%d\nmaster = true\nprocesses = 1\n" % port


def bench_latency(kind, binary, uwsgi, rounds):
    d = tempfile.mkdtemp(prefix="bench-lat-")
    e = Emperor(kind, binary, d, uwsgi)
    try:
        time.sleep(1.5)  # the Emperor is up and idle
        out = []
        for i in range(rounds):
            port = free_port()
            path = os.path.join(d, "v%d.ini" % i)
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                f.write(uwsgi_vassal_ini(port))
            t = time.monotonic()
            os.rename(tmp, path)
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() - t > 60:
                        break
                    time.sleep(0.002)
            out.append(time.monotonic() - t)
        return out
    finally:
        e.kill()
        shutil.rmtree(d, ignore_errors=True)


def bench_fleet(kind, binary, n, vassal, idle, heartbeat_env=None, measure_pss=False):
    d = tempfile.mkdtemp(prefix="bench-fleet-")
    ports = []
    for i in range(n):
        if vassal == TINY:
            text = "[uwsgi]\n"
        else:
            ports.append(free_port())
            text = uwsgi_vassal_ini(ports[-1])
        with open(os.path.join(d, "v%04d.ini" % i), "w") as f:
            f.write(text)
    e = Emperor(kind, binary, d, vassal, heartbeat_env)
    res = {}
    try:
        res["ready_s"] = e.wait_ready(n, 600)
        time.sleep(2)
        res["rss_kb"] = rss_kb(e.proc.pid)
        if measure_pss:
            tree = descendants(e.proc.pid)
            res["pss_per_vassal_kb"] = sum(pss_kb(p) for p in tree) / max(n, 1)
        if idle:
            c0 = cpu_seconds(e.proc.pid)
            time.sleep(idle)
            res["idle_cpu_s"] = cpu_seconds(e.proc.pid) - c0
        res["ragnarok_s"], res["left"] = e.ragnarok()
    finally:
        e.kill()
        shutil.rmtree(d, ignore_errors=True)
    return res


def scale_ini(sock):
    return "[uwsgi]\nsocket = %s\nmaster = true\nprocesses = 1\n" % sock


def connectable(path):
    try:
        with socket.socket(socket.AF_UNIX) as c:
            c.settimeout(2)
            c.connect(path)
        return True
    except OSError:
        return False


def bench_scale(kind, binary, n, limit):
    """(d) the issue #6 shape: N vassals of the Emperor's own kind, one UNIX socket each."""
    d = tempfile.mkdtemp(prefix="bench-scale-")
    vdir, sdir = os.path.join(d, "v"), os.path.join(d, "s")
    os.mkdir(vdir)
    os.mkdir(sdir)
    socks = []
    for i in range(n):
        socks.append(os.path.join(sdir, "%04d.sock" % i))
        with open(os.path.join(vdir, "v%04d.ini" % i), "w") as f:
            f.write(scale_ini(socks[-1]))
    res = {"load": loadavg()}
    e = Emperor(kind, binary, vdir, binary)
    try:
        end = e.t0 + limit
        ready_s = accepting_s = None
        while time.monotonic() < end:
            s = stats(e.stats_port)
            vs = s.get("vassals", []) if s else []
            if ready_s is None and sum(1 for v in vs if v.get("ready") == 1) >= n:
                ready_s = time.monotonic() - e.t0
            if sum(1 for v in vs if v.get("accepting") == 1) >= n:
                accepting_s = time.monotonic() - e.t0
                break
            time.sleep(0.05)
        res["ready_s"], res["accepting_s"] = ready_s, accepting_s
        res["connectable"] = sum(1 for p in socks if connectable(p))
        time.sleep(1)
        tree = descendants(e.proc.pid)
        res["vassal_processes"] = len(tree)
        res["rss_kb"] = rss_kb(e.proc.pid)
        res["pss_per_vassal_kb"] = sum(pss_kb(p) for p in tree) / max(n, 1)
        res["emperor_cpu_ms"] = cpu_ns(e.proc.pid) / 1e6
        res["vassal_cpu_ms"] = sum(cpu_ns(p) for p in tree) / 1e6 / max(n, 1)
        res["ragnarok_s"], res["left"] = e.ragnarok()
    finally:
        e.kill()
        shutil.rmtree(d, ignore_errors=True)
    return res


def print_scale(n, res):
    kinds = list(res)
    print("| (d) %d vassals, one UNIX socket, master, 1 process, no app | %s |" % (n, " | ".join(kinds)))
    print("|---|%s" % ("---|" * len(kinds)))
    for key, name in [
        ("load", "load average before the run"),
        ("ready_s", "all ready in the Emperor stats (s)"),
        ("accepting_s", "all accepting in the Emperor stats (s)"),
        ("connectable", "sockets accepting a connection then"),
        ("vassal_processes", "vassal processes (master + workers)"),
        ("rss_kb", "Emperor RSS (KiB)"),
        ("pss_per_vassal_kb", "PSS per vassal, master + worker (KiB)"),
        ("emperor_cpu_ms", "Emperor CPU time, start to all ready, per vassal (ms)"),
        ("vassal_cpu_ms", "vassal CPU time (master + worker) per vassal (ms)"),
        ("ragnarok_s", "Ragnarok (s)"),
        ("left", "processes left after Ragnarok"),
    ]:
        vals = []
        for k in kinds:
            v = res[k].get(key)
            if key == "emperor_cpu_ms" and v is not None:
                v = v / n
            vals.append(fmt(v))
        print("| %s | %s |" % (name, " | ".join(vals)))


def fmt(x, unit=""):
    if x is None:
        return "timeout"
    if isinstance(x, float):
        return "%.3f%s" % (x, unit)
    return "%s%s" % (x, unit)


def ratio(a, b):
    if a is None or b is None or not a:
        return "-"
    return "%.1fx" % (b / a)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vassals", type=int, default=1000)
    ap.add_argument("--uwsgi-vassals", type=int, default=100)
    ap.add_argument("--idle", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", choices=["all", "scale"], default="all")
    ap.add_argument("--uwsgi-limit", type=int, default=120, help="cap on the uWSGI Emperor's wait in (d)")
    ap.add_argument("--imperium-limit", type=int, default=120, help="cap on imperium's wait in (d)")
    ap.add_argument("--no-uwsgi", action="store_true", help="(d) without the uWSGI Emperor")
    ap.add_argument("--imperium", default=os.path.join(ROOT, "target", "release", "imperium"),
                    help="the imperium binary (default: target/release/imperium)")
    a = ap.parse_args()
    imperium = os.path.abspath(a.imperium)
    uwsgi = os.environ.get("IMPERIUM_UWSGI") or os.path.join(ROOT, "target", "venv", "bin", "uwsgi")
    for b in (imperium, uwsgi):
        if not os.access(b, os.X_OK):
            sys.exit("missing %s (cargo build --release; scripts/test.sh installs uWSGI)" % b)
    rows = []
    emperors = [("imperium", imperium), ("uwsgi", uwsgi)]

    scale = {"imperium": bench_scale("imperium", imperium, a.vassals, a.imperium_limit)}
    if not a.no_uwsgi:
        scale["uWSGI 2.0.31"] = bench_scale("uwsgi", uwsgi, a.vassals, a.uwsgi_limit)
    if a.only == "scale":
        print_scale(a.vassals, scale)
        return

    lat = {k: bench_latency(k, b, uwsgi, a.rounds) for k, b in emperors}
    first = {k: v[0] for k, v in lat.items()}
    nxt = {k: statistics.median(v[1:]) if len(v) > 1 else None for k, v in lat.items()}
    rows.append(("(a) config written -> accepting, first vassal (s)", first["imperium"], first["uwsgi"]))
    rows.append(("(a) config written -> accepting, next vassals, median (s)", nxt["imperium"], nxt["uwsgi"]))

    fleet = {k: bench_fleet(k, b, a.vassals, TINY, a.idle) for k, b in emperors}
    n = a.vassals
    rows.append(("(b) %d tiny vassals: all ready in stats (s)" % n, fleet["imperium"]["ready_s"], fleet["uwsgi"]["ready_s"]))
    rows.append(("(b) Emperor RSS with %d vassals (KiB)" % n, fleet["imperium"]["rss_kb"], fleet["uwsgi"]["rss_kb"]))
    rows.append(("(b) Emperor CPU over %d s idle (s)" % a.idle, fleet["imperium"].get("idle_cpu_s"), fleet["uwsgi"].get("idle_cpu_s")))
    rows.append(("(c) Ragnarok of %d vassals (s)" % n, fleet["imperium"]["ragnarok_s"], fleet["uwsgi"]["ragnarok_s"]))
    rows.append(("(c) processes left after Ragnarok", fleet["imperium"]["left"], fleet["uwsgi"]["left"]))

    hb = {k: bench_fleet(k, b, a.vassals, TINY, a.idle, {"BENCH_HEARTBEAT": "5"}) for k, b in emperors}
    rows.append(("(b) Emperor CPU over %d s, heartbeat every 5 s (s)" % a.idle, hb["imperium"].get("idle_cpu_s"), hb["uwsgi"].get("idle_cpu_s")))

    m = a.uwsgi_vassals
    real = {k: bench_fleet(k, b, m, uwsgi, 0, measure_pss=True) for k, b in emperors}
    rows.append(("(b) %d real uWSGI vassals: all ready (s)" % m, real["imperium"]["ready_s"], real["uwsgi"]["ready_s"]))
    rows.append(("(b) PSS per real uWSGI vassal, master+worker (KiB)", real["imperium"]["pss_per_vassal_kb"], real["uwsgi"]["pss_per_vassal_kb"]))
    rows.append(("(c) Ragnarok of %d real uWSGI vassals (s)" % m, real["imperium"]["ragnarok_s"], real["uwsgi"]["ragnarok_s"]))
    rows.append(("(c) processes left after Ragnarok (real vassals)", real["imperium"]["left"], real["uwsgi"]["left"]))

    # The same vassal config run by imperium's own vassal server (master + 1 worker, no
    # app) against the real uWSGI vassal: memory per vassal, both under imperium's Emperor.
    own = bench_fleet("imperium", imperium, m, imperium, 0, measure_pss=True)
    rows.append(("(b) PSS per vassal, imperium vassal vs uWSGI vassal (KiB)", own["pss_per_vassal_kb"], real["imperium"]["pss_per_vassal_kb"]))

    print_scale(a.vassals, scale)
    print()
    print("| measurement | imperium | uWSGI 2.0.31 | uWSGI / imperium |")
    print("|---|---|---|---|")
    for name, i, u in rows:
        print("| %s | %s | %s | %s |" % (name, fmt(i), fmt(u), ratio(i, u)))


if __name__ == "__main__":
    main()
