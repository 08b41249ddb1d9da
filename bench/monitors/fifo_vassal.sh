#!/bin/sh
# Benchmark vassal for bench/monitors/run.py: it reports its own start on the FIFO named
# by $BENCH_FIFO (one line: its argv), announces itself to the Emperor (bytes 1 and 5)
# and exits on the first byte from the Emperor (a stop) or EOF. It does not read its
# pushed config.
fd=${UWSGI_EMPEROR_FD:?not started by an Emperor}
printf '%s\n' "$*" > "${BENCH_FIFO:?}"
printf '\001\005' >&"$fd"
exec head -c 1 <&"$fd" >/dev/null
