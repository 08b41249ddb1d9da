# The demo WSGI app of examples/vassals/hello.ini.
import os

import uwsgi


def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'Hello from imperium worker %d (pid %d, %s)\n' % (uwsgi.worker_id(), os.getpid(),
                                                              environ['uwsgi.version'])]
