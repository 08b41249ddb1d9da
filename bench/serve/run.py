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
CONNS (default 4), APP (flask or plain, default flask).

SHAPE=issue runs the vassal issue's shape instead: bench/serve/hello.py (a 12-byte body
with Content-Length), one worker process with one thread (uWSGI with `--http11-socket`, its
keep-alive mode; granian with one blocking thread; gunicorn sync and gthread with one
thread), CONNS default 32, route `/` only, and the p99 latency from `wrk --latency`.
With NGINX=1 as well, wrk talks to nginx (Debian's, one worker process) in front of each
server: `uwsgi_pass` to imperium's and uWSGI's `--socket` (one connection per request: the
uwsgi protocol has no keep-alive), `proxy_pass` to gunicorn and granian with nginx's
defaults (also one connection per request); NGINX=keepalive gives the HTTP upstreams a
pool of kept-alive connections instead (`keepalive 32`, HTTP/1.1).
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
SHAPE = os.environ.get('SHAPE', '')
CONNS = int(os.environ.get("CONNS", "32" if SHAPE == 'issue' else "4"))
APP = os.environ.get('APP', 'flask')
CALLABLE = 'app' if APP == 'flask' else 'plain'
ROUTES = ('/',) if SHAPE == 'issue' else ('/', '/64k')
NGINX = os.environ.get('NGINX', '') not in ('', '0')
NGINX_KEEPALIVE = os.environ.get('NGINX', '') == 'keepalive'
UWSGI_PROTOCOL = ('imperium', 'uWSGI 2.0.31')


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def servers(port):
    py = os.path.join(VENV, 'bin')
    addr = '127.0.0.1:%d' % port
    if SHAPE == 'issue':
        return {
            'imperium': [IMPERIUM, '--http-socket', addr, '--master', '--processes', '1', '--virtualenv', VENV,
                         '--chdir', HERE, '--wsgi-file', 'hello.py', '--disable-logging'],
            'uWSGI 2.0.31': [UWSGI, '--http11-socket', addr, '--master', '--processes', '1', '--virtualenv', VENV,
                             '--chdir', HERE, '--wsgi-file', 'hello.py', '--disable-logging'],
            'gunicorn sync': [os.path.join(py, 'gunicorn'), '-b', addr, '-w', '1', '--chdir', HERE, 'hello:application'],
            'gunicorn gthread': [os.path.join(py, 'gunicorn'), '-b', addr, '-w', '1', '-k', 'gthread', '--threads', '1',
                                 '--chdir', HERE, 'hello:application'],
            'granian': [os.path.join(py, 'granian'), '--interface', 'wsgi', '--host', '127.0.0.1', '--port', str(port),
                        '--workers', '1', '--blocking-threads', '1', '--no-ws', '--log-level', 'warning',
                        '--working-dir', HERE, 'hello:application'],
        }
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


def nginx_front(port, upstream, name, tmp):
    """nginx on `port` in front of the server on `upstream` (uwsgi_pass or proxy_pass)."""
    if name in UWSGI_PROTOCOL:
        loc = 'location / { include /etc/nginx/uwsgi_params; uwsgi_pass 127.0.0.1:%d; }' % upstream
        up = ''
    else:
        if NGINX_KEEPALIVE:
            up = 'upstream app { server 127.0.0.1:%d; keepalive 32; }' % upstream
            loc = ('location / { proxy_pass http://app; proxy_http_version 1.1; '
                   'proxy_set_header Connection ""; }')
        else:
            up = 'upstream app { server 127.0.0.1:%d; }' % upstream
            loc = 'location / { proxy_pass http://app; }'

    conf = ('daemon off; master_process off; worker_processes 1; pid %(d)s/nginx.pid; error_log %(d)s/error.log;\n'
            'events { worker_connections 1024; }\n'
            'http { access_log off; client_body_temp_path %(d)s/b; proxy_temp_path %(d)s/p; '
            'fastcgi_temp_path %(d)s/f; uwsgi_temp_path %(d)s/u; scgi_temp_path %(d)s/s; %(up)s\n'
            '  server { listen 127.0.0.1:%(port)d; %(loc)s } }\n') % {'d': tmp, 'up': up, 'port': port, 'loc': loc}
    with open(os.path.join(tmp, 'nginx.conf'), 'w') as f:
        f.write(conf)
    return subprocess.Popen(['nginx', '-e', os.path.join(tmp, 'error.log'), '-p', tmp, '-c',
                             os.path.join(tmp, 'nginx.conf')], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


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
    out = subprocess.run(['wrk', '-t', '1', '-c', str(CONNS), '-d', '%ds' % DURATION, '--latency',
                          'http://127.0.0.1:%d%s' % (port, path)],
                         capture_output=True, text=True).stdout
    m = re.search(r'Requests/sec:\s+([\d.]+)', out)
    errors = re.search(r'Non-2xx or 3xx responses: (\d+)', out)
    sock = re.search(r'Socket errors: (.*)', out)
    p99 = re.search(r'^\s+99%\s+(\S+)', out, re.M)
    return (float(m.group(1)) if m else 0.0, (errors.group(1) if errors else '0'), (sock.group(1) if sock else ''),
            p99.group(1) if p99 else '')


def bench(name, path):
    port = free_port()
    front = None
    if NGINX:
        upstream = free_port()
        cmd = servers(upstream)[name]
        if name in UWSGI_PROTOCOL:
            cmd = ['--socket' if a in ('--http-socket', '--http11-socket') else a for a in cmd]
        tmp = tempfile.mkdtemp(prefix='bench-nginx-')
        front = nginx_front(port, upstream, name, tmp)
    else:
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
        mid = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
        return {'rps': mid[0], 'p99': mid[3], 'runs': [r[0] for r in runs],
                'non2xx': [r[1] for r in runs], 'sockerr': [r[2] for r in runs], 'rss': rss, 'pss': pss}
    finally:
        for proc in (p, front):
            if proc is None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def main():
    names = list(servers(0))
    only = os.environ.get('ONLY')
    if only:
        names = [n for n in names if n in only.split(',')]
    results = {}
    for path in ROUTES:
        for name in names:
            r = bench(name, path)
            results[(name, path)] = r
            print('%-18s %-5s %s' % (name, path, json.dumps(r)), file=sys.stderr, flush=True)
    print('| server | route | req/s (median of %d x %ds, %d conns) | p99 | imperium / server | worker RSS KiB | worker PSS KiB |' % (REPS, DURATION, CONNS))
    print('| --- | --- | --- | --- | --- | --- | --- |')
    for path in ROUTES:
        base = results.get(('imperium', path))
        for name in names:
            r = results.get((name, path))
            if not r:
                print('| %s | %s | failed | | | | |' % (name, path))
                continue
            ratio = ('%.2f' % (base['rps'] / r['rps'])) if base and r['rps'] else ''
            print('| %s | `%s` | %.0f | %s | %s | %d | %d |' % (name, path, r['rps'], r['p99'], ratio, r['rss'], r['pss']))


if __name__ == '__main__':
    main()
