# The WSGI app behind tests/python_wsgi.rs: one route per check, dispatched on PATH_INFO.
# `application` is the app wrapped in wsgiref.validate; `raw` is the bare app (some checks
# deliberately break the WSGI rules the validator enforces).
import json
import os
import sys
import threading
from wsgiref.validate import validator

import uwsgi

COUNTER_FILE = os.environ.get('CHECKS_CLOSE_FILE', '/tmp/imperium-checks-close')
IMPORT_PID = os.getpid()
IMPORT_WORKER_ID = uwsgi.worker_id()


def _count_close(tag):
    with open(COUNTER_FILE, 'a') as f:
        f.write(tag + '\n')


class Closing(object):
    """An iterable that records close() and can fail mid-way."""

    def __init__(self, tag, chunks, fail_at=None):
        self.tag, self.chunks, self.fail_at = tag, chunks, fail_at

    def __iter__(self):
        for i, c in enumerate(self.chunks):
            if i == self.fail_at:
                raise RuntimeError('failing on purpose mid-iteration')
            yield c

    def close(self):
        _count_close(self.tag)


def _json(start_response, obj, status='200 OK'):
    body = json.dumps(obj, sort_keys=True).encode()
    start_response(status, [('Content-Type', 'application/json')])
    return [body]


def _environ_view(environ):
    out = {}
    for k, v in environ.items():
        if isinstance(v, (str, int, bool)) or v is None:
            out[k] = [type(v).__name__, v]
        elif isinstance(v, bytes):
            out[k] = ['bytes', v.decode('latin-1')]
        elif isinstance(v, tuple):
            out[k] = ['tuple', list(v)]
        else:
            out[k] = [type(v).__name__, None]
    return out


