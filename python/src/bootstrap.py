# The `uwsgi` module of imperium's CPython plugin, built at startup on top of the native
# `_uwsgi` primitives. Types follow uWSGI's CPython plugin on Python 3: bytes for version,
# hostname and option values. Functions of subsystems imperium does not have yet raise
# NotImplementedError naming the function.
# Only what uWSGI's own plugin loads too: every module imported here sits in every
# worker's memory (tempfile alone pulls in shutil, bz2, lzma, random...).
import os as _os
import sys as _sys
import threading as _threading
import time as _time
import types as _types

_u = _uwsgi
_facts = _u.instance()
_log = _u.log

uwsgi = _types.ModuleType('uwsgi')
uwsgi.__doc__ = "uWSGI's Python API, as offered by imperium"

# ---- sys.path, sys.argv, sys.executable (as uWSGI sets them up before loading apps)
if '.' not in _sys.path:
    _sys.path.insert(0, '.')
for _entry in _facts['pythonpath']:
    if any(c in _entry for c in '*?['):
        import glob as _glob
        _matches = sorted(_glob.glob(_entry))
    else:
        _matches = [_entry]
    for _p in _matches:
        _sys.path.insert(0, _p)
        _log('added %s to pythonpath.' % _p)
_sys.argv = ['uwsgi'] + (_facts['pyargv'] or '').split()
_sys.executable = _facts['py_executable'] or _facts['binary']

# ---- attributes
uwsgi.version = _facts['version']
_vi = [int(x) for x in _facts['version'].split(b'.')[:3]]
uwsgi.version_info = tuple(_vi + [0] * (3 - len(_vi))) + (0, b'')
uwsgi.hostname = _facts['hostname']
uwsgi.numproc = _facts['numproc']
uwsgi.cores = _facts['cores']
uwsgi.has_threads = 1
uwsgi.buffer_size = _facts['buffer_size']
uwsgi.started_on = _facts['started_on']
uwsgi.is_a_reload = _facts['is_a_reload']
uwsgi.SPOOL_OK = -2
uwsgi.SPOOL_RETRY = -1
uwsgi.SPOOL_IGNORE = 0
uwsgi.loop = None
uwsgi.applications = None
uwsgi.env = None
uwsgi.unbit = None
uwsgi.magic_table = {}
uwsgi.sockets = []

_opt = {}
for _k, _v, _flag in _u.options():
    _val = True if (_flag and _v.lower() not in ('false', 'off', 'no', '0')) else _v.encode('utf-8', 'surrogateescape')
    if _k in _opt:
        if isinstance(_opt[_k], list):
            _opt[_k].append(_val)
        else:
            _opt[_k] = [_opt[_k], _val]
    else:
        _opt[_k] = _val
uwsgi.opt = _opt

# ---- process and instance
uwsgi.worker_id = _u.worker_id
uwsgi.masterpid = _u.masterpid
uwsgi.reload = _u.reload
uwsgi.stop = _u.stop
uwsgi.request_id = _u.request_id
uwsgi.total_requests = _u.total_requests
uwsgi.connection_fd = _u.connection_fd
uwsgi.setprocname = _u.setprocname


def log(msg):
    return _u.log(msg)


uwsgi.log = log


def mule_id():
    return 0


uwsgi.mule_id = mule_id


def i_am_the_spooler():
    return False


uwsgi.i_am_the_spooler = i_am_the_spooler


def ready():
    return True


uwsgi.ready = ready


def micros():
    return int(_time.time() * 1000000)


uwsgi.micros = micros


def listen_queue(id=0):
    return 0


uwsgi.listen_queue = listen_queue


def accepting(accepting=True):
    _u.stat(13, 1 if accepting else 0)
    return None


uwsgi.accepting = accepting


def mem():
    try:
        with open('/proc/self/statm') as f:
            vsz, rss = (int(x) for x in f.read().split()[:2])
        page = _os.sysconf('SC_PAGE_SIZE')
        return (rss * page, vsz * page)
    except OSError:
        return (0, 0)


uwsgi.mem = mem


def cl():
    env = uwsgi.env
    try:
        return int(env.get('CONTENT_LENGTH', 0)) if env else 0
    except ValueError:
        return 0


uwsgi.cl = cl


def _mem_of(pid):
    try:
        with open('/proc/%d/statm' % pid) as f:
            vsz, rss = (int(x) for x in f.read().split()[:2])
        page = _os.sysconf('SC_PAGE_SIZE')
        return (rss * page, vsz * page)
    except (OSError, ValueError):
        return (0, 0)


