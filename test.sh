#!/usr/bin/env bash
# The whole test suite, from a fresh Debian/Ubuntu machine with or without a GPU: installs what
# is missing, then a default Release build + ctest (with the install/consumer test) and a CPU-only
# AddressSanitizer + UBSan build + ctest. Exits non-zero on any failure. See run.sh for details.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/run.sh" test