def raw(environ, start_response):
    path = environ['PATH_INFO']
    if path == '/hello':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'Hello World']
    if path.startswith('/environ') or path.startswith('/caf'):
        view = _environ_view(environ)
        view['_uwsgi_hostname'] = uwsgi.hostname.decode('latin-1')
        view['_thread'] = threading.current_thread().name
        return _json(start_response, view)
    if path == '/post':
        inp = environ['wsgi.input']
        how = environ.get('QUERY_STRING', '')
        if how == 'read':
            data = [inp.read()]
        elif how == 'readn':
            data = [inp.read(3), inp.read(4), inp.read(1000)]
        elif how == 'readline':
            data = [inp.readline(), inp.readline(), inp.readline()]
        elif how == 'iter':
            data = list(inp)
        else:
            data = [inp.read()]
        after = inp.read()
        return _json(start_response, {
            'chunks': [d.decode('latin-1') for d in data], 'after': after.decode('latin-1'),
            'CONTENT_LENGTH': environ.get('CONTENT_LENGTH'), 'CONTENT_TYPE': environ.get('CONTENT_TYPE'),
            'HTTP_CONTENT_LENGTH' in environ and 'prefixed' or 'plain': True,
        })
    if path == '/seek':
        inp = environ['wsgi.input']
        try:
            first = inp.read(5)
            inp.seek(0)
            whole = inp.read()
            return _json(start_response, {'first': first.decode(), 'whole': whole.decode(), 'tell': inp.tell()})
        except OSError as e:
            return _json(start_response, {'error': str(e)})
    if path == '/bigpost':
        inp = environ['wsgi.input']
        data = inp.read()
        import hashlib
        tmpfiles = sorted(f for f in os.listdir('/proc/self/fd') if os.path.exists('/proc/self/fd/' + f) and 'imperium-body' in os.readlink('/proc/self/fd/' + f))
        return _json(start_response, {'len': len(data), 'sha': hashlib.sha256(data).hexdigest(), 'tmpfiles': len(tmpfiles)})
    if path == '/file':
        start_response('200 OK', [('Content-Type', 'application/octet-stream')])
        f = open(environ['QUERY_STRING'], 'rb')
        return environ['wsgi.file_wrapper'](f, 4096)
    if path == '/filelike':
        start_response('200 OK', [('Content-Type', 'text/plain')])

        class Reader(object):
            def __init__(self):
                self.parts = [b'abc', b'def', b'']
                self.closed = False

            def read(self, n):
                return self.parts.pop(0)

            def close(self):
                _count_close('filelike')
        return environ['wsgi.file_wrapper'](Reader(), 4096)
    if path == '/sr-tuple':
        try:
            start_response('200 OK', (('Content-Type', 'text/plain'),))
        except TypeError as e:
            start_response('200 OK', [('Content-Type', 'text/plain')])
            return [str(e).encode()]
        return [b'accepted']
    if path == '/sr-status':
        try:
            start_response(200, [])
        except TypeError as e:
            start_response('200 OK', [('Content-Type', 'text/plain')])
            return [str(e).encode()]
        return [b'accepted']
    if path == '/sr-twice':
        start_response('200 OK', [])
        start_response('500 Internal Server Error', [])
        start_response('201 Created', [('Content-Type', 'text/plain')])
        return [b'last wins']
    if path == '/sr-late':
        write = start_response('200 OK', [('Content-Type', 'text/plain')])
        write(b'written ')
        try:
            start_response('500 Internal Server Error', [])
            return [b'no error']
        except OSError as e:
            return [str(e).encode()]
    if path == '/close-ok':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return Closing('ok', [b'a', b'b'])
    if path == '/close-fail':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return Closing('fail', [b'a', b'b', b'c'], fail_at=1)
    if path == '/close-big':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return Closing('disconnect', [b'x' * 65536] * 2000)
    if path == '/close-count':
        with open(COUNTER_FILE) as f:
            tags = f.read().split()
        return _json(start_response, tags)
    if path == '/raise':
        raise ValueError('raised before start_response')
    if path == '/generator':
        start_response('200 OK', [('Content-Type', 'text/plain')])

        def gen():
            yield b'one '
            yield b'two '
            yield b'three'
        return gen()
    if path == '/chunks':
        # 40 chunks of 60000 bytes, each of one letter: order and completeness show.
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return (bytes([97 + i % 26]) * 60000 for i in range(40))
    if path == '/single-gen':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return iter([b'only chunk'])
    if path == '/bytes':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return b'bare bytes'
    if path == '/sleep':
        import time
        time.sleep(float(environ.get('QUERY_STRING') or '1'))
        return _json(start_response, {'thread': threading.current_thread().name, 'core': environ.get('uwsgi.core')})
    if path == '/uwsgi':
        return _json(start_response, {
            'version': uwsgi.version.decode(), 'version_info': [x.decode() if isinstance(x, bytes) else x for x in uwsgi.version_info],
            'numproc': uwsgi.numproc, 'cores': uwsgi.cores, 'buffer_size': uwsgi.buffer_size,
            'started_on': uwsgi.started_on, 'has_threads': uwsgi.has_threads,
            'worker_id': uwsgi.worker_id(), 'masterpid': uwsgi.masterpid(), 'request_id': uwsgi.request_id(),
            'total_requests': uwsgi.total_requests(), 'pid': os.getpid(),
            'import_pid': IMPORT_PID, 'import_worker_id': IMPORT_WORKER_ID,
            'opt': {k: (v.decode() if isinstance(v, bytes) else [x.decode() if isinstance(x, bytes) else x for x in v] if isinstance(v, list) else v) for k, v in uwsgi.opt.items()},
            'opt_types': {k: type(v).__name__ for k, v in uwsgi.opt.items()},
            'workers': len(uwsgi.workers()), 'apps': len(uwsgi.workers()[0]['apps']),
            'log': uwsgi.log('uwsgi.log says hi'),
            'sys_path_has_dot': '.' in sys.path, 'argv': sys.argv, 'executable': sys.executable,
            'prefix': sys.prefix, 'py_version': sys.version,
            'not_impl': _not_impl(),
            'c_extensions': _c_extensions(),
        })
    start_response('404 Not Found', [('Content-Type', 'text/plain')])
    return [b'no such check: ' + path.encode('latin-1')]


def _c_extensions():
    # Extension modules from lib-dynload do not link libpython: they need its symbols
    # to be global (the plugin is dlopen()ed RTLD_GLOBAL).
    import importlib
    out = {}
    for name in ('_ctypes', '_decimal', '_sqlite3', '_json', 'select'):
        try:
            m = importlib.import_module(name)
            out[name] = getattr(m, '__file__', 'builtin')
        except ImportError as e:
            out[name] = 'ImportError: %s' % e
    return out


def _not_impl():
    try:
        uwsgi.cache_get('x')
    except NotImplementedError as e:
        return str(e)
    return 'no error'


application = validator(raw)
