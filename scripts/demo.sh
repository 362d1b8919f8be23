#!/usr/bin/env bash
# Sets up a checkout and runs the live local demo cluster: three agents in network
# namespaces with virtual IPs and a client. Needs root (it creates namespaces).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec node "$floatip_root/src/cli/main.ts" demo "$@"
