"""Test app for the Python options of tests/python_options.rs: exceptions for
reload-on-exception, bare bytes for wsgi-strict, buffer chunks for wsgi-accept-buffer, an
echo of wsgi.input for post-buffering-bufsize, a module alias for pymodule-alias, and a
request that sleeps for harakiri."""
import os


def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    if path == '/zero':
        return [str(1 // 0).encode()]
    if path == '/value':
        raise ValueError('bad value')
    if path == '/bytes':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return b'hello'
    if path == '/buffers':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return iter([bytearray(b'abc'), memoryview(b'def')])
    if path == '/echo':
        body = environ['wsgi.input'].read()
        environ['wsgi.input'].seek(0)
        again = environ['wsgi.input'].read()
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [body if body == again else b'seek failed']
    if path == '/sleep':
        import time
        time.sleep(60)
    if path == '/nodelay':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        flag = environ['QUERY_STRING']
        for _ in range(600):
            if os.path.exists(flag):
                break
            import time
            time.sleep(0.1)
        return [b'after the head']
    if path == '/alias':
        import aliased_json
        import aliased_helper
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [('%s %s' % (aliased_json.dumps([1]), aliased_helper.WHO)).encode()]
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('pid %d' % os.getpid()).encode()]
