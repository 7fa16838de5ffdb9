#!/usr/bin/env bash
# A real single-node SLURM cluster, started for one run and gone afterwards: munged, MariaDB,
# slurmdbd, slurmctld and slurmd, with their config, state, spool, sockets and logs in one temporary
# folder, sized from this machine (nproc, /proc/meminfo, hostname -s). The demo then runs through
# the committed SLURM profile (profiles/slurm/config.yaml, copied with this cluster's partition and
# account) in a fresh work folder, and the run is checked:
#   - `zar check cluster` accepts the test profile, and refuses (naming encode) a copy whose encode
#     asks for more memory than the node has;
#   - every job Snakemake submitted with sbatch is in sacct as COMPLETED (at least MIN_JOBS of them);
#   - results/table{1..5}.csv are byte-identical to the local demo's demo/results/table{1..5}.csv.
# The daemons need root: the script reruns itself with sudo otherwise. It installs Debian's slurm,
# munge and mariadb packages if they are missing. CI runs it as `make test-slurm`.
#
# Settings (environment):
#   ZAR_CHECK_CLUSTER=1    run the `zar check cluster` checks; 0 skips them (say so in the log)
#   ZAR_SLURM_TIMEOUT=2400 seconds the Snakemake run may take
#   ZAR_SLURM_MIN_JOBS=40  fewest jobs the demo must submit with sbatch
#   ZAR_SLURM_KEEP=0       1: keep the temporary folder (config, logs, the run) for a look afterwards
set -euo pipefail

