#!/usr/bin/env bash
# Bring up, inspect or stop the two real "engines" that the integration
# tests of the pool's remote workers run against, all on this one machine:
#
#   * a single-node Slurm cluster (munged + slurmctld + slurmd), and
#   * an sshd listening on 127.0.0.1:2222 that accepts a key made here.
#
# Usage: scripts/engines.sh up|down|status
#
# CI runs this as root on a fresh Debian/Ubuntu container without systemd.
# `up` installs what is missing, starts what is not running, checks that
# each engine really works and writes $STATE_DIR/env for the tests to source.
# Running `up` again is safe: working daemons are left alone, and a daemon
# is restarted only when the configuration written for it has changed.
#
# Environment knobs (all optional):
#   PROCTOR_ENGINES_DIR  state dir (default: <repo>/target/engines)
#   PROCTOR_SSH_PORT     sshd port (default: 2222)

set -euo pipefail

# sshd, munged, slurmd and friends live in /usr/sbin, which a non-root
# PATH often lacks.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

SCRIPT="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE_DIR="${PROCTOR_ENGINES_DIR:-$REPO_ROOT/target/engines}"
SSH_PORT="${PROCTOR_SSH_PORT:-2222}"
SSH_HOST_ALIAS=proctor-test

SLURM_LOG_DIR=/var/log/slurm
SLURMCTLD_LOG=$SLURM_LOG_DIR/slurmctld.log
SLURMD_LOG=$SLURM_LOG_DIR/slurmd.log
SLURMCTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_KEY=/etc/munge/munge.key
MUNGE_LOG=/var/log/munge/munged.log
MUNGE_PID=/run/munge/munged.pid

log() { printf '[engines] %s\n' "$*" >&2; }

