{"uwsgi": {"master": true, "from": "a.js via --js"}}
