"""The smallest WSGI app: a 12-byte body with Content-Length (bench/serve, 32-connection run)."""


def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '12')])
    return [b'Hello World!']