def workers():
    apps = [{'id': i, 'modifier1': 0, 'mountpoint': mp, 'startup_time': int(st), 'interpreter': 0,
             'callable': 0, 'requests': 0, 'exceptions': 0, 'chdir': ''} for (i, mp, st, _r) in _u.apps()]
    out = []
    for wid in range(1, _facts['numproc'] + 1):
        s = lambda what: _u.stat(what, wid)
        pid = s(2)
        busy = s(11) == 1
        out.append({
            'id': wid, 'pid': max(pid, 0), 'requests': max(s(3), 0), 'delta_requests': max(s(4), 0),
            'signals': 0, 'exceptions': max(s(5), 0), 'cheap': 0, 'pause': 0, 'busy': 1 if busy else 0,
            'idle': 0 if busy else 1, 'status': 'busy' if busy else 'idle', 'rss': _mem_of(pid)[0], 'vsz': _mem_of(pid)[1],
            'running_time': max(s(6), 0), 'last_spawn': max(s(7), 0), 'respawn_count': max(s(8), 0),
            'tx': max(s(9), 0), 'avg_rt': max(s(10), 0),
            'apps': tuple(dict(a) for a in apps),
        })
    return tuple(out)


uwsgi.workers = workers

# ---- request log variables: kept per thread for get_logvar, and handed to the vassal for
# log-format's %(name)
_logvars = _threading.local()


def set_logvar(key, value):
    if not hasattr(_logvars, 'd'):
        _logvars.d = {}
    _logvars.d[key] = value
    _u.set_logvar(str(key), str(value))


def get_logvar(key):
    return getattr(_logvars, 'd', {}).get(key)


uwsgi.set_logvar = set_logvar
uwsgi.get_logvar = get_logvar

# ---- locks: lock 0 always exists, `locks = N` adds N more. A POSIX record lock on an
# anonymous file created before fork serialises processes; a threading lock serialises the
# threads of one process (record locks are per process). `fcntl` is imported on first
# use: most apps never lock, and a worker should not carry the extension module for them.


def _fcntl():
    import fcntl
    return fcntl


_nlocks = 1 + int(_facts['locks'] or 0)
# An anonymous in-memory file, shared by every process forked from this one.
_lockfd = _os.memfd_create('imperium-locks')
_thread_locks = [_threading.Lock() for _ in range(_nlocks)]
_held = [False] * _nlocks


def _lock_id(n):
    if not isinstance(n, int) or n < 0 or n >= _nlocks:
        raise ValueError('Invalid lock number')
    return n


def lock(n=0):
    n = _lock_id(n)
    _thread_locks[n].acquire()
    f = _fcntl()
    f.lockf(_lockfd, f.LOCK_EX, 1, n)
    _held[n] = True
    return None


def unlock(n=0):
    n = _lock_id(n)
    if _held[n]:
        _held[n] = False
        f = _fcntl()
        f.lockf(_lockfd, f.LOCK_UN, 1, n)
        _thread_locks[n].release()
    return None


def is_locked(n=0):
    n = _lock_id(n)
    if _held[n]:
        return True
    f = _fcntl()
    try:
        f.lockf(_lockfd, f.LOCK_EX | f.LOCK_NB, 1, n)
    except OSError:
        return True
    f.lockf(_lockfd, f.LOCK_UN, 1, n)
    return False


uwsgi.lock = lock
uwsgi.unlock = unlock
uwsgi.is_locked = is_locked

# ---- everything else of uWSGI 2.0's API: present, and says it is not there yet
_NOT_YET = '''
    add_cron add_file_monitor add_rb_timer add_timer add_var alarm async_connect async_sleep
    cache_clear cache_dec cache_del cache_div cache_exists cache_get cache_inc cache_keys
    cache_mul cache_num cache_set cache_update call chunked_read chunked_read_nb close
    connect disconnect embedded_data extract farm_get_msg farm_msg green_schedule in_farm
    is_connected log_this_request logsize lord_scroll i_am_the_lord metric_dec metric_div
    metric_get metric_inc metric_mul metric_set metric_set_max metric_set_min mule_get_msg
    mule_msg offload parsefile queue_get queue_last queue_pop queue_pull queue_pull_slot
    queue_push queue_set queue_slot ready_fd recv register_rpc register_signal route rpc
    rpc_list scrolls send send_to_spooler sendfile set_spooler_frequency set_user_harakiri
    set_warning_message sharedarea_dec32 sharedarea_dec64 sharedarea_inc32 sharedarea_inc64
    sharedarea_memoryview sharedarea_object sharedarea_read sharedarea_read16
    sharedarea_read32 sharedarea_read64 sharedarea_read8 sharedarea_readfast sharedarea_rlock
    sharedarea_unlock sharedarea_wlock sharedarea_write sharedarea_write16 sharedarea_write32
    sharedarea_write64 sharedarea_write8 signal signal_received signal_registered signal_wait
    snmp_decr_counter32 snmp_decr_counter64 snmp_decr_gauge snmp_incr_counter32
    snmp_incr_counter64 snmp_incr_gauge snmp_set_community snmp_set_counter32
    snmp_set_counter64 snmp_set_gauge spool spooler_get_task spooler_jobs spooler_pid
    spooler_pids suspend wait_fd_read wait_fd_write websocket_handshake websocket_recv
    websocket_recv_nb websocket_send websocket_send_binary
'''.split()