# die STEP MESSAGE [LOGFILE...]: name the failing step, show the end of the
# logs that explain it, and stop. A daemon's LOG.start file (what it printed
# before it had opened its own log, e.g. a config error) is shown too.
die() {
    local step=$1 msg=$2 base logfile
    shift 2
    printf '[engines] FAILED at step "%s": %s\n' "$step" "$msg" >&2
    for base in "$@"; do
        for logfile in "$base.start" "$base"; do
            [[ -s $logfile && -r $logfile ]] || continue
            printf '[engines] --- last lines of %s ---\n' "$logfile" >&2
            tail -n 25 "$logfile" >&2 || true
            printf '[engines] --- end of %s ---\n' "$logfile" >&2
        done
    done
    exit 1
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# Nanoseconds since the epoch, for timing.
now_ns() { date +%s%N; }

# ---------------------------------------------------------------------------
# Step 1: packages
# ---------------------------------------------------------------------------

# Print the Debian packages whose commands are missing.
missing_packages() {
    local pkgs=() c
    for c in slurmctld slurmd sinfo srun scontrol; do
        command -v "$c" >/dev/null 2>&1 || { pkgs+=(slurm-wlm); break; }
    done
    for c in munged munge unmunge; do
        command -v "$c" >/dev/null 2>&1 || { pkgs+=(munge); break; }
    done
    [[ -x /usr/sbin/sshd ]] || pkgs+=(openssh-server)
    for c in ssh ssh-keygen; do
        command -v "$c" >/dev/null 2>&1 || { pkgs+=(openssh-client); break; }
    done
    echo "${pkgs[*]:-}"
}

install_packages() {
    local pkgs
    pkgs=$(missing_packages)
    [[ -z $pkgs ]] && return 0
    if ! is_root || ! command -v apt-get >/dev/null 2>&1; then
        die packages "missing commands from: $pkgs; run as root on a machine with apt-get, or install them yourself"
    fi
    log "installing: $pkgs"
    # Without systemd, the packages' maintainer scripts would start their
    # services through invoke-rc.d with the stock configuration (an sshd on
    # port 22, a munged we did not start). policy-rc.d exiting 101 is the
    # Debian way to forbid that; it is removed again afterwards.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        made_policy=1
    fi
    local rc=0
    # shellcheck disable=SC2086  # $pkgs is a word list on purpose
    { apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null; } || rc=$?
    [[ $made_policy -eq 1 ]] && rm -f "$policy"
    [[ $rc -eq 0 ]] || die packages "apt-get failed (exit $rc) installing: $pkgs"
    pkgs=$(missing_packages)
    [[ -z $pkgs ]] || die packages "still missing after apt-get: $pkgs"
}

# ---------------------------------------------------------------------------
# Step 2: munge (Slurm's authentication)
# ---------------------------------------------------------------------------

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

munge_up() {
    if alive munged && munge_works; then
        log "munged already running"
        return 0
    fi
    install -d -m 0700 -o munge -g munge /etc/munge /var/log/munge
    # /var/lib/munge holds the PRNG seed; /run/munge the socket, which
    # clients (any user) must be able to reach, hence 0755.
    install -d -m 0711 -o munge -g munge /var/lib/munge
    install -d -m 0755 -o munge -g munge /run/munge
    if [[ ! -s $MUNGE_KEY ]]; then
        log "creating $MUNGE_KEY"
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile="$MUNGE_KEY" --force
        else
            # munge before 0.5.14 has no mungekey; 1 KiB of random bytes is
            # what its create-munge-key did.
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
        fi
    fi
    # munged refuses a key that others can read or that it does not own.
    chown munge:munge "$MUNGE_KEY"
    chmod 0400 "$MUNGE_KEY"

    # A munged that runs but does not answer (or a stale socket/pid from a
    # killed one) is stopped before a fresh start.
    if alive munged; then
        log "munged runs but does not answer; restarting it"
        stop_procs munged="$MUNGE_PID"
    fi
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock "$MUNGE_PID"

    # munged is meant to run as the munge user; if that is not possible
    # (no runuser, or the container forbids setuid), run it as root, which
    # it only accepts with --force.
    if command -v runuser >/dev/null 2>&1 && runuser -u munge -- munged 2>>"$MUNGE_LOG.start"; then
        :
    else
        log "munged as user munge failed; starting it as root with --force"
        chown root:root "$MUNGE_KEY"
        munged --force 2>>"$MUNGE_LOG.start" || die munge "munged did not start" "$MUNGE_LOG"
    fi
    local i
    for i in $(seq 50); do
        munge_works && break
        sleep 0.1
    done
    munge_works || die munge "munge -n | unmunge fails" "$MUNGE_LOG"
    log "munged started"
}

# ---------------------------------------------------------------------------
# Step 3: Slurm
# ---------------------------------------------------------------------------

# Where the installed Slurm reads slurm.conf. The path is compiled into
# libslurm (Debian: /etc/slurm since 20.11, /etc/slurm-llnl before), so read
# it from there rather than guessing from the version.
slurm_conf_path() {
    local lib conf=""
    lib=$(ldd "$(command -v sinfo)" 2>/dev/null | awk '/libslurm/ {print $3; exit}')
    if [[ -n $lib && -r $lib ]]; then
        conf=$(grep -a -o -m1 '/etc/slurm[A-Za-z0-9_-]*/slurm\.conf' "$lib" | head -n1 || true)
    fi
    if [[ -z $conf ]]; then
        if [[ -d /etc/slurm-llnl && ! -d /etc/slurm ]]; then
            conf=/etc/slurm-llnl/slurm.conf
        else
            conf=/etc/slurm/slurm.conf
        fi
    fi
    echo "$conf"
}

slurm_version() { sinfo --version 2>/dev/null | awk '{print $2}'; }

# The node's hardware line. Use slurmd's own view of the topology when it
# agrees with nproc (so that CR_Core counts real cores); otherwise, e.g. in
# a cpuset-limited container, just the usable CPU count.
slurm_node_hw() {
    local ncpu mem_mb real hw cpus
    ncpu=$(nproc)
    mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024}' /proc/meminfo)
    # Headroom: slurmd drains a node whose RealMemory exceeds what it finds,
    # and the OS and the tests need memory too. Keep 10%, at least 256 MB.
    local head=$((mem_mb / 10))
    ((head < 256)) && head=256
    real=$((mem_mb - head))
    ((real < 100)) && real=100
    hw=$(slurmd -C 2>/dev/null | head -n1 || true)
    cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
    if [[ $cpus == "$ncpu" ]]; then
        echo "$(grep -o 'CPUs=[0-9]* Boards=[0-9]* SocketsPerBoard=[0-9]* CoresPerSocket=[0-9]* ThreadsPerCore=[0-9]*' <<<"$hw") RealMemory=$real"
    else
        echo "CPUs=$ncpu RealMemory=$real"
    fi
}

