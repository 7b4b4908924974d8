#!/bin/bash
# Runs in an e2e guest (tests/e2e_reliability.rs copies it to /root/killat.sh):
#   killat.sh N POINT [LIMIT_S]
# starts `omlboot apply` in the background (log /root/apply-N.log), waits until that run is at POINT,
# kills it with SIGKILL and prints key=value lines about the moment of the kill.
# POINT: start (at once), files (a file step recorded), images (a `podman pull` running), units (unit
# starts queued, no probe or task yet), tasks (a Django bootstrap task's container running), probes (a probe
# step recorded). The poll reads state.json with shell builtins only, so it keeps up with the file steps.
set -u
n=$1
point=$2
limit=${3:-1500}
S=${KILLAT_STATE:-/var/lib/omlboot/state.json}
# The previous run was killed at least a second ago: a state.json whose started_unix is >= launch is this run's.
sleep 1
launch=$(date +%s)
nohup omlboot apply >"/root/apply-$n.log" 2>&1 </dev/null &
pid=$!
start_ns=$(date +%s%N)

state=''
load() {
    state=''
    [[ -r $S ]] || return 1
    { read -r -d '' state <"$S"; } 2>/dev/null || true
    if [[ $state =~ \"started_unix\":\ ([0-9]+) ]] && ((BASH_REMATCH[1] >= launch)); then
        return 0
    fi
    state=''
    return 1
}
has() { [[ $state == *"\"name\": \"$1"* ]]; }
alive() {
    local s
    { read -r s <"/proc/$pid/stat"; } 2>/dev/null || return 1
    [[ $s != *") Z "* ]]
}
# Only the Django tasks (run again when their image changes, idempotent): a kill during the run-once admin
# reset could leave its container finishing on its own while the next run starts it again.
task_running() { pgrep -f 'podman run --rm --network=host --name omlboot-task-django_' >/dev/null; }
ready() {
    case $point in
    start) return 0 ;;
    files) load && has 'file ' ;;
    images) load && ! has 'images' && pgrep -f 'podman( .*)? pull ' >/dev/null ;;
    units) load && has 'enable ' && ! has 'probe ' && ! has 'task ' ;;
    tasks) task_running && load ;;
    probes) load && has 'probe ' ;;
    *)
        echo "unknown point $point" >&2
        exit 2
        ;;
    esac
}
# How long to stay in the stage before the kill, so it lands in its middle (then the condition must still hold).
case $point in
images) settle=20 ;;
units | tasks) settle=2 ;;
*) settle=0 ;;
esac

deadline=$((launch + limit))
settled=0
while :; do
    if ! alive; then
        wait "$pid"
        code=$?
        echo "ended_before=$point"
        echo "exit=$code"
        exit 0
    fi
    if ready; then
        if ((settled == 0 && settle > 0)); then
            settled=1
            sleep "$settle"
            continue
        fi
        break
    fi
    if (($(date +%s) > deadline)); then
        kill -9 "$pid"
        wait "$pid"
        echo "timeout=$point"
        exit 0
    fi
    case $point in
    files | probes) ;; # tight: the file steps take milliseconds each
    *) sleep 0.2 ;;
    esac
done
# What runs besides omlboot right now, then the kill.
pull=$(pgrep -af 'podman( .*)? pull ' | head -n 1 | tr ' ' '\n' | grep / | tail -n 1)
task=$(pgrep -af 'podman run --rm --network=host --name omlboot-task-' | grep -o 'omlboot-task-[a-z_]*' | head -n 1)
jobs=$(systemctl list-jobs --no-legend 2>/dev/null | grep -c '\.service')
kill -9 "$pid"
end_ns=$(date +%s%N)
wait "$pid"
code=$?
echo "killed=$point"
echo "exit=$code"
echo "after_ms=$(((end_ns - start_ns) / 1000000))"
echo "pull=$pull"
echo "task=$task"
echo "jobs=$jobs"
