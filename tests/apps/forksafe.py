# Fork safety (seed-python.md A21): at import, in the master, this app starts a thread,
# takes and releases locks, configures logging and draws a random number; the workers
# forked afterwards must serve without a hang and have their own random sequence.
import json
import logging
import os
import random
import threading
import time

import uwsgi

logging.basicConfig(level=logging.INFO)
log = logging.getLogger('forksafe')
_lock = threading.Lock()
_counter = [0]


def _spin():
    while True:
        with _lock:
            _counter[0] += 1
        log.debug('tick')
        time.sleep(0.001)


threading.Thread(target=_spin, daemon=True, name='import-time-thread').start()
with _lock:
    log.info('imported in pid %d (worker %d)', os.getpid(), uwsgi.worker_id())

FORKS = []


def _post_fork():
    FORKS.append(uwsgi.worker_id())
    uwsgi.log('post_fork_hook in worker %d' % uwsgi.worker_id())


uwsgi.post_fork_hook = _post_fork
FIRST_RANDOM = None


def application(environ, start_response):
    global FIRST_RANDOM
    with _lock:
        log.info('request in %d', os.getpid())
    if FIRST_RANDOM is None:
        FIRST_RANDOM = random.random()
    body = json.dumps({
        'pid': os.getpid(), 'wid': uwsgi.worker_id(), 'random': FIRST_RANDOM, 'forks': FORKS,
        'threads': [t.name for t in threading.enumerate()],
        'thread': threading.current_thread().name, 'core': environ.get('uwsgi.core'),
        'multithread': environ['wsgi.multithread'], 'multiprocess': environ['wsgi.multiprocess'],
    }).encode()
    if environ.get('QUERY_STRING') == 'sleep':
        time.sleep(1)
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [body]
