# uwsgi.lock()/unlock() across workers (seed-python.md B05): each request increments the
# number in $COUNTER_FILE 100 times under lock 0.
import os

import uwsgi


def application(environ, start_response):
    path = os.environ['COUNTER_FILE']
    for _ in range(100):
        uwsgi.lock()
        try:
            try:
                with open(path) as f:
                    n = int(f.read() or 0)
            except FileNotFoundError:
                n = 0
            with open(path, 'w') as f:
                f.write(str(n + 1))
        finally:
            uwsgi.unlock()
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'ok']
