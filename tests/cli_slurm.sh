#!/usr/bin/env bash
# Slurm, the way clusters launch jobs: start a one-machine cluster (slurmctld and slurmd
# from Debian's slurm-wlm with a minimal slurm.conf in a temporary folder, auth/none, no
# cgroups), then `srun --mpi=pmix -n 2 parcnn train` and an `sbatch` script doing the
# same must write the model that `mpirun -np 2` writes, byte for byte. Skipped, with the
# reason printed, only where Slurm cannot start.
# usage: cli_slurm.sh PARCNN SOURCE_DIR
set -u
parcnn=$(readlink -f "$1")
. "$(dirname "$0")/lib.sh"
skip() { echo "skipped: $1"; echo "0 passed, 0 failed"; exit 0; }

for tool in slurmctld slurmd srun sbatch sinfo mpirun; do
    command -v "$tool" > /dev/null || [ -x "/usr/sbin/$tool" ] || skip "$tool not found (scripts/setup.sh installs slurm-wlm and Open MPI)"
done
stop_daemons() {
    for d in slurmd slurmctld; do
        [ -s "$tmp/$d.pid" ] && kill "$(cat "$tmp/$d.pid")" 2> /dev/null
    done
    for _ in $(seq 50); do
        [ -s "$tmp/slurmd.pid" ] && kill -0 "$(cat "$tmp/slurmd.pid")" 2> /dev/null && { sleep 0.1; continue; }
        [ -s "$tmp/slurmctld.pid" ] && kill -0 "$(cat "$tmp/slurmctld.pid")" 2> /dev/null && { sleep 0.1; continue; }
        break
    done
    rm -rf "$tmp"
}
trap stop_daemons EXIT

node=$(hostname -s)
user=$(id -un)
read -r ctld_port slurmd_port < <(/usr/bin/python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
mkdir -p "$tmp/state" "$tmp/spool"
cat > "$tmp/slurm.conf" <<CONF
ClusterName=parcnntest
SlurmctldHost=$node
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/none
CredType=cred/none
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
ReturnToService=2
NodeName=$node CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE
CONF
export SLURM_CONF=$tmp/slurm.conf
/usr/sbin/slurmctld -c -i > "$tmp/ctld.out" 2>&1 || skip "slurmctld does not start: $(tail -2 "$tmp/ctld.out" "$tmp/slurmctld.log" 2> /dev/null)"
/usr/sbin/slurmd -c -N "$node" > "$tmp/d.out" 2>&1 || skip "slurmd does not start: $(tail -2 "$tmp/d.out" "$tmp/slurmd.log" 2> /dev/null)"
for _ in $(seq 100); do
    [ "$(sinfo -h -o %t 2> /dev/null)" = idle ] && break
    sleep 0.2
done
[ "$(sinfo -h -o %t 2> /dev/null)" = idle ] || skip "the Slurm node does not come up: $(sinfo 2>&1 | tail -1); $(tail -3 "$tmp/slurmd.log" 2> /dev/null)"
ok "slurmctld and slurmd up ($(sinfo -h -o '%P %D node(s) %c cpu(s) %t'))"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# In a Slurm environment Open MPI's Slurm and PMIx plugins leak at exit, from modules that
# are unloaded by then, so LeakSanitizer cannot name them for tests/lsan.supp. The ASan
# build's leak check of these very runs is left to cli_mpi (mpirun outside Slurm).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
args=(train --limit 512 --eval-limit 500 --epochs 1 --batch 128 --workers 1 --no-progress)
timeout 300 srun --mpi=pmix -n 2 "$parcnn" "${args[@]}" --out "$tmp/srun" > "$tmp/srun.log" 2>&1
rc=$?
[ $rc = 0 ] && grep -q "2 MPI ranks x 1 worker(s)" "$tmp/srun.log" && ok "srun --mpi=pmix -n 2 parcnn train: 2 ranks" \
    || { bad "srun -n 2 parcnn train exited $rc:"; cat "$tmp/srun.log"; }
cat > "$tmp/job.sh" <<JOB
#!/bin/bash
#SBATCH --ntasks=2
#SBATCH --output=$tmp/sbatch.log
srun --mpi=pmix "$parcnn" ${args[*]} --out "$tmp/sbatch"
JOB
timeout 300 sbatch --wait "$tmp/job.sh" > "$tmp/sbatch.out" 2>&1 && grep -q "2 MPI ranks" "$tmp/sbatch.log" \
    && ok "sbatch --ntasks=2 with srun inside: 2 ranks" || { bad "sbatch:"; cat "$tmp/sbatch.out" "$tmp/sbatch.log"; }
timeout 300 mpirun --oversubscribe --bind-to none -np 2 "$parcnn" "${args[@]}" --out "$tmp/mpirun" > "$tmp/mpirun.log" 2>&1 \
    || { bad "mpirun -np 2:"; cat "$tmp/mpirun.log"; }
cmp -s "$tmp/srun/model.safetensors" "$tmp/mpirun/model.safetensors" && ok "srun's model = mpirun's, byte for byte" \
    || bad "srun's model differs from mpirun's"
cmp -s "$tmp/sbatch/model.safetensors" "$tmp/mpirun/model.safetensors" && ok "sbatch's model = mpirun's, byte for byte" \
    || bad "sbatch's model differs from mpirun's"
finish
