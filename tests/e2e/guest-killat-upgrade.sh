#!/bin/bash
# Runs in an e2e guest (tests/e2e_upgrade.rs copies it to /root/killat-upgrade.sh):
#   killat-upgrade.sh N STEP LIMIT_S OMLBOOT_ARGS...
# starts `omlboot OMLBOOT_ARGS...` (e.g. `upgrade --set omnileads_img=...`) in the background (log
# /root/upgrade-kill-N.log, or $KILLAT_LOG-N.log), waits until that run's upgrade journal (/var/lib/omlboot/upgrade.json,
# src/apply/upgrade.rs) records STEP, kills omlboot with SIGKILL and prints key=value lines about the
# moment of the kill.
# STEP: a journal step as upgrade.json spells it: pulled, previous_tagged, dump_taken, restarting, probing,
# upgraded, rolling_back, rolled_back. Each is written (fsync'd) before the step it names is taken, so the
# kill lands right after the record, in the step. The journal counts once its started_unix is this run's
# (a finished journal is replaced by the next upgrade); the poll reads it with shell builtins only.
# tests/e2e_backup.rs uses it for `omlboot restore` too: KILLAT_JOURNAL=/var/lib/omlboot/restore.json (the
# restore journal, src/backup/restore.rs, same `step` and `started_unix` fields), KILLAT_LOG=/root/restore-kill.
set -u
n=$1
step=$2
limit=$3
shift 3
J=${KILLAT_JOURNAL:-/var/lib/omlboot/upgrade.json}
# The previous journal was started at least a second ago: one whose started_unix is >= launch is this run's.
sleep 1
launch=$(date +%s)
nohup omlboot "$@" >"${KILLAT_LOG:-/root/upgrade-kill}-$n.log" 2>&1 </dev/null &
pid=$!
start_ns=$(date +%s%N)

journal=''
load() {
    journal=''
    [[ -r $J ]] || return 1
    { read -r -d '' journal <"$J"; } 2>/dev/null || true
    if [[ $journal =~ \"started_unix\":\ ([0-9]+) ]] && ((BASH_REMATCH[1] >= launch)); then
        return 0
    fi
    journal=''
    return 1
}
recorded() { [[ $journal == *"\"step\": \"$step\""* ]]; }
alive() {
    local s
    { read -r s <"/proc/$pid/stat"; } 2>/dev/null || return 1
    [[ $s != *") Z "* ]]
}

deadline=$((launch + limit))
while :; do
    if ! alive; then
        wait "$pid"
        code=$?
        echo "ended_before=$step"
        echo "exit=$code"
        exit 0
    fi
    if load && recorded; then
        break
    fi
    if (($(date +%s) > deadline)); then
        kill -9 "$pid"
        wait "$pid"
        echo "timeout=$step"
        exit 0
    fi
    # Some steps last well under a second under TCG (a `podman tag`): poll often, with an external sleep
    # only (the builtins are cheap; omlboot keeps the CPU).
    sleep 0.05
done
kill -9 "$pid"
end_ns=$(date +%s%N)
wait "$pid"
code=$?
# What the killed run left: the last step in the journal (entries come after the groups, in order) and
# how many entries; what ran besides omlboot (orphans of the kill).
load || true
last=''
rest=$journal
while [[ $rest =~ \"step\":\ \"([a-z_]+)\" ]]; do
    last=${BASH_REMATCH[1]}
    rest=${rest#*"${BASH_REMATCH[0]}"}
done
entries=0
rest=$journal
while [[ $rest == *'"at_unix":'* ]]; do
    entries=$((entries + 1))
    rest=${rest#*'"at_unix":'}
done
jobs=$(systemctl list-jobs --no-legend 2>/dev/null | grep -c '\.service')
orphans=$(pgrep -af '^(/usr/bin/)?podman ' | grep -v ' ps ' | cut -c1-120 | tr '\n' ';')
echo "killed=$step"
echo "exit=$code"
echo "after_ms=$(((end_ns - start_ns) / 1000000))"
echo "last_step=$last"
echo "entries=$entries"
echo "jobs=$jobs"
echo "orphans=$orphans"
