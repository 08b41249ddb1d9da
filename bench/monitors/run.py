#!/usr/bin/env python3
"""Monitor latency, side by side: imperium's Emperor against uWSGI 2.0.21 (Debian's
uwsgi-core with the emperor_pg, emperor_amqp and emperor_zeromq plugins), same machine,
same run.

    target/venv/bin/python bench/monitors/run.py [--rounds 20] [--imperium target/release/imperium]

Measured: the time from a change at the source to the vassal process running (it writes
its argv on a FIFO first thing, bench/monitors/fifo_vassal.sh):
  pg      INSERT of a row (imperium: + NOTIFY in the same transaction, and without NOTIFY;
          uWSGI polls every emperor-freq = 1 s, it has no NOTIFY)
  amqp    basic_publish of a config with the vassal name as routing key
  zmq     a [touch, name, config] message from a libzmq PUSH socket
Each round adds a new vassal; the first (warm-up) one is not counted. The source client
(psycopg2, pika, pyzmq) keeps one connection for the whole run. Prints a Markdown table.
Requires: PostgreSQL and RabbitMQ on 127.0.0.1, `apt-get install uwsgi-core
uwsgi-plugin-emperor-pg`, psycopg2-binary, pika and pyzmq in target/venv.
"""
import argparse
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import pika
import psycopg2
import zmq

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VASSAL = os.path.join(ROOT, "bench", "monitors", "fifo_vassal.sh")
CONFIG = "[uwsgi]\nsocket = /dev/null\n"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Fifo:
    def __init__(self, path):
        os.mkfifo(path)
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self.buf = b""

    def wait_for(self, needle, timeout=20.0):
        """Monotonic time at which a line containing `needle` was read, or None."""
        end = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                if needle.encode() in line:
                    return time.monotonic()
            left = end - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    self.buf += os.read(self.fd, 65536)
                except BlockingIOError:
                    pass


class Pg:
    def __init__(self, db):
        admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as c:
            c.execute("DROP DATABASE IF EXISTS %s" % db)
            c.execute("CREATE DATABASE %s" % db)
        admin.close()
        self.db = db
        self.conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=db)
        with self.conn.cursor() as c:
            c.execute("CREATE TABLE vassals (name text, config text, ts timestamptz DEFAULT now())")
        self.conn.commit()

    def add(self, name, notify):
        with self.conn.cursor() as c:
            c.execute("INSERT INTO vassals (name, config) VALUES (%s, %s)", (name, CONFIG))
            if notify:
                c.execute("NOTIFY bench_vassals")
        self.conn.commit()

    def clear(self):
        with self.conn.cursor() as c:
            c.execute("DELETE FROM vassals")
        self.conn.commit()

    def drop(self):
        self.conn.close()
        admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as c:
            c.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.db)
        admin.close()


class Amqp:
    def __init__(self):
        self.conn = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2f"))
        self.ch = self.conn.channel()
        self.ch.exchange_declare(exchange="uwsgi.emperor", exchange_type="fanout")

    def add(self, name):
        self.ch.basic_publish(exchange="uwsgi.emperor", routing_key=name, body=CONFIG.encode())

    def close(self):
        self.conn.close()


class Zmq:
    def __init__(self, endpoint):
        self.ctx = zmq.Context()
        self.s = self.ctx.socket(zmq.PUSH)
        self.s.setsockopt(zmq.LINGER, 0)
        self.s.connect(endpoint)

    def add(self, name):
        self.s.send_multipart([b"touch", name.encode(), CONFIG.encode()])

    def close(self):
        self.s.close()
        self.ctx.term()


