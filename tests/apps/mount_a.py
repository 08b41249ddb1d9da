# A mounted app (seed-python.md A23-A25): reports where it is mounted and a global shared
# through sys.modules with the other mount (one interpreter).
import json
import sys

sys.modules.setdefault('shared_state', type(sys)('shared_state'))
sys.modules['shared_state'].set_by = 'mount_a'


def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps({'app': 'a', 'SCRIPT_NAME': environ.get('SCRIPT_NAME', '<missing>'),
                        'PATH_INFO': environ['PATH_INFO']}).encode()]
