#!/usr/bin/env bash
# Regenerates docs/cli-terminal.md: what `corral`'s list commands show in a real pseudo-terminal of 140 and 80
# columns, captured by the CLI's `terminal` integration test against a live gateway (see hack/cli-it.sh for what
# it needs: root, the light API server, Redis, SeaweedFS). Honours CORRAL_STATE and CORRAL_API_PORT.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CORRAL_CLI_CAPTURES=$PWD/docs/cli-terminal.md hack/cli-it.sh terminal::every_list_lines_up_in_a_real_terminal
