{"uwsgi": {"processes": 2, "from": "b.js"}}
