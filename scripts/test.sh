#!/usr/bin/env bash
# Sets up a checkout and runs every test: type check, lint and format check, unit,
# property and simulation tests, then the end-to-end tests in network namespaces
# (these need root; as another user they fail with a clear message).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
npm test
