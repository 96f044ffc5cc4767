#!/usr/bin/env bash
# The main job: a live demo of the embedded control plane, replica agents and the watcher,
# all in network namespaces that are removed at the end (even on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
contrib/bootstrap.sh
exec .venv/bin/mesh-watcher demo "$@"
