#!/usr/bin/env python3
"""Serving benchmark: imperium's vassal with the CPython plugin against uWSGI 2.0.31,
gunicorn (sync and gthread) and granian, all configured alike: one worker process with
4 threads (gunicorn sync: 1 worker, it has no threads), HTTP on a loopback port, the
same app from bench/serve/app.py in the same venv.

For each server and each route: start it, wait until it answers, warm up, run `wrk`
(REPS runs of DURATION seconds, the median kept), send 1,000 more requests, then read the
worker's memory (RSS and PSS from /proc/<pid>/smaps_rollup) and stop the server.
Prints a Markdown table (requests/s and ratios against imperium).

Environment: IMPERIUM (binary, default target/release/imperium), IMPERIUM_UWSGI (default
target/venv/bin/uwsgi, else /work/main/target/venv/bin/uwsgi), VENV (default
target/pyvenv: Flask, gunicorn, granian), DURATION (s, default 8), REPS (default 3),
CONNS (default 4, one per request thread: a kept-alive connection holds its thread), APP (flask or plain, default flask).
"""
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
HERE = os.path.dirname(os.path.abspath(__file__))
IMPERIUM = os.environ.get('IMPERIUM', os.path.join(ROOT, 'target/release/imperium'))
UWSGI = os.environ.get('IMPERIUM_UWSGI') or next(
    (p for p in (os.path.join(ROOT, 'target/venv/bin/uwsgi'), '/work/main/target/venv/bin/uwsgi') if os.path.exists(p)), 'uwsgi')
VENV = os.environ.get('VENV', os.path.join(ROOT, 'target/pyvenv'))
DURATION = int(os.environ.get('DURATION', '8'))
REPS = int(os.environ.get('REPS', '3'))
CONNS = int(os.environ.get("CONNS", "4"))
APP = os.environ.get('APP', 'flask')
CALLABLE = 'app' if APP == 'flask' else 'plain'


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def servers(port):
    py = os.path.join(VENV, 'bin')
    addr = '127.0.0.1:%d' % port
    return {
        'imperium': [IMPERIUM, '--http-socket', addr, '--master', '--processes', '1', '--threads', '4',
                     '--virtualenv', VENV, '--chdir', HERE, '--module', 'app:' + CALLABLE, '--disable-logging'],
        'uWSGI 2.0.31': [UWSGI, '--http-socket', addr, '--master', '--processes', '1', '--threads', '4',
                         '--virtualenv', VENV, '--chdir', HERE, '--module', 'app:' + CALLABLE, '--disable-logging'],
        'gunicorn sync': [os.path.join(py, 'gunicorn'), '-b', addr, '-w', '1', '--chdir', HERE, 'app:' + CALLABLE],
        'gunicorn gthread': [os.path.join(py, 'gunicorn'), '-b', addr, '-w', '1', '-k', 'gthread', '--threads', '4',
                             '--chdir', HERE, 'app:' + CALLABLE],
        'granian': [os.path.join(py, 'granian'), '--interface', 'wsgi', '--host', '127.0.0.1', '--port', str(port),
                    '--workers', '1', '--blocking-threads', '4', '--no-ws', '--log-level', 'warning',
                    '--working-dir', HERE, 'app:' + CALLABLE],
    }


def wait_up(port, path):
    end = time.time() + 60
    while time.time() < end:
        try:
            with urllib.request.urlopen('http://127.0.0.1:%d%s' % (port, path), timeout=2) as r:
                if r.status == 200:
                    return True
        except Exception:
            time.sleep(0.2)
    return False


def descendants(pid):
    out = []
    try:
        kids = subprocess.run(['pgrep', '-P', str(pid)], capture_output=True, text=True).stdout.split()
    except OSError:
        return out
    for k in kids:
        out.append(int(k))
        out.extend(descendants(int(k)))
    return out


def memory(pid):
    """(RSS, PSS) in KiB of the worker: the descendant with the largest PSS (the process
    that runs the app), else the server process itself."""
    best = None
    for p in descendants(pid) or [pid]:
        try:
            text = open('/proc/%d/smaps_rollup' % p).read()
        except OSError:
            continue
        rss = int(re.search(r'^Rss:\s+(\d+)', text, re.M).group(1))
        pss = int(re.search(r'^Pss:\s+(\d+)', text, re.M).group(1))
        if best is None or pss > best[1]:
            best = (rss, pss)
    return best or (0, 0)


def wrk(port, path):
    out = subprocess.run(['wrk', '-t', '1', '-c', str(CONNS), '-d', '%ds' % DURATION, 'http://127.0.0.1:%d%s' % (port, path)],
                         capture_output=True, text=True).stdout
    m = re.search(r'Requests/sec:\s+([\d.]+)', out)
    errors = re.search(r'Non-2xx or 3xx responses: (\d+)', out)
    sock = re.search(r'Socket errors: (.*)', out)
    return float(m.group(1)) if m else 0.0, (errors.group(1) if errors else '0'), (sock.group(1) if sock else '')


def bench(name, path):
    port = free_port()
    cmd = servers(port)[name]
    log = tempfile.TemporaryFile()
    env = dict(os.environ, PATH=os.path.join(VENV, 'bin') + ':' + os.environ.get('PATH', ''))
    p = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, start_new_session=True)
    try:
        if not wait_up(port, path):
            log.seek(0)
            sys.stderr.write('%s did not come up:\n%s\n' % (name, log.read().decode(errors='replace')[-3000:]))
            return None
        subprocess.run(['wrk', '-t', '1', '-c', str(CONNS), '-d', '2s', 'http://127.0.0.1:%d%s' % (port, path)], capture_output=True)
        runs = [wrk(port, path) for _ in range(REPS)]
        for _ in range(1000):
            urllib.request.urlopen('http://127.0.0.1:%d%s' % (port, path)).read()
        rss, pss = memory(p.pid)
        return {'rps': statistics.median(r[0] for r in runs), 'runs': [r[0] for r in runs],
                'non2xx': [r[1] for r in runs], 'sockerr': [r[2] for r in runs], 'rss': rss, 'pss': pss}
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def main():
    names = list(servers(0))
    only = os.environ.get('ONLY')
    if only:
        names = [n for n in names if n in only.split(',')]
    results = {}
    for path in ('/', '/64k'):
        for name in names:
            r = bench(name, path)
            results[(name, path)] = r
            print('%-18s %-5s %s' % (name, path, json.dumps(r)), file=sys.stderr, flush=True)
    print('| server | route | req/s (median of %d x %ds, %d conns) | imperium / server | worker RSS KiB | worker PSS KiB |' % (REPS, DURATION, CONNS))
    print('| --- | --- | --- | --- | --- | --- |')
    for path in ('/', '/64k'):
        base = results.get(('imperium', path))
        for name in names:
            r = results.get((name, path))
            if not r:
                print('| %s | %s | failed | | | |' % (name, path))
                continue
            ratio = ('%.2f' % (base['rps'] / r['rps'])) if base and r['rps'] else ''
            print('| %s | `%s` | %.0f | %s | %d | %d |' % (name, path, r['rps'], ratio, r['rss'], r['pss']))


if __name__ == '__main__':
    main()