STEP="setup"
indent() { sed 's/^/   /'; }
die() {
    echo "tests/cluster/slurm.sh: FAILED at step '$STEP': $*" >&2
    exit 1
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"

# slurmd starts each job as its user, so the daemons run as root; CI runners have passwordless sudo
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "the daemons need root: run as root, or install sudo"
    exec sudo env "PATH=$PATH" "ZAR_CHECK_CLUSTER=${ZAR_CHECK_CLUSTER:-1}" \
        "ZAR_SLURM_TIMEOUT=${ZAR_SLURM_TIMEOUT:-2400}" "ZAR_SLURM_MIN_JOBS=${ZAR_SLURM_MIN_JOBS:-40}" \
        "ZAR_SLURM_KEEP=${ZAR_SLURM_KEEP:-0}" bash "$0" "$@"
fi

VENV=${VENV:-$REPO/.venv}
export PATH="$VENV/bin:$PATH:/usr/sbin:/sbin"
ZAR_CHECK_CLUSTER=${ZAR_CHECK_CLUSTER:-1}
RUN_TIMEOUT=${ZAR_SLURM_TIMEOUT:-2400}
MIN_JOBS=${ZAR_SLURM_MIN_JOBS:-40}
KEEP=${ZAR_SLURM_KEEP:-0}
CLUSTER=zarci
PARTITION=zarci
ACCOUNT=zartest
USER_NAME=$(id -un)
T0=$(date +%s)
TABLES=(table1 table2 table3 table4 table5)

[ -x "$VENV/bin/snakemake" ] || die "no snakemake in $VENV (run \`make setup\` first)"
[ -f profiles/slurm/config.yaml ] || die "profiles/slurm/config.yaml is missing"

# --- SLURM, munge and MariaDB from Debian, if missing ---------------------------------------------
STEP="install"
PKGS=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
missing=0
for cmd in slurmctld slurmd slurmdbd sbatch srun sacct sacctmgr scontrol sinfo squeue scancel \
    munged mungekey munge unmunge mariadbd mariadb-install-db mariadb mariadb-admin; do
    command -v "$cmd" >/dev/null || missing=1
done
if [ "$missing" = 1 ]; then
    echo "== installing ${PKGS[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${PKGS[@]}" \
        || { apt-get update && apt-get install -y --no-install-recommends "${PKGS[@]}"; } \
        || die "apt-get install ${PKGS[*]} failed"
fi

# --- the local demo's tables, to compare with at the end ------------------------------------------
STEP="local demo"
for t in "${TABLES[@]}"; do
    if [ ! -f "demo/results/$t.csv" ]; then
        echo "== demo/results/$t.csv is missing: running the local demo first"
        snakemake --cores all --directory demo all \
            || die "the local demo (snakemake --cores all --directory demo all) failed"
        break
    fi
done

# --- the cluster's files, all in one temporary folder ---------------------------------------------
STEP="cluster config"
TMP=$(mktemp -d /tmp/zar-slurm.XXXXXX)
chmod 711 "$TMP" # munged wants o+x on every folder above its socket
mkdir -p "$TMP"/{run,log,state,spool,munge,mysql,profile,profile-too-big,work}
chmod 755 "$TMP/run"
chmod 700 "$TMP/munge"
WORK="$TMP/work"
export SLURM_CONF="$TMP/slurm.conf"
# a CI job that itself runs under SLURM must not pass its own job's settings on
unset SLURM_JOB_ID SLURM_JOBID SLURM_CLUSTERS SLURM_ACCOUNT SBATCH_ACCOUNT SBATCH_PARTITION \
    SLURM_PARTITION SALLOC_PARTITION SBATCH_CLUSTERS

DAEMON_NAMES=()
DAEMON_PIDS=()
SNAKE_PID=""
CTLD_UP=""

proc_state() { # pid: its state letter (R, S, Z...), empty when it is gone
    sed -n 's/.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null || true
}

child_of() { # pid: the pid of one child process of it, if any
    local f
    for f in /proc/[0-9]*/stat; do
        if [ "$(sed -n 's/.*) . \([0-9]*\) .*/\1/p' "$f" 2>/dev/null)" = "$1" ]; then
            f=${f%/stat}
            echo "${f#/proc/}"
            return 0
        fi
    done
    return 1
}

gone() { # pid: true when it has exited (or is a zombie waiting to be reaped)
    local state
    state=$(proc_state "$1")
    [ -z "$state" ] || [ "$state" = Z ]
}

stop_pid() { # name pid [signal [first-target [kill-target]]]: the signal (TERM), 20 s, then KILL; reap it
    local name=$1 pid=$2 signal=${3:-TERM} first=${4:-$2} last=${5:-$2} i
    if ! gone "$pid"; then
        kill "-$signal" -- "$first" 2>/dev/null
        for i in $(seq 40); do
            gone "$pid" && break
            sleep 0.5
        done
        if ! gone "$pid"; then
            echo "   $name (pid $pid) did not stop within 20 s: kill -9" >&2
            kill -KILL -- "$last" 2>/dev/null
            for i in $(seq 10); do
                gone "$pid" && break
                sleep 0.5
            done
        fi
    fi
    if gone "$pid"; then wait "$pid" 2>/dev/null || true; fi
}

cleanup() {
    local rc=$? i pid f
    set +e
    trap - EXIT INT TERM
    # Snakemake (under `timeout`, which leads its own process group): INT, on which it cancels its
    # SLURM jobs (on TERM it would wait for them), then KILL for the group
    if [ -n "$SNAKE_PID" ]; then
        stop_pid snakemake "$SNAKE_PID" INT "$(child_of "$SNAKE_PID" || echo "$SNAKE_PID")" "-$SNAKE_PID"
    fi
    # jobs still in the queue: cancel them while slurmctld is up, so that no slurmstepd is left
    if [ -n "$CTLD_UP" ] && [ -n "$(timeout 10 squeue -h -o %i 2>/dev/null)" ]; then
        echo "== cancelling the jobs still in the queue" >&2
        timeout 10 scancel --partition="$PARTITION" 2>/dev/null
        for i in $(seq 30); do
            [ -z "$(timeout 10 squeue -h -o %i 2>/dev/null)" ] && break
            sleep 1
        done
    fi
    if [ "$rc" != 0 ]; then
        echo "== the cluster's logs (the test failed, exit status $rc)" >&2
        for f in "$TMP"/log/*; do
            [ -s "$f" ] || continue
            echo "---- ${f#"$TMP"/} (last 25 lines)" >&2
            tail -n 25 "$f" >&2
        done
        # the plugin keeps the SLURM logs of failed jobs only; each names its rule's log
        for f in $(find "$WORK/.snakemake/slurm_logs" -name '*.log' 2>/dev/null | head -n 5); do
            echo "---- SLURM job log ${f#"$WORK"/} (last 25 lines)" >&2
            tail -n 25 "$f" >&2
            sed -n 's/^ *log: \([^ ,]*\).* (check log.*/\1/p' "$f" | sort -u | while read -r rule_log; do
                [ -f "$WORK/$rule_log" ] || continue
                echo "---- its rule's log $rule_log (last 15 lines)" >&2
                tail -n 15 "$WORK/$rule_log" >&2
            done
        done
    fi
    for ((i = ${#DAEMON_PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${DAEMON_NAMES[i]}" "${DAEMON_PIDS[i]}"
    done
    # slurmstepd and job processes are not our children: find them by the SLURM_CONF they were given
    export -n SLURM_CONF
    for f in /proc/[0-9]*; do
        pid=${f#/proc/}
        [ "$pid" = $$ ] && continue
        if { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qxF "SLURM_CONF=$TMP/slurm.conf"; then
            echo "   left behind: $({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null)(pid $pid): kill -9" >&2
            kill -KILL "$pid" 2>/dev/null
        fi
    done
    if [ "$KEEP" = 1 ]; then
        echo "== kept $TMP (ZAR_SLURM_KEEP=1)" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_daemon() { # name command...: in the background; it stays in the foreground itself (-D, -F).
    #              Its stdout and stderr go to log/NAME.out, beside its own log/NAME.log
    local name=$1
    shift
    "$@" >>"$TMP/log/$name.out" 2>&1 &
    DAEMON_NAMES+=("$name")
    DAEMON_PIDS+=("$!")
}

wait_ready() { # name seconds 'shell test': poll the test until it succeeds, for at most `seconds`
    local name=$1 limit=$2 test=$3 start=$SECONDS pid=${DAEMON_PIDS[${#DAEMON_PIDS[@]} - 1]}
    until timeout 10 bash -c "$test" >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null || [ "$(proc_state "$pid")" = Z ]; then
            die "$name exited while starting (its log is below)"
        fi
        [ $((SECONDS - start)) -lt "$limit" ] || die "$name not ready after $limit s (its log is below)"
        sleep 1
    done
    echo "   $name ready (pid $pid, $((SECONDS - start)) s)"
}

free_ports() { # n: n free TCP ports on 127.0.0.1
    python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

HOST=$(hostname -s)
CPUS=$(nproc)
MEM_TOTAL_MB=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
REAL_MEM=$((MEM_TOTAL_MB * 95 / 100)) # a little under MemTotal, or slurmd drains the node
read -r DB_PORT CTLD_PORT SLURMD_PORT DBD_PORT <<<"$(free_ports 4)"
DB_PASS=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
MUNGE_SOCKET="$TMP/run/munge.socket"

cat >"$SLURM_CONF" <<EOF
# a single-node test cluster, written by tests/cluster/slurm.sh
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$TMP/state
SlurmdSpoolDir=$TMP/spool
SlurmctldPidFile=$TMP/run/slurmctld.pid
SlurmdPidFile=$TMP/run/slurmd.pid
SlurmctldLogFile=$TMP/log/slurmctld.log
SlurmdLogFile=$TMP/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# a container: no cgroups
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MailProg=/bin/true
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# clients authenticate to slurmdbd through this munge socket (the default one otherwise)
AccountingStoragePass=$MUNGE_SOCKET
AccountingStorageEnforce=associations
JobCompType=jobcomp/none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REAL_MEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

# slurmdbd reads slurmdbd.conf from the folder of SLURM_CONF; it holds a password: mode 600
(
    umask 077
    cat >"$TMP/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=$HOST
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$TMP/log/slurmdbd.log
PidFile=$TMP/run/slurmdbd.pid
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
)
chmod 600 "$TMP/slurmdbd.conf"
echo "== test cluster in $TMP: node $HOST, $CPUS CPUs, RealMemory $REAL_MEM MB" \
    "(MemTotal $MEM_TOTAL_MB MB), partition $PARTITION, account $ACCOUNT"

# --- the daemons, each ready before the next ------------------------------------------------------
STEP="start munged"
mungekey --create --bits=1024 --keyfile="$TMP/munge/munge.key" >/dev/null 2>&1 \
    || die "mungekey could not write $TMP/munge/munge.key"
# in the foreground munged logs to stderr: log/munged.out
start_daemon munged munged --foreground --key-file="$TMP/munge/munge.key" --socket="$MUNGE_SOCKET" \
    --pid-file="$TMP/run/munged.pid" --seed-file="$TMP/munge/munged.seed"
wait_ready munged 30 "munge -S '$MUNGE_SOCKET' -n | unmunge -S '$MUNGE_SOCKET'"

STEP="start mariadb"
DB_SOCKET="$TMP/run/mysqld.sock"
mariadb-install-db --no-defaults --user=root --datadir="$TMP/mysql" --auth-root-authentication-method=normal \
    --skip-test-db >"$TMP/log/mariadb-install-db.out" 2>&1 || die "mariadb-install-db failed (its log is below)"
rm "$TMP/log/mariadb-install-db.out" # its advice only, on success
start_daemon mariadb mariadbd --no-defaults --user=root --datadir="$TMP/mysql" --socket="$DB_SOCKET" \
    --pid-file="$TMP/run/mysqld.pid" --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
    --innodb-use-native-aio=0 --log-error="$TMP/log/mariadb.log"
wait_ready mariadb 60 "mariadb-admin --no-defaults --socket='$DB_SOCKET' -uroot ping"
mariadb --no-defaults --socket="$DB_SOCKET" -uroot -e "
    CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" || die "could not create slurmdbd's MariaDB user"

STEP="start slurmdbd"
start_daemon slurmdbd slurmdbd -D
wait_ready slurmdbd 60 "sacctmgr -n list cluster"
# the cluster before slurmctld starts; the account and user that the plugin checks with sacctmgr
sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster $CLUSTER failed"
sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description="zar CI" Organization=zar >/dev/null \
    || die "sacctmgr add account $ACCOUNT failed"
sacctmgr -i add user "$USER_NAME" Account="$ACCOUNT" DefaultAccount="$ACCOUNT" Cluster="$CLUSTER" >/dev/null \
    || die "sacctmgr add user $USER_NAME failed"
sacctmgr -n -P -s list user "$USER_NAME" format=account | grep -qx "$ACCOUNT" \
    || die "sacctmgr does not list account $ACCOUNT for user $USER_NAME"

STEP="start slurmctld"
start_daemon slurmctld slurmctld -D -i
wait_ready slurmctld 60 "scontrol ping | grep -q 'is UP'"
CTLD_UP=1

STEP="start slurmd"
start_daemon slurmd slurmd -D -N "$HOST"
wait_ready slurmd 60 "sinfo -h -n '$HOST' -p '$PARTITION' -o %T | grep -Eqx 'idle|mixed|allocated'"
sinfo -p "$PARTITION" -N -o "%N %P %T CPUs=%c Memory=%m" | indent

# --- the test profile: the committed profile with this cluster's partition and account ------------
STEP="test profile"
write_profile() { # destination [RULE:MEM_MB, a set-resources entry to add]
    python - "$REPO/profiles/slurm/config.yaml" "$1" "$PARTITION" "$ACCOUNT" "${2:-}" <<'EOF'
import sys

import yaml

src, dst, partition, account, extra = sys.argv[1:6]
with open(src) as f:
    profile = yaml.safe_load(f)
ours = {"slurm_partition": partition, "slurm_account": account}


def as_mapping(value, what):
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    if isinstance(value, list):  # ["key=value", ...] as on the command line
        return dict(str(item).split("=", 1) for item in value)
    sys.exit(f"{src}: {what} is neither a mapping nor a list")


profile["default-resources"] = {**as_mapping(profile.get("default-resources"), "default-resources"), **ours}
rules = profile.get("set-resources") or {}
if not isinstance(rules, dict):
    sys.exit(f"{src}: set-resources is not a mapping of rule: resources")
rules = {rule: {**as_mapping(res, f"set-resources.{rule}"), **ours} for rule, res in rules.items()}
if extra:
    rule, mem = extra.split(":")
    rules[rule] = {**rules.get(rule, ours), "mem_mb": int(mem)}
profile["set-resources"] = rules
with open(dst, "w") as f:
    yaml.safe_dump(profile, f, sort_keys=False)
EOF
}
write_profile "$TMP/profile/config.yaml" || die "could not write the test profile from profiles/slurm/config.yaml"
TOO_BIG=$((REAL_MEM + 1000))
write_profile "$TMP/profile-too-big/config.yaml" "encode:$TOO_BIG" || die "could not write the oversized profile"
cp -r demo/config "$WORK/config"
# Inside each job the jobstep plugin (snakemake-executor-plugin-slurm-jobstep 0.6.1) runs the rule with
# `srun`, after dropping every SLURM_* variable, SLURM_CONF too; a cluster with its config in
# /etc/slurm does not notice, this one would ("Could not establish a configuration source"). The jobs
# inherit PATH (sbatch --export=ALL), so an srun first on it puts SLURM_CONF back.
mkdir -p "$TMP/bin"
printf '#!/bin/sh\nSLURM_CONF=%s exec %s "$@"\n' "$SLURM_CONF" "$(command -v srun)" >"$TMP/bin/srun"
chmod 755 "$TMP/bin/srun"
export PATH="$TMP/bin:$PATH"
echo "== test profile $TMP/profile/config.yaml: profiles/slurm/config.yaml with partition $PARTITION, account $ACCOUNT"

# --- zar check cluster: the test profile fits; an encode bigger than the node does not ------------
STEP="zar check cluster"
if [ "$ZAR_CHECK_CLUSTER" = 1 ]; then
    zar check cluster --help 2>&1 | grep -q -- --profile \
        || die "this zar has no \`zar check cluster\` (ZAR_CHECK_CLUSTER=0 skips this check)"
    if ! zar check cluster --config "$WORK/config/config.yaml" --profile "$TMP/profile" 2>&1 | indent; then
        die "zar check cluster refused the test profile $TMP/profile (output above)"
    fi
    set +e
    too_big=$(zar check cluster --config "$WORK/config/config.yaml" --profile "$TMP/profile-too-big" 2>&1)
    status=$?
    set -e
    echo "   the oversized profile (encode mem_mb $TOO_BIG):"
    indent <<<"$too_big"
    [ "$status" != 0 ] || die "zar check cluster accepted encode with mem_mb $TOO_BIG > RealMemory $REAL_MEM"
    grep -q encode <<<"$too_big" || die "zar check cluster refused the oversized profile without naming encode"
    echo "   zar check cluster: accepts the test profile; refuses encode with mem_mb $TOO_BIG (exit status $status)"
else
    echo "== SKIPPED: zar check cluster (ZAR_CHECK_CLUSTER=$ZAR_CHECK_CLUSTER)"
fi

# --- the demo through SLURM -----------------------------------------------------------------------
STEP="snakemake on SLURM"
SUBMIT_START=$(date +%Y-%m-%dT%H:%M:%S)
echo "== snakemake --workflow-profile $TMP/profile all, in $WORK (at most $RUN_TIMEOUT s)"
RUN_T0=$(date +%s)
# status checks every 2 s at first instead of after the plugin's 40 s and Snakemake's 10 s
timeout --signal=INT --kill-after=60 "$RUN_TIMEOUT" \
    snakemake --directory "$WORK" --snakefile "$REPO/Snakefile" --workflow-profile "$TMP/profile" \
    --seconds-between-status-checks 2 --slurm-init-seconds-before-status-checks 2 all &
SNAKE_PID=$!
set +e
wait "$SNAKE_PID"
status=$?
set -e
SNAKE_PID=""
RUN_SECONDS=$(($(date +%s) - RUN_T0))
[ "$status" != 124 ] || die "snakemake did not finish within $RUN_TIMEOUT s (ZAR_SLURM_TIMEOUT)"
[ "$status" = 0 ] || die "snakemake failed (exit status $status, output above)"

# --- every job Snakemake submitted is a COMPLETED SLURM job in sacct ------------------------------
STEP="sacct"
SMK_LOG=""
for f in "$WORK"/.snakemake/log/*.snakemake.log; do # the newest: the run's, not a dry run's
    [ -f "$f" ] && { [ -z "$SMK_LOG" ] || [ "$f" -nt "$SMK_LOG" ]; } && SMK_LOG=$f
done
[ -n "$SMK_LOG" ] || die "no Snakemake log in $WORK/.snakemake/log"
# the plugin logs "Job 12 has been submitted with SLURM jobid 34 (log: ...)."
mapfile -t SUBMITTED < <(sed -n 's/.*has been submitted with SLURM jobid \([0-9_]*\) .*/\1/p' "$SMK_LOG" | sort -un)
N_SUBMITTED=${#SUBMITTED[@]}
N_REMOTE=$(grep -c '^rule ' "$SMK_LOG" || true)     # jobs Snakemake sent to the executor ("rule X:")
N_LOCAL=$(grep -c '^localrule ' "$SMK_LOG" || true) # and ran itself ("localrule X:")
RUN_ID=$(sed -n 's/.*SLURM run ID: \([^ ]*\).*/\1/p' "$SMK_LOG" | head -n 1)
echo "== $N_SUBMITTED jobs submitted with sbatch; the log has $N_REMOTE non-local and $N_LOCAL local jobs" \
    "(SLURM run ID $RUN_ID)"
[ "$N_SUBMITTED" -ge "$MIN_JOBS" ] || die "only $N_SUBMITTED jobs went through sbatch (at least $MIN_JOBS expected)"
[ "$N_SUBMITTED" = "$N_REMOTE" ] || die "Snakemake ran $N_REMOTE non-local jobs but logged $N_SUBMITTED SLURM job ids"
n_completed=0
for i in $(seq 30); do # slurmctld hands finished jobs to slurmdbd asynchronously
    SACCT=$(sacct -n -X -P -o JobID,JobName,State,ExitCode -S "$SUBMIT_START" -E now) || die "sacct failed"
    n_completed=$(awk -F'|' '$3 == "COMPLETED" && $4 == "0:0"' <<<"$SACCT" | wc -l)
    [ "$n_completed" -ge "$N_SUBMITTED" ] && break
    sleep 2
done
N_SACCT=$(grep -c . <<<"$SACCT" || true)
bad=()
for id in "${SUBMITTED[@]}"; do
    name="" state="" code=""
    IFS='|' read -r _ name state code < <(awk -F'|' -v id="$id" '$1 == id' <<<"$SACCT") || true
    if [ "${state:-}" != COMPLETED ] || [ "${code:-}" != 0:0 ] || { [ -n "$RUN_ID" ] && [ "${name:-}" != "$RUN_ID" ]; }; then
        bad+=("$id:${state:-not-in-sacct}")
    fi
done
echo "   sacct: $N_SACCT jobs, $n_completed COMPLETED with exit code 0:0"
[ "${#bad[@]}" = 0 ] || die "${#bad[@]} submitted jobs are not COMPLETED 0:0 (job name $RUN_ID) in sacct: ${bad[*]}"

# --- the same tables as the local demo ------------------------------------------------------------
STEP="tables"
differ=()
for t in "${TABLES[@]}"; do
    if [ ! -f "$WORK/results/$t.csv" ]; then
        differ+=("results/$t.csv(missing)")
    elif ! cmp -s "$WORK/results/$t.csv" "demo/results/$t.csv"; then
        differ+=("results/$t.csv")
        diff "demo/results/$t.csv" "$WORK/results/$t.csv" | head -n 10 >&2 || true
    fi
done
[ "${#differ[@]}" = 0 ] || die "the SLURM run's tables differ from demo/results/: ${differ[*]}"
echo "   results/table{1..5}.csv are byte-identical to demo/results/"

# --- one line -------------------------------------------------------------------------------------
STEP="summary"
echo "slurm test passed: $N_SUBMITTED jobs through sbatch, $N_SUBMITTED/$N_SUBMITTED COMPLETED in sacct," \
    "${#TABLES[@]}/${#TABLES[@]} tables identical to the local demo; snakemake $RUN_SECONDS s, total $(($(date +%s) - T0)) s"
