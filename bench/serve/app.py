# The apps of bench/serve: Flask hello world and a 64 KiB response (`app`), and the same
# two routes as a plain WSGI callable (`plain`).
import flask

BIG = b'x' * 65536
app = flask.Flask(__name__)


@app.route('/')
def hello():
    return 'Hello World'


@app.route('/64k')
def big():
    return flask.Response(BIG, mimetype='application/octet-stream')


def plain(environ, start_response):
    if environ['PATH_INFO'] == '/64k':
        start_response('200 OK', [('Content-Type', 'application/octet-stream')])
        return [BIG]
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'Hello World']
