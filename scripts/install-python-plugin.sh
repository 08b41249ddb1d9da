#!/usr/bin/env bash
# Builds the CPython plugin for one Python and installs it under uWSGI's plugin naming:
#   scripts/install-python-plugin.sh [python-executable] [plugins-dir]
# e.g. scripts/install-python-plugin.sh python3.12 /usr/lib/imperium/plugins
# installs python312_plugin.so there, and points python3_plugin.so at the newest one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${1:-python3}
DIR=${2:-/usr/lib/imperium/plugins}
VER=$("$PY" -c 'import sys; print("%d%d" % sys.version_info[:2])')
# A separate target dir per version: the artifact's name does not carry the version.
PYO3_PYTHON=$(command -v "$PY") cargo build --release -p imperium-python --target-dir "target/python$VER"
mkdir -p "$DIR"
install -m 0755 "target/python$VER/release/libimperium_python.so" "$DIR/python${VER}_plugin.so"
newest=$(cd "$DIR" && ls python3[0-9]*_plugin.so | sort -V | tail -1)
ln -sfn "$newest" "$DIR/python3_plugin.so"
echo "installed $DIR/python${VER}_plugin.so (python3 -> $newest)"
