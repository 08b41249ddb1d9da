#!/usr/bin/env python3
"""A scriptable vassal for the Emperor tests: it speaks the Emperor protocol on
UWSGI_EMPEROR_FD and does what its own config file says.

The Emperor starts it as `test_vassal.py [--set k=v ...] --ini NAME [...]`; it reads
NAME (relative to its working directory, like a real vassal) as `key = value` lines:

    probe-log    = /path/log    (one line per event, `key=value` words, appended)
    probe-script = send:1,send:5,send:17,hb:1:3,sleep:0.5,exit:0
    probe-tag    = any word, logged at start (and at each reload of a pushed config)

With `--ini emperor://NAME` the config is read from UWSGI_EMPEROR_FD_CONFIG (pushed by a
database/queue monitor); on a reload byte it sends 2 and reads the config again.

Script steps, in order:
    send:N          write byte N to the Emperor
    sleep:S         sleep S seconds
    hb:I[:D]        send a heartbeat (26) every I seconds, for D seconds (default forever)
    exit:C          exit with code C now
    ignore-stop     from now on, ignore stop bytes (0 and 2)
    flood:N         write N garbage bytes (200) as fast as possible
    accept          accept one connection on fd 0, answer "hello\\n", close it
    orphan          start `sleep 600` twice: a child, and a daemon escaping the group
    serve           like accept, in the loop, for every connection
    detach          close the Emperor fd (isolation tests: only PDEATHSIG kills it)
    forkbomb[:N]    fork sleeping children until fork fails (isolation tests)
    hog:MB          allocate MB MiB of memory (isolation tests)
    idle:S          after S seconds without a connection, send 22 (die-on-idle)
After the script it loops: stop bytes (0, 2) make it exit 0, a reload byte (1) is logged
and answered with 1 (a reloaded vassal announces itself again), EOF makes it exit 1.
Every start and every received byte is logged, with pid, ppid, pgid, cwd, argv, fds and
the UWSGI_* environment at start.
"""
import os
import select
import socket
import sys
import time


class _Lines(list):
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def config_path(argv):
    for i, a in enumerate(argv):
        if a in ("--ini", "--xml", "--yaml", "--json", "--config", "--inherit") and i + 1 < len(argv):
            return argv[i + 1]
    return None


def pushed_config():
    """The config pushed by the Emperor on UWSGI_EMPEROR_FD_CONFIG (isolation tests:
    tyrant vassals get their config this way, never by path)."""
    fd = int(os.environ.get("UWSGI_EMPEROR_FD_CONFIG", "-1"))
    def exact(n):
        b = b""
        while len(b) < n:
            chunk = os.read(fd, n - len(b))
            if not chunk:
                break
            b += chunk
        return b
    h = exact(4)
    size = h[1] | (h[2] << 8)
    if size == 0 and h[3] == 1:
        size = int.from_bytes(exact(4), "little")
    return exact(size).decode(errors="replace").splitlines(True)


def read_config(path):
    cfg = {}
    try:
        with (open(path) if not path.startswith("emperor://") else _Lines(pushed_config())) as f:
            for line in f:
                if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
                    k, v = line.split("=", 1)
                    cfg[k.strip()] = v.strip()
    except OSError:
        pass
    return cfg


def read_pushed(fd):
    """One pushed config from UWSGI_EMPEROR_FD_CONFIG (uWSGI framing or the extended one)."""
    def exact(n):
        buf = b""
        while len(buf) < n:
            r, _, _ = select.select([fd], [], [], 5)
            if not r:
                raise OSError("timeout")
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                raise OSError("eof")
            buf += chunk
        return buf
    h = exact(4)
    size = h[1] | (h[2] << 8)
    if size == 0 and h[3] == 1:
        size = int.from_bytes(exact(4), "little")
    return exact(size)


def parse_config_text(text):
    cfg = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            k, v = line.split("=", 1)
            cfg[k.strip()] = v.strip()
    return cfg


ARGV = sys.argv[1:]
PUSHED_FD = int(os.environ.get("UWSGI_EMPEROR_FD_CONFIG", "-1"))
PUSHED_LEN = -1
if (config_path(ARGV) or "").startswith("emperor://") and PUSHED_FD >= 0:
    try:
        _body = read_pushed(PUSHED_FD)
        PUSHED_LEN = len(_body)
        CFG = parse_config_text(_body.decode("utf-8", "replace"))
    except OSError:
        CFG = {}
elif (config_path(ARGV) or "").startswith("http://"):
    import urllib.request
    try:
        CFG = parse_config_text(urllib.request.urlopen(config_path(ARGV), timeout=10).read().decode("utf-8", "replace"))
    except OSError:
        CFG = {}
else:
    CFG = read_config(config_path(ARGV) or "")
LOG = CFG.get("probe-log")


def log(event, **kw):
    if not LOG:
        return
    words = ["pid=%d" % os.getpid(), "event=%s" % event]
    words += ["%s=%s" % (k, str(v).replace(" ", "%20")) for k, v in kw.items()]
    with open(LOG, "a") as f:
        f.write(" ".join(words) + "\n")


def fd0_kind():
    try:
        s = socket.socket(fileno=os.dup(0))
        name = s.getsockname()
        fam = "unix" if s.family == socket.AF_UNIX else "inet"
        s.detach()
        return "%s:%s" % (fam, name if isinstance(name, str) else "%s:%d" % name[:2])
    except OSError:
        try:
            return "file:" + os.readlink("/proc/self/fd/0")
        except OSError:
            return "closed"


