#!/usr/bin/env bash
# A real two-node Slurm cluster (nodes n1, n2; partition "debug") on this one machine, for CI and
# for trying the cluster paths of avplug without a cluster.
#
#   scripts/slurm_local.sh start    # install (Debian) if missing, configure, start; waits until
#                                   # sinfo shows n1 and n2 idle (or busy, if jobs already run)
#   scripts/slurm_local.sh status   # exit 0 iff the controller answers and n1, n2 are up
#   scripts/slurm_local.sh stop     # stop slurmctld, both slurmd and the munged this script started
#
# Every subcommand is idempotent.  Needs root (it writes /etc/slurm and /etc/munge).  Both "nodes"
# are slurmd daemons on this host (NodeHostname = `hostname -s`, ports 17001-17002) with one CPU
# each, so a job gets one task per node.  There is no accounting daemon: `sacct` fails, and tools
# that read job states through it (submitit, TorchX) report UNKNOWN; read `scontrol show job`.
#
# Environment: SLURM_LOCAL_MEM_MB (RealMemory per node, default 8000),
#              SLURM_LOCAL_TIMEOUT (seconds to wait for idle nodes, default 120).
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
MUNGE_KEY=/etc/munge/munge.key
MUNGE_PID=/run/munge/munged.pid
CTLD_PID=/run/slurmctld.pid
NODES=(n1 n2)
MEM_MB="${SLURM_LOCAL_MEM_MB:-8000}"
TIMEOUT="${SLURM_LOCAL_TIMEOUT:-120}"

log() { echo "[slurm_local] $*" >&2; }
die() { log "error: $*"; exit 1; }

# True when the pid in file $1 names a live process whose command line contains $2.
pid_alive() {
    local file="$1" name="$2" pid
    [[ -s "$file" ]] || return 1
    pid="$(cat "$file")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$name"
}

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sinfo >/dev/null || missing+=(slurm-client)
    command -v munged >/dev/null || missing+=(munge)
    if ((${#missing[@]})); then
        [[ $EUID -eq 0 ]] || die "missing ${missing[*]} and not root: install ${PACKAGES[*]}"
        log "installing ${PACKAGES[*]}"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${PACKAGES[@]}"
    fi
}

start_munge() {
    mkdir -p /etc/munge /var/log/munge /var/lib/munge /run/munge
    if [[ ! -s "$MUNGE_KEY" ]]; then
        log "creating $MUNGE_KEY"
        dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none
    fi
    chown -R munge:munge /etc/munge /var/log/munge /var/lib/munge /run/munge
    chmod 400 "$MUNGE_KEY"
    if ! pid_alive "$MUNGE_PID" munged; then
        log "starting munged"
        runuser -u munge -- /usr/sbin/munged --force
    fi
    local i
    for i in $(seq 1 50); do
        munge -n | unmunge >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    die "munge does not answer (munge -n | unmunge)"
}

write_conf() {
    local host
    host="$(hostname -s)"
    mkdir -p "$CONF_DIR" /var/spool/slurmctld /var/log/slurm
    local n
    for n in "${NODES[@]}"; do mkdir -p "/var/spool/slurmd/$n"; done
    local tmp
    tmp="$(mktemp "$CONF_DIR/slurm.conf.XXXXXX")"
    cat >"$tmp" <<EOF
# Written by avplug scripts/slurm_local.sh: two slurmd "nodes" on host $host.
ClusterName=local
SlurmctldHost=$host
AuthType=auth/munge
SlurmUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd/%n
SlurmdPidFile=/run/slurmd.%n.pid
SlurmctldPidFile=$CTLD_PID
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.%n.log
MpiDefault=none
KillWait=10
NodeName=n[1-2] NodeHostname=$host Port=17001-17002 CPUs=1 RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=n[1-2] Default=YES MaxTime=INFINITE State=UP
EOF
    chmod 644 "$tmp"
    if [[ -f "$CONF" ]] && cmp -s "$tmp" "$CONF"; then
        rm -f "$tmp"
        return 1  # unchanged
    fi
    mv "$tmp" "$CONF"
    log "wrote $CONF"
    return 0
}

ctld_up() { scontrol ping 2>/dev/null | grep -q "is UP"; }

# Node state words of n1 and n2 as "n1:idle n2:idle" (empty when the controller does not answer).
node_states() {
    sinfo -h -N -o "%N:%t" 2>/dev/null | sort -u | tr '\n' ' '
}

# True when n1 and n2 are up and answering: idle, or busy with jobs (a restart while jobs run).
all_nodes_up() {
    local states n
    states="$(node_states)"
    for n in "${NODES[@]}"; do
        [[ " $states " =~ \ $n:(idle|alloc|mix|comp)\  ]] || return 1
    done
}

start() {
    install_packages
    [[ $EUID -eq 0 ]] || die "start needs root (writes $CONF_DIR and /etc/munge)"
    start_munge
    local changed=0
    write_conf && changed=1
    if ctld_up && ((changed)); then
        log "configuration changed: scontrol reconfigure"
        scontrol reconfigure
    fi
    if ! ctld_up; then
        log "starting slurmctld"
        slurmctld
    fi
    local n
    for n in "${NODES[@]}"; do
        if ! pid_alive "/run/slurmd.$n.pid" slurmd; then
            log "starting slurmd -N $n"
            slurmd -N "$n"
        fi
    done
    local deadline=$((SECONDS + TIMEOUT)) resumed=0
    until all_nodes_up; do
        if ((SECONDS > deadline)); then
            sinfo -N >&2 || true
            die "nodes not up after ${TIMEOUT}s (see /var/log/slurm/)"
        fi
        # Nodes left DOWN/DRAIN by an earlier unclean stop come back only when resumed.
        if ((!resumed)) && [[ "$(node_states)" =~ (down|drain|drng|fail) ]]; then
            log "resuming nodes left down: $(node_states)"
            scontrol update NodeName=n[1-2] State=RESUME 2>/dev/null || true
            resumed=1
        fi
        sleep 1
    done
    log "up: $(node_states)"
    sinfo -N
}

stop() {
    if ctld_up; then
        log "scontrol shutdown"
        scontrol shutdown || true
    fi
    local n pid i
    local files=("$CTLD_PID")
    for n in "${NODES[@]}"; do files+=("/run/slurmd.$n.pid"); done
    for i in $(seq 1 50); do
        local alive=0 f
        for f in "${files[@]}"; do
            pid_alive "$f" slurm && alive=1
        done
        ((alive)) || break
        sleep 0.2
    done
    for f in "${files[@]}"; do
        if pid_alive "$f" slurm; then
            pid="$(cat "$f")"
            log "terminating pid $pid ($f)"
            kill "$pid" || true
        fi
    done
    if pid_alive "$MUNGE_PID" munged; then
        pid="$(cat "$MUNGE_PID")"
        log "terminating munged pid $pid"
        kill "$pid" || true
    fi
    log "stopped"
}

status() {
    local ok=0
    pid_alive "$MUNGE_PID" munged && echo "munged: running (pid $(cat "$MUNGE_PID"))" || { echo "munged: stopped"; ok=1; }
    if ctld_up; then
        echo "slurmctld: up"
        sinfo -N
        local n states
        states="$(node_states)"
        for n in "${NODES[@]}"; do
            [[ " $states " =~ \ $n:(idle|alloc|mix|comp)\  ]] || ok=1
        done
    else
        echo "slurmctld: down"
        ok=1
    fi
    return $ok
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
