#!/bin/bash
# Runs omlboot's VM end-to-end suite: installs host tools if missing, builds (or reuses) the guest image and the
# stand-in images, builds omlboot (static, release) unless OMLBOOT_BIN is set, then boots the guests.
#   tests/e2e/run.sh                 # whole suite
#   tests/e2e/run.sh smoke           # tests whose name contains "smoke"
#   tests/e2e/run.sh apply           # the apply scenarios (tests/e2e_apply.rs)
#   tests/e2e/run.sh bake            # packer build + first boot of the baked image, and the bare reference (tests/e2e_bake.rs)
#   tests/e2e/run.sh apply_aio_killed # kill -9 at every stage of a fresh apply, then convergence (tests/e2e_reliability.rs)
#   tests/e2e/run.sh upgrade         # upgrade/rollback/drain/window/--force/kill -9 per journal step on one aio guest (tests/e2e_upgrade.rs)
#   tests/e2e/run.sh powercut        # power cut in the middle of the first boot, then the same disk again (tests/e2e_powercut.rs)
#   tests/e2e/run.sh backup          # backup on host A, restore at host B's first boot, corrupt/kill -9/schedule (tests/e2e_backup.rs)
# Env: OMLBOOT_BIN (binary to test), OMLBOOT_E2E_CACHE (cache dir, default tests/e2e/.cache),
#      E2E_MIRROR / E2E_SECURITY_MIRROR (Debian mirrors for image builds).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
"$HERE/setup-host.sh"
cd "$ROOT"
exec cargo test --test e2e --test e2e_apply --test e2e_bake --test e2e_reliability --test e2e_upgrade --test e2e_powercut --test e2e_backup -- --ignored --test-threads=1 --nocapture "$@"