def rabbit_version():
    try:
        return subprocess.run(["rabbitmqctl", "version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def run_emperor(argv, env, log):
    return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_emperor(p):
    try:
        os.kill(p.pid, signal.SIGINT)
        p.wait(timeout=30)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def measure(label, argv, trigger, fifo, rounds, tmp, setup_wait=1.5):
    env = dict(os.environ, BENCH_FIFO=fifo.path)
    log = open(os.path.join(tmp, label.replace(" ", "_") + ".log"), "wb")
    p = run_emperor(argv, env, log)
    time.sleep(setup_wait)
    tag = "%d" % int(time.time() * 1000)
    samples = []
    try:
        # Warm-up (connections, first query): retried until the first vassal shows up.
        warm = "w%s.ini" % tag
        trigger(warm)
        if fifo.wait_for(warm, timeout=30) is None:
            raise RuntimeError("%s: the warm-up vassal never started (see %s)" % (label, log.name))
        for i in range(rounds):
            name = "b%s_%d.ini" % (tag, i)
            time.sleep(0.2 + (i % 5) * 0.13)  # spread rounds over a poll period
            t0 = time.monotonic()
            trigger(name)
            t1 = fifo.wait_for(name)
            if t1 is None:
                raise RuntimeError("%s: vassal %s never started (see %s)" % (label, name, log.name))
            samples.append((t1 - t0) * 1000.0)
    finally:
        stop_emperor(p)
        log.close()
    return samples


def fmt(samples):
    s = sorted(samples)
    return statistics.median(s), s[int(len(s) * 0.9) - 1] if len(s) >= 10 else s[-1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--imperium", default=os.path.join(ROOT, "target", "release", "imperium"))
    ap.add_argument("--uwsgi", default=shutil.which("uwsgi") or "/usr/bin/uwsgi")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="imperium-bench-monitors-")
    fifo = Fifo(os.path.join(tmp, "spawned.fifo"))
    results = {}
    common = ["--binary-path", VASSAL, "--emperor-freq", "1"]
    uw = [a.uwsgi, "--plugin", "emperor_pg,emperor_amqp,emperor_zeromq"]

    pg = Pg("imperium_bench_monitors")
    conninfo = "host=127.0.0.1 user=postgres dbname=%s" % pg.db
    try:
        results["pg, NOTIFY"] = (measure("imperium pg notify", [a.imperium, "--emperor", "pg://%s listen=bench_vassals" % conninfo] + common,
                                         lambda n: pg.add(n, True), fifo, a.rounds, tmp), None)
        pg.clear()
        imp = measure("imperium pg poll", [a.imperium, "--emperor", "pg://%s" % conninfo] + common, lambda n: pg.add(n, False), fifo, a.rounds, tmp)
        pg.clear()
        ref = measure("uwsgi pg poll", uw + ["--emperor", "pg://%s" % conninfo] + common, lambda n: pg.add(n, False), fifo, a.rounds, tmp)
        results["pg, polling every 1 s"] = (imp, ref)
    finally:
        pg.drop()

    mq = Amqp()
    try:
        imp = measure("imperium amqp", [a.imperium, "--emperor", "amqp://guest:guest@127.0.0.1:5672"] + common, mq.add, fifo, a.rounds, tmp)
        try:
            ref = measure("uwsgi amqp", uw + ["--emperor", "amqp://127.0.0.1:5672"] + common, mq.add, fifo, a.rounds, tmp, )
        except RuntimeError as e:
            # uWSGI's hand-written client answers Connection.Tune with channel_max = 0, which
            # RabbitMQ >= 3.10 refuses ("negotiated channel_max = 0 (no limit) is higher than
            # the maximum allowed value"): it never connects.
            print("note: %s" % e, file=sys.stderr)
            ref = "never connects (channel_max = 0 refused by RabbitMQ %s)" % rabbit_version()
        results["amqp"] = (imp, ref)
    finally:
        mq.close()

    for who in ("imperium", "uwsgi"):
        port = free_port()
        ep = "tcp://127.0.0.1:%d" % port
        z = Zmq(ep)
        try:
            argv = ([a.imperium] if who == "imperium" else uw) + ["--emperor", "zmq://" + ep] + common
            s = measure(who + " zmq", argv, z.add, fifo, a.rounds, tmp)
        finally:
            z.close()
        prev = results.get("zmq", (None, None))
        results["zmq"] = (s, prev[1]) if who == "imperium" else (prev[0], s)

    print("| source -> vassal running (%d rounds) | imperium median / p90 (ms) | uWSGI 2.0.21 median / p90 (ms) | ratio (uWSGI / imperium, median) |" % a.rounds)
    print("|---|---|---|---|")
    for k, (imp, ref) in results.items():
        im, ip = fmt(imp)
        if ref is None:
            print("| %s | %.1f / %.1f | (no NOTIFY in uWSGI) | |" % (k, im, ip))
        elif isinstance(ref, str):
            print("| %s | %.1f / %.1f | %s | |" % (k, im, ip, ref))
        else:
            rm, rp = fmt(ref)
            print("| %s | %.1f / %.1f | %.1f / %.1f | %.1fx |" % (k, im, ip, rm, rp, rm / im if im else float("inf")))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
