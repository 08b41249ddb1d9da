#!/bin/bash
# The lightest possible vassal for Emperor benchmarks: it announces itself (byte 1,
# spawned; byte 5, accepting), optionally sends a heartbeat (byte 26) every
# $BENCH_HEARTBEAT seconds, and exits on the first byte from its Emperor (a stop) or EOF.
# Its arguments (--ini NAME) are ignored. Memory: one head process (plus a bash for the
# heartbeat loop). bash, not dash: dash cannot redirect to descriptors above 9.
fd=${UWSGI_EMPEROR_FD:?not started by an Emperor}
printf '\001\005' >&"$fd"
if [ -n "${BENCH_HEARTBEAT:-}" ]; then
    ( while sleep "$BENCH_HEARTBEAT"; do printf '\032' >&"$fd" 2>/dev/null || exit 0; done ) &
fi
exec head -c 1 <&"$fd" >/dev/null