write_slurm_conf() {
    local node=$1 ver
    ver=$(slurm_version)
    cat <<EOF
# Written by scripts/engines.sh (proctor) for a single-node test cluster.
# Slurm $ver. Changes are overwritten by the next \`engines.sh up\`.
ClusterName=proctor
# The controller and the only compute node are this machine; the address in
# parentheses spares a DNS lookup of the short hostname.
SlurmctldHost=$node(127.0.0.1)
# Everything runs as root: the daemons, and the job steps of whoever submits.
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$SLURMCTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$SLURMCTLD_LOG
SlurmdLogFile=$SLURMD_LOG
SlurmctldDebug=info
SlurmdDebug=info
# Containers seldom give usable cgroups (here often v1 or read-only), so
# track processes by parent pid and do no task binding: neither needs cgroups.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# Allocate cores, not whole nodes, so that several test jobs share the node.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# A node that went DOWN (e.g. slurmd restarted) becomes usable again as soon
# as its slurmd registers with a valid configuration.
ReturnToService=2
# No slurmdbd and no accounting: fewer daemons, faster job start.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
# No mail on this machine; the default MailProg is missing and logs an error.
MailProg=/bin/true
# Test jobs are short; do not keep finished ones around, and reap a node
# that stopped answering quickly.
MinJobAge=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=$node NodeAddr=127.0.0.1 $(slurm_node_hw) State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
}