def _not_yet(name):
    def f(*args, **kwargs):
        raise NotImplementedError('uwsgi.%s() is not implemented yet in imperium' % name)
    f.__name__ = name
    f.__qualname__ = name
    return f


for _name in _NOT_YET:
    setattr(uwsgi, _name, _not_yet(_name))



# ---- py-autoreload: a thread in each worker compares the mtimes of every imported
# module's source with the first ones seen, and asks the master for a graceful reload.
def _start_autoreloader(interval, ignore):
    ignore = set(ignore)
    if uwsgi.worker_id() == 1:
        _log('Python auto-reloader enabled')

    def source(mod):
        f = getattr(mod, '__file__', None)
        if not f:
            return None
        if f.endswith(('.pyc', '.pyo', '.pyd')):
            f = f[:-1]
        return f

    def scan(seen):
        for name, mod in list(_sys.modules.items()):
            if name in ignore or mod is None:
                continue
            f = source(mod)
            if not f:
                continue
            try:
                m = _os.stat(f).st_mtime
            except OSError:
                continue
            if f not in seen:
                seen[f] = m
            elif seen[f] != m:
                _log('[uwsgi-python-reloader] module/file %s has been modified' % f)
                return True
        return False

    def loop():
        seen = {}
        scan(seen)
        while True:
            _time.sleep(interval)
            if scan(seen):
                uwsgi.reload()
                return

    t = _threading.Thread(target=loop, name='uWSGIAutoReloader', daemon=True)
    t.start()


uwsgi._start_autoreloader = _start_autoreloader


# ---- py-tracebacker: a UNIX socket <base><worker id> per worker; each connection gets the
# stack of every thread in uWSGI's format (read with `uwsgi --connect-and-read`).
def _start_tracebacker(base):
    import socket
    import traceback
    path = '%s%d' % (base, uwsgi.worker_id())
    try:
        _os.unlink(path)
    except OSError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(16)
    _log('python tracebacker for worker %d available on %s' % (uwsgi.worker_id(), path))

    def dump():
        names = {t.ident: t.name for t in _threading.enumerate()}
        me = _threading.get_ident()
        out = ['*** uWSGI Python traceback output ***', '']
        for ident, frame in _sys._current_frames().items():
            if ident == me:
                continue
            name = names.get(ident, str(ident))
            for fs in traceback.extract_stack(frame):
                out.append('thread_id = %s filename = %s lineno = %d function = %s line = %s'
                           % (name, fs.filename, fs.lineno, fs.name, fs.line or ''))
            out.append('')
        return ('\n'.join(out) + '\n').encode('utf-8', 'replace')

    def loop():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            try:
                conn.sendall(dump())
            except OSError:
                pass
            finally:
                conn.close()

    _threading.Thread(target=loop, name='uWSGITraceBacker', daemon=True).start()


uwsgi._start_tracebacker = _start_tracebacker
_sys.modules['uwsgi'] = uwsgi


# ---- uwsgidecorators, served from the plugin (importable only inside the instance)
# (The import system's own ModuleSpec: importlib.abc/util would load a dozen modules.)
import _frozen_importlib as _fi


class _DecoratorsFinder:
    def find_spec(self, name, path=None, target=None):
        if name == 'uwsgidecorators':
            return _fi.ModuleSpec(name, self, origin='imperium:uwsgidecorators')
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        exec(compile(_DECORATORS_SOURCE, 'uwsgidecorators.py', 'exec'), module.__dict__)


_sys.meta_path.append(_DecoratorsFinder())
