#!/bin/sh
# Set everything up (system packages and both extras included) and run the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k record -x
set -eu
cd "$(dirname "$0")/.."
sh scripts/install.sh --test
exec .venv/bin/python -m pytest "$@"