# cgroup.conf: with proctrack/linuxproc and task/none no cgroup plugin is
# needed (Slurm 22.05 starts and runs steps without any cgroup.conf), but
# some versions read it and load a cgroup plugin anyway. Slurm 23.02+
# understands CgroupPlugin=disabled; older versions reject that, so there
# the file only turns off every constraint it can.
write_cgroup_conf() {
    local ver major minor
    ver=$(slurm_version)
    major=${ver%%.*}
    minor=${ver#*.}
    minor=${minor%%.*}
    echo "# Written by scripts/engines.sh (proctor): no cgroup enforcement."
    if ((major > 23 || (major == 23 && 10#$minor >= 2))); then
        echo "CgroupPlugin=disabled"
    fi
    echo "ConstrainCores=no"
    echo "ConstrainRAMSpace=no"
    echo "ConstrainSwapSpace=no"
    echo "ConstrainDevices=no"
    echo "IgnoreSystemd=yes"
}

# pid_alive PID: the process exists and is not a zombie. The container's
# init can take a second to reap a dead daemon, and kill -0 succeeds on a
# zombie. A zombie main thread whose other threads still run (munged while
# it shuts down) is alive.
pid_alive() {
    local st tasks
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)
    [[ -n $st ]] || return 1
    [[ $st != Z && $st != X ]] && return 0
    tasks=$(find "/proc/$1/task" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    ((tasks > 1))
}

# stop_procs ENTRY...: stop daemons and wait until they are gone. An ENTRY
# is PIDFILE, or NAME=PIDFILE to also catch a process of exactly that name
# that lost its pid file. All get SIGTERM at once and are waited for
# together, because munged and slurmctld each take a second or two to exit.
stop_procs() {
    local e name pidfile pid i left=0 labels=() pids=() pidfiles=()
    for e in "$@"; do
        name="" pidfile=$e
        if [[ $e == *=* ]]; then
            name=${e%%=*} pidfile=${e#*=}
        fi
        pidfiles+=("$pidfile")
        pid=$(cat "$pidfile" 2>/dev/null || true)
        if pid_alive "$pid"; then
            pids+=("$pid")
            labels+=("${name:-$(basename "$pidfile" .pid)}($pid)")
        fi
        if [[ -n $name ]]; then
            for pid in $(pgrep -x "$name" || true); do
                pid_alive "$pid" || continue
                [[ " ${pids[*]:-} " == *" $pid "* ]] && continue
                pids+=("$pid")
                labels+=("$name($pid)")
            done
        fi
    done
    if ((${#pids[@]})); then
        log "stopping ${labels[*]}"
        kill "${pids[@]}" 2>/dev/null || true
        for i in $(seq 150); do
            left=0
            for pid in "${pids[@]}"; do
                pid_alive "$pid" && left=1
            done
            ((left)) || break
            sleep 0.1
        done
        if ((left)); then
            kill -9 "${pids[@]}" 2>/dev/null || true
        fi
    fi
    rm -f "${pidfiles[@]}"
}

ctld_answers() { timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP'; }
# `scontrol show slurmd` asks the slurmd of this machine itself.
slurmd_answers() { timeout 10 scontrol show slurmd >/dev/null 2>&1; }

# alive NAME: a process of exactly that name runs.
alive() {
    local pid
    for pid in $(pgrep -x "$1" || true); do
        pid_alive "$pid" && return 0
    done
    return 1
}

node_state() { sinfo -h -N -o %T 2>/dev/null | head -n1 | tr -d '*~#!%$@^-'; }

srun_works() {
    local out over=()
    # Two tasks on a one-CPU node need --overcommit, or srun waits forever.
    (($(nproc) < 2)) && over=(--overcommit)
    timeout 30 srun "${over[@]}" -N1 -n2 true >/dev/null 2>&1 || return 1
    out=$(timeout 30 srun "${over[@]}" -N1 -n2 printenv SLURM_PROCID 2>/dev/null | sort -n | tr '\n' ' ')
    [[ $out == "0 1 " ]]
}

slurm_up() {
    is_root || die slurm "starting slurmctld/slurmd needs root"
    munge_up
    local node conf confdir cgconf new restart=0
    node=$(hostname -s)
    conf=$(slurm_conf_path)
    confdir=$(dirname "$conf")
    cgconf=$confdir/cgroup.conf
    install -d -m 0755 "$confdir" "$SLURM_LOG_DIR" /var/spool/slurmctld /var/spool/slurmd

    # Write both files only when their content changes, and remember that
    # the daemons must then be restarted to see it.
    new=$(write_slurm_conf "$node")
    if [[ ! -f $conf ]] || [[ $(cat "$conf") != "$new" ]]; then
        printf '%s\n' "$new" >"$conf"
        restart=1
    fi
    new=$(write_cgroup_conf)
    if [[ ! -f $cgconf ]] || [[ $(cat "$cgconf") != "$new" ]]; then
        printf '%s\n' "$new" >"$cgconf"
        restart=1
    fi

    # A changed configuration restarts both daemons; otherwise only a daemon
    # that is missing (or a controller that does not answer) is (re)started.
    local ctld_ok=0 slurmd_ok=0 i
    if ((restart == 1)); then
        log "slurm configuration written to $conf; (re)starting slurmctld and slurmd"
        stop_procs slurmd="$SLURMD_PID" slurmctld="$SLURMCTLD_PID"
    else
        alive slurmctld && ctld_answers && ctld_ok=1
        alive slurmd && slurmd_answers && slurmd_ok=1
        if ((ctld_ok && slurmd_ok)); then
            log "slurmctld and slurmd already running (node $(node_state))"
        fi
    fi
    if ((ctld_ok == 0)); then
        stop_procs slurmctld="$SLURMCTLD_PID"
        # Both daemons fork into the background on their own; their output
        # goes to the log files named in slurm.conf. What they print before
        # they have a log file (bad config) goes to *.start.
        slurmctld 2>>"$SLURMCTLD_LOG.start" ||
            die slurmctld "slurmctld did not start" "$SLURMCTLD_LOG"
        for i in $(seq 100); do
            ctld_answers && break
            alive slurmctld || break
            sleep 0.2
        done
        ctld_answers || die slurmctld "slurmctld does not answer scontrol ping" "$SLURMCTLD_LOG"
    fi
    if ((slurmd_ok == 0)); then
        stop_procs slurmd="$SLURMD_PID"
        # -N: the node name need not be derivable from the hostname.
        slurmd -N "$node" 2>>"$SLURMD_LOG.start" ||
            die slurmd "slurmd did not start" "$SLURMD_LOG"
    fi

    # Wait for the node to come up. A node left DRAINED or DOWN by an earlier
    # run is resumed once; ReturnToService=2 handles most other cases.
    local state="" i resumed=0
    for i in $(seq 120); do
        state=$(node_state)
        case $state in
        idle | mixed | allocated | completing) break ;;
        drain* | down | fail*)
            if ((resumed == 0 && i > 5)); then
                scontrol update nodename="$node" state=resume 2>/dev/null || true
                resumed=1
            fi
            ;;
        esac
        alive slurmd || die slurmd "slurmd exited" "$SLURMD_LOG"
        alive slurmctld || die slurmctld "slurmctld exited" "$SLURMCTLD_LOG"
        sleep 0.5
    done
    [[ $state =~ ^(idle|mixed|allocated|completing)$ ]] ||
        die slurmd "node $node is '${state:-unknown}' after 60 s: $(sinfo -h -N -o '%T %E' 2>&1 | head -n1)" "$SLURMD_LOG"
    srun_works || die srun "srun -N1 -n2 true / printenv SLURM_PROCID failed" "$SLURMD_LOG"
    log "slurm $(slurm_version) up: node $node $state, config $conf"
}

# ---------------------------------------------------------------------------
# Step 4: sshd on 127.0.0.1:$SSH_PORT
# ---------------------------------------------------------------------------

SSHD_CONFIG=$STATE_DIR/sshd_config
SSHD_PID=$STATE_DIR/sshd.pid
SSHD_LOG=$STATE_DIR/sshd.log
SSH_CONFIG=$STATE_DIR/ssh_config
HOST_KEY=$STATE_DIR/ssh_host_ed25519_key
CLIENT_KEY=$STATE_DIR/id_ed25519
AUTH_KEYS=$STATE_DIR/authorized_keys

ssh_works() {
    timeout 20 ssh -F "$SSH_CONFIG" "$SSH_HOST_ALIAS" true </dev/null >/dev/null 2>&1
}

sshd_running() {
    local pid
    [[ -r $SSHD_PID ]] || return 1
    pid=$(cat "$SSHD_PID" 2>/dev/null || true)
    pid_alive "$pid"
}

ssh_up() {
    local user new restart=0
    user=$(id -un)
    mkdir -p "$STATE_DIR"
    [[ -f $HOST_KEY ]] || ssh-keygen -q -t ed25519 -N '' -C "proctor-test-host" -f "$HOST_KEY"
    [[ -f $CLIENT_KEY ]] || ssh-keygen -q -t ed25519 -N '' -C "proctor-test-client" -f "$CLIENT_KEY"
    # ssh and sshd refuse private keys that others can read.
    chmod 0600 "$HOST_KEY" "$CLIENT_KEY"
    cp "$CLIENT_KEY.pub" "$AUTH_KEYS"
    chmod 0600 "$AUTH_KEYS"

    new=$(
        cat <<EOF
# Written by scripts/engines.sh (proctor): a private sshd for the tests.
ListenAddress 127.0.0.1:$SSH_PORT
HostKey $HOST_KEY
PidFile $SSHD_PID
# Only the key made for the tests is accepted, whatever ~/.ssh holds.
AuthorizedKeysFile $AUTH_KEYS
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
# No PAM: its session modules expect a real login environment (and
# /etc/pam.d/sshd), which a container does not give.
UsePAM no
# The state dir lives in a build tree whose permissions sshd would reject.
StrictModes no
# Quick logins: no DNS lookup of the client, no motd or lastlog.
UseDNS no
PrintMotd no
PrintLastLog no
# The pool starts many short sessions at once; do not throttle them.
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp internal-sftp
EOF
    )
    if [[ ! -f $SSHD_CONFIG ]] || [[ $(cat "$SSHD_CONFIG") != "$new" ]]; then
        printf '%s\n' "$new" >"$SSHD_CONFIG"
        restart=1
    fi

    cat >"$SSH_CONFIG" <<EOF
# Written by scripts/engines.sh (proctor): use with ssh -F $SSH_CONFIG $SSH_HOST_ALIAS
Host $SSH_HOST_ALIAS
    HostName 127.0.0.1
    Port $SSH_PORT
    User $user
    IdentityFile $CLIENT_KEY
    IdentitiesOnly yes
    # The host key is made afresh per machine; nothing to pin.
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    LogLevel ERROR
    # Never prompt: a test must fail, not hang.
    BatchMode yes
    ConnectTimeout 10
EOF

    if ((restart == 0)) && sshd_running && ssh_works; then
        log "sshd already running on 127.0.0.1:$SSH_PORT"
        return 0
    fi
    stop_procs "$SSHD_PID"
    # sshd's privilege separation needs this empty root-owned directory;
    # it is normally made by the init system.
    if [[ ! -d /run/sshd ]]; then
        if is_root; then
            install -d -m 0755 /run/sshd
        else
            die sshd "/run/sshd is missing and only root can create it"
        fi
    fi
    /usr/sbin/sshd -t -f "$SSHD_CONFIG" 2>"$SSHD_LOG" || die sshd "sshd -t rejects $SSHD_CONFIG" "$SSHD_LOG"
    : >"$SSHD_LOG"
    # sshd would fork into the background before it binds its port, and its
    # exit status could not tell that the port is taken. Run it with -D
    # (no fork) in a session of its own instead, so that its death is seen at
    # once; it writes its pid file only once it listens.
    local i pid
    setsid /usr/sbin/sshd -D -f "$SSHD_CONFIG" -E "$SSHD_LOG" </dev/null >/dev/null 2>&1 &
    pid=$!
    for i in $(seq 100); do
        sshd_running && break
        pid_alive "$pid" || break
        sleep 0.05
    done
    sshd_running || die sshd "sshd exited instead of listening on 127.0.0.1:$SSH_PORT" "$SSHD_LOG"
    for i in $(seq 50); do
        ssh_works && break
        sleep 0.1
    done
    ssh_works || die ssh "ssh -F $SSH_CONFIG $SSH_HOST_ALIAS true fails" "$SSHD_LOG"
    log "sshd up on 127.0.0.1:$SSH_PORT"
}

# ---------------------------------------------------------------------------
# Step 5: summary
# ---------------------------------------------------------------------------

# median_ms N CMD...: median wall time of N runs of CMD, in ms.
median_ms() {
    local n=$1 t0 t1 i
    shift
    for i in $(seq "$n"); do
        t0=$(now_ns)
        "$@" </dev/null >/dev/null 2>&1 || return 1
        t1=$(now_ns)
        echo $((t1 - t0))
    done | sort -n | awk '{ v[NR] = $1 }
        END { if (NR == 0) exit 1
              m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "%.1f\n", m / 1e6 }'
}

write_env() {
    local slurm_ok=$1 ssh_ok=$2 tmp=$STATE_DIR/env.tmp
    mkdir -p "$STATE_DIR"
    {
        echo "# Written by scripts/engines.sh up; source it before the integration tests."
        if ((ssh_ok)); then
            printf 'export PROCTOR_TEST_SSH_CONFIG=%q\n' "$SSH_CONFIG"
            printf 'export PROCTOR_TEST_SSH_HOST=%q\n' "$SSH_HOST_ALIAS"
        fi
        if ((slurm_ok)); then
            echo "export PROCTOR_TEST_SLURM=1"
        fi
    } >"$tmp"
    mv "$tmp" "$STATE_DIR/env"
}

cmd_up() {
    local t0 slurm_ok=0 ssh_ok=0 failed=()
    t0=$(now_ns)
    install_packages
    # Each engine is brought up by a child run of this script, so that
    # `set -e` keeps its full effect inside (it is off in functions called
    # from a condition) and one failing engine does not stop the other.
    if "$BASH" "$SCRIPT" _slurm-up; then slurm_ok=1; else failed+=(slurm); fi
    if "$BASH" "$SCRIPT" _ssh-up; then ssh_ok=1; else failed+=(ssh); fi
    write_env "$slurm_ok" "$ssh_ok"

    local ssh_ms="-" srun_ms="-" up_ms
    up_ms=$((($(now_ns) - t0) / 1000000))
    if ((ssh_ok)); then
        ssh_ms=$(median_ms 10 ssh -F "$SSH_CONFIG" "$SSH_HOST_ALIAS" true || echo failed)
    fi
    if ((slurm_ok)); then
        srun_ms=$(median_ms 10 srun -N1 -n1 true || echo failed)
    fi
    echo "engines:"
    echo "  slurm:  $( ((slurm_ok)) && echo "up (Slurm $(slurm_version), $(slurm_conf_path), node $(hostname -s))" || echo FAILED)"
    echo "  ssh:    $( ((ssh_ok)) && echo "up (127.0.0.1:$SSH_PORT, ssh -F $SSH_CONFIG $SSH_HOST_ALIAS)" || echo FAILED)"
    echo "  cost:   ssh true ${ssh_ms} ms, srun -N1 -n1 true ${srun_ms} ms (median of 10)"
    echo "  up:     ${up_ms} ms"
    echo "  env:    $STATE_DIR/env"
    if ((${#failed[@]})); then
        echo "[engines] up failed for: ${failed[*]} (see the messages above)" >&2
        exit 1
    fi
}

cmd_down() {
    # Only our own sshd is stopped (by its pid file), never the system's.
    if is_root; then
        stop_procs "$SSHD_PID" slurmd="$SLURMD_PID" slurmctld="$SLURMCTLD_PID" munged="$MUNGE_PID"
    else
        stop_procs "$SSHD_PID"
    fi
    rm -f "$STATE_DIR/env"
    log "engines down"
}

cmd_status() {
    local ok=0 p pids
    for p in munged slurmctld slurmd; do
        pids=$(for pid in $(pgrep -x "$p" || true); do pid_alive "$pid" && echo "$pid"; done | tr '\n' ' ')
        printf '  %-10s %s\n' "$p:" "${pids:-not running}"
    done
    printf '  %-10s %s\n' "sshd:" "$(sshd_running && cat "$SSHD_PID" || echo 'not running')"
    # Ask the controller first: srun would wait for a missing one.
    if command -v scontrol >/dev/null 2>&1 && ctld_answers && srun_works; then
        echo "slurm: works (node $(node_state))"
    else
        echo "slurm: NOT working"
        ok=1
    fi
    if command -v ssh >/dev/null 2>&1 && [[ -f $SSH_CONFIG ]] && ssh_works; then
        echo "ssh:   works ($SSH_HOST_ALIAS via $SSH_CONFIG)"
    else
        echo "ssh:   NOT working"
        ok=1
    fi
    return "$ok"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
_slurm-up) slurm_up ;;
_ssh-up) ssh_up ;;
*)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
