# `module = pkgfactory.factory:make_app()` (seed-python.md A04): the factory runs once per
# app load; each call appends a line to $FACTORY_COUNT_FILE.
import os


def make_app():
    with open(os.environ['FACTORY_COUNT_FILE'], 'a') as f:
        f.write('called\n')

    def app(environ, start_response):
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'made by the factory']
    return app
