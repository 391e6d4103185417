#!/usr/bin/env bash
# Everything CI checks, in order: unit and integration tests, the gateway on a real API server and the short API
# fuzzing run (docs/fuzzing.md), the CLI on a real API server, the
# trace viewer in headless Chromium, lint (fmt, clippy, CRD drift, charts), then the
# end-to-end suite on a real cluster. This is the README's test command (`make check`) and what .ci/run runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$SECONDS
make --no-print-directory test
make --no-print-directory gateway-it
make --no-print-directory fuzz-short
make --no-print-directory cli-it
make --no-print-directory viewer-test
make --no-print-directory lint
make --no-print-directory e2e
echo "check passed in $(((SECONDS - start) / 60)) min"
