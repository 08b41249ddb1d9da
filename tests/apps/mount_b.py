# The second mount of the A23-A25 checks.
import json
import sys


def application(environ, start_response):
    shared = getattr(sys.modules.get('shared_state'), 'set_by', None)
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps({'app': 'b', 'SCRIPT_NAME': environ.get('SCRIPT_NAME', '<missing>'),
                        'PATH_INFO': environ['PATH_INFO'], 'shared': shared}).encode()]
