# A Flask app (tests/python_frameworks.rs): a page, a form POST, a static file (served by
# Flask through wsgi.file_wrapper), and where Python runs from.
import os
import sys

import flask

app = flask.Flask(__name__, static_folder=os.path.join(os.path.dirname(os.path.abspath(__file__)), 'flask_static'),
                  static_url_path='/static')


@app.route('/')
def index():
    return 'Hello from Flask'


@app.route('/form', methods=['POST'])
def form():
    return 'name=%s' % flask.request.form.get('name', '')


@app.route('/where')
def where():
    return flask.jsonify(prefix=sys.prefix, flask_file=flask.__file__, script_name=flask.request.script_root)
