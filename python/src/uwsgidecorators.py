# uwsgidecorators for imperium: the decorators whose subsystems imperium has (postfork,
# thread, lock); the others raise NotImplementedError when used. Same API as uWSGI's
# module; written from its documentation.
import threading

import uwsgi

if uwsgi.masterpid() == 0:
    raise Exception("you have to enable the uWSGI master process to use this module")

_postfork_chain = []


def _postfork_chain_hook():
    for f in _postfork_chain:
        f()


uwsgi.post_fork_hook = _postfork_chain_hook


class postfork(object):
    """Run the function in every worker after fork (`@postfork`), or only in worker N
    (`@postfork(N)`)."""

    def __init__(self, f):
        if callable(f):
            self.wid = 0
            self.f = f
            _postfork_chain.append(self)
        else:
            self.wid = f
            self.f = None

    def __call__(self, *args, **kwargs):
        if self.f:
            if self.wid > 0 and self.wid != uwsgi.worker_id():
                return None
            return self.f()
        self.f = args[0]
        _postfork_chain.append(self)
        return self


class thread(object):
    """Run the function in a daemon thread each time it is called."""

    def __init__(self, f):
        self.f = f

    def __call__(self, *args):
        t = threading.Thread(target=self.f, args=args)
        t.daemon = True
        t.start()
        return self.f


class lock(object):
    """Run the function holding uwsgi lock 0."""

    def __init__(self, f):
        self.f = f

    def __call__(self, *args, **kwargs):
        uwsgi.lock()
        try:
            return self.f(*args, **kwargs)
        finally:
            uwsgi.unlock()


def _not_yet(name):
    class _NotYet(object):
        def __init__(self, *args, **kwargs):
            raise NotImplementedError('uwsgidecorators.%s is not implemented yet in imperium' % name)
    _NotYet.__name__ = name
    return _NotYet


for _n in ('timer', 'rbtimer', 'cron', 'filemon', 'signal', 'spool', 'spoolforever', 'spoolraw',
           'mulefunc', 'mule', 'muleloop', 'mulemsg', 'mule_brain', 'farm', 'farm_loop', 'rpc',
           'harakiri', 'erlang'):
    globals()[_n] = _not_yet(_n)


def get_free_signal():
    raise NotImplementedError('uwsgidecorators.get_free_signal is not implemented yet in imperium')
