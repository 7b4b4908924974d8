#!/bin/sh
# Runs on the target host, as root, from the remote-exec provisioner in main.tf:
#   sh omlboot-remote.sh STAGING_DIR apply|run FAIL_ON_DEGRADED
# Installs STAGING_DIR/omlboot as /usr/local/bin/omlboot (0755) and STAGING_DIR/config.yaml as
# /etc/omlboot/config.yaml (0600), removes STAGING_DIR, runs omlboot and passes its exit code on:
#   0 done; 1 failed; 2 invalid config or usage (nothing changed); 3 degraded (an optional,
#   monitoring-only component failed), turned into 0 with a warning unless FAIL_ON_DEGRADED is true.
# OMLBOOT_DESTDIR (tests only) installs under that directory instead of /.
set -eu

staging=$1
command=$2
fail_on_degraded=${3:-false}
dest=${OMLBOOT_DESTDIR:-}

# The staging directory holds the config (passwords): remove it however this ends.
trap 'rm -rf "$staging"' EXIT

case $command in
  apply | run) ;;
  *)
    echo "omlboot-remote: command must be apply or run, got '$command'" >&2
    exit 2
    ;;
esac

bin=$dest/usr/local/bin/omlboot
cfg=$dest/etc/omlboot/config.yaml
mkdir -p "$dest/usr/local/bin"
install -d -m 0755 "$dest/etc/omlboot"
umask 077
install -m 0755 "$staging/omlboot" "$bin"
install -m 0600 "$staging/config.yaml" "$cfg"

if ! "$bin" --version; then
  echo "omlboot-remote: $bin does not run on this host (wrong architecture?)" >&2
  exit 1
fi

rc=0
"$bin" "$command" --config "$cfg" || rc=$?

case $rc in
  0)
    echo "omlboot-remote: done"
    ;;
  1)
    echo "omlboot-remote: omlboot $command failed (exit 1); status:" >&2
    "$bin" status >&2 || true
    ;;
  2)
    echo "omlboot-remote: invalid configuration or usage (exit 2); nothing on the host was changed" >&2
    ;;
  3)
    echo "omlboot-remote: degraded (exit 3): an optional monitoring component failed; status:" >&2
    "$bin" status >&2 || true
    if [ "$fail_on_degraded" != true ]; then
      rc=0
    fi
    ;;
  *)
    echo "omlboot-remote: omlboot $command ended with unexpected exit code $rc" >&2
    ;;
esac
exit "$rc"
