#!/usr/bin/env bash
# The Helm chart's tests: strict lint, offline renders of the default and example values,
# every object validated against the Kubernetes schemas, key facts asserted, bad values
# refused. Exits non-zero on any failure. Needs the packages in requirements.txt:
#   python3 -m pip install -r deploy/tests/requirements.txt
# `cargo test helm` runs the same script.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 deploy/tests/test_chart.py "$@"
