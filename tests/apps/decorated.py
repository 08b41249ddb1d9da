# uwsgidecorators (seed-python.md A33): @postfork and @thread run in every worker.
import json
import threading
import time

import uwsgi
from uwsgidecorators import lock, postfork, thread

STATE = {'postfork': None, 'ticks': 0}


@postfork
def _pf():
    STATE['postfork'] = uwsgi.worker_id()
    uwsgi.log('decorated postfork in worker %d' % uwsgi.worker_id())


@postfork
@thread
def _ticker():
    while True:
        STATE['ticks'] += 1
        time.sleep(0.05)


@lock
def _locked():
    return uwsgi.is_locked()


def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps(dict(STATE, wid=uwsgi.worker_id(), locked_inside=_locked(), locked_outside=uwsgi.is_locked(),
                            threads=[t.name for t in threading.enumerate()])).encode()]
