#!/usr/bin/env python3
"""A MongoDB wire-protocol server for the mongodb:// monitor tests (MockupDB).

    mongo_fixture.py STATE_FILE PORT

Answers the driver's handshake with a full hello document (the Rust driver rejects a
minimal one), and every `find` with the documents of STATE_FILE, read at each query, in
MongoDB extended JSON (`{"$date": {"$numberLong": "..."}}` for dates). A STATE_FILE holding
the word `error` makes `find` fail. The collection must be named `vassals`. Prints `ready PORT` once it listens; logs each find to
stderr as `find <filter>`.
"""
import datetime
import sys
import time

from bson import Int64, json_util
from mockupdb import MockupDB, OpMsg

state_path, port = sys.argv[1], int(sys.argv[2])

hello = {
    "ismaster": True,
    "isWritablePrimary": True,
    "helloOk": True,
    "maxWireVersion": 21,
    "minWireVersion": 0,
    "maxBsonObjectSize": 16777216,
    "maxMessageSizeBytes": 48000000,
    "maxWriteBatchSize": 100000,
    "localTime": datetime.datetime.now(datetime.timezone.utc),
    "logicalSessionTimeoutMinutes": 30,
    "connectionId": 1,
    "ok": 1,
}


def on_find(request):
    text = open(state_path).read()
    sys.stderr.write("find %s\n" % json_util.dumps(request.doc.get("filter", {})))
    sys.stderr.flush()
    if text.strip() == "error":
        return request.replies({"ok": 0, "errmsg": "scripted failure", "code": 2})
    docs = json_util.loads(text)
    coll = request.doc.get("find", "vassals")
    ns = "%s.%s" % (request.doc.get("$db", "uwsgi"), coll)
    return request.replies(cursor={"id": Int64(0), "firstBatch": docs, "ns": ns})


server = MockupDB(port=port, auto_ismaster=hello, verbose="-v" in sys.argv)
server.autoresponds(OpMsg("find", "vassals"), on_find)
server.autoresponds(OpMsg("endSessions"), ok=1)
server.autoresponds(OpMsg("ping"), ok=1)
server.run()
print("ready %d" % server.port, flush=True)
while True:
    time.sleep(3600)
