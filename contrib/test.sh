#!/usr/bin/env bash
# The test suite: lint, types, then pytest (real kernel namespaces, real peers).
set -euo pipefail
cd "$(dirname "$0")/.."
contrib/bootstrap.sh
.venv/bin/ruff check watcher tests
.venv/bin/mypy
exec .venv/bin/pytest -q "$@"
