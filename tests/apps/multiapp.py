"""A multiapp module (uWSGI's `applications` dict): a mountpoint maps to a callable or to
the name of one in this module."""


def first(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('first ' + environ['SCRIPT_NAME'] + ' ' + environ['PATH_INFO']).encode()]


def second(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('second ' + environ['SCRIPT_NAME'] + ' ' + environ['PATH_INFO']).encode()]


applications = {'/one': first, '/two': 'second'}