def open_fds():
    """Open descriptors, without the one used to list them."""
    out = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + name)
        except OSError:
            continue
        if not target.startswith("/proc/"):
            out.append(int(name))
    return sorted(out)


def orphan():
    """Leave a process behind that escapes the process group (setsid, double fork)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            os.close(r)
            os.write(w, str(os.getpid()).encode())
            os.close(w)
            os.execvp("sleep", ["sleep", "600"])
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    gpid = os.read(r, 32).decode()
    os.close(r)
    # A plain child too, in the vassal's own process group.
    child = os.fork()
    if child == 0:
        os.execvp("sleep", ["sleep", "600"])
    log("orphans", daemon=gpid, child=child)


def forkbomb(limit):
    """(isolation tests) Fork sleeping children until fork fails or `limit` is reached."""
    n, err = 0, ""
    while n < limit:
        try:
            pid = os.fork()
        except OSError as e:
            err = e.strerror.replace(" ", "_")
            break
        if pid == 0:
            time.sleep(600)
            os._exit(0)
        n += 1
    log("forkbomb", forked=n, error=err)


def hog(mb):
    """(isolation tests) Allocate and touch `mb` MiB, one MiB at a time."""
    log("hog", mb=mb)
    chunks = []
    for _ in range(mb):
        chunks.append(bytearray(1 << 20))
    log("hogged", mb=mb)


def main():
    efd = int(os.environ.get("UWSGI_EMPEROR_FD", "-1"))
    env = ",".join(sorted("%s=%s" % (k, v) for k, v in os.environ.items() if k.startswith("UWSGI_")))
    fds = ",".join(str(fd) for fd in open_fds())
    log("start", tag=CFG.get("probe-tag", ""), cfglen=PUSHED_LEN, uid=os.getuid(), gid=os.getgid(), ppid=os.getppid(), pgid=os.getpgid(0), cwd=os.getcwd(), argv="|".join([sys.argv[0]] + ARGV),
        env=env, fds=fds, fd0=fd0_kind(), notify=os.environ.get("NOTIFY_SOCKET", ""))
    ignore_stop = False
    hb_interval = None
    hb_until = None
    serve = False
    idle = None
    last_activity = time.monotonic()

    def send(b):
        try:
            os.write(efd, bytes([b]))
        except OSError:
            pass

    def accept_one():
        nonlocal last_activity
        srv = socket.socket(fileno=os.dup(0))
        conn, _ = srv.accept()
        conn.sendall(b"hello\n")
        conn.close()
        srv.detach()
        last_activity = time.monotonic()
        log("served")

    for step in [s.strip() for s in CFG.get("probe-script", "").split(",") if s.strip()]:
        op, _, arg = step.partition(":")
        if op == "send":
            send(int(arg))
        elif op == "sleep":
            time.sleep(float(arg))
        elif op == "hb":
            parts = arg.split(":")
            hb_interval = float(parts[0])
            hb_until = time.monotonic() + float(parts[1]) if len(parts) > 1 else None
            send(26)
        elif op == "exit":
            log("exit", code=arg)
            os._exit(int(arg))
        elif op == "ignore-stop":
            ignore_stop = True
        elif op == "flood":
            garbage = bytes([200]) * 4096
            left = int(arg)
            while left > 0:
                try:
                    left -= os.write(efd, garbage[: min(left, 4096)])
                except OSError:
                    break
        elif op == "accept":
            accept_one()
        elif op == "orphan":
            orphan()
        elif op == "serve":
            serve = True
        elif op == "idle":
            idle = float(arg)
        elif op == "detach":
            # (isolation tests) forget the Emperor: only the death signal can end us now.
            os.close(efd)
            efd = -1
        elif op == "forkbomb":
            forkbomb(int(arg or "100000"))
        elif op == "hog":
            hog(int(arg))

    last_hb = time.monotonic()
    while True:
        now = time.monotonic()
        timeouts = []
        if hb_interval is not None and (hb_until is None or now < hb_until):
            timeouts.append(max(0.0, last_hb + hb_interval - now))
        if idle is not None:
            timeouts.append(max(0.0, last_activity + idle - now))
        watch = [efd] if efd >= 0 else []
        if serve:
            watch.append(0)
        r, _, _ = select.select(watch, [], [], min(timeouts) if timeouts else None)
        now = time.monotonic()
        if hb_interval is not None and (hb_until is None or now < hb_until) and now >= last_hb + hb_interval:
            send(26)
            last_hb = now
        if idle is not None and now >= last_activity + idle:
            send(22)
            log("idle")
            idle = None
        if 0 in r:
            accept_one()
        if efd in r:
            try:
                data = os.read(efd, 1)
            except OSError:
                data = b""
            if not data:
                log("eof")
                os._exit(1)
            b = data[0]
            log("byte", value=b)
            if b in (0, 2) and not ignore_stop:
                log("exit", code=0)
                os._exit(0)
            if b == 1:
                if PUSHED_FD >= 0:
                    # A pushed-config vassal asks for its config again (byte 2), as uWSGI does.
                    send(2)
                    try:
                        cfg = parse_config_text(read_pushed(PUSHED_FD).decode("utf-8", "replace"))
                        log("reconfig", tag=cfg.get("probe-tag", ""))
                    except OSError as e:
                        log("reconfig-failed", error=str(e))
                send(1)


if __name__ == "__main__":
    main()
