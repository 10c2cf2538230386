"""A real single-node SLURM on localhost for launcher tests (Debian `slurm-wlm` + `munge`).

`running_cluster(root)` (behind the `slurm_cluster` fixture of conftest.py) writes a munge key and a
slurm.conf into a temporary folder, starts munged, slurmctld and slurmd (as root, in the foreground,
owned by this process), waits until `sinfo` reports the node idle and stops everything on exit. Nothing outside the temporary
folder is touched; clients find the cluster through SLURM_CONF in `SlurmCluster.env`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue", "scontrol", "scancel")
PARTITION = "compute"
# slurmd drains a node that claims more than the machine has, so never claim more.
NODE_CPUS = min(2, os.cpu_count() or 1)
NODE_MEMORY_MB = min(2048, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 - 256)
# Job states after which a job will not run again.
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE"}


def _finished(job: dict[str, str]) -> bool:
    """Final, or pending on a dependency that can no longer be met (it would wait forever)."""
    return job.get("JobState") in FINAL_STATES or job.get("Reason") == "DependencyNeverSatisfied"


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]


def ensure_slurm_installed() -> str | None:
    """Install slurm-wlm + munge from Debian when they are missing and we can; else say why not."""
    if not missing_binaries():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"SLURM binaries missing ({', '.join(missing_binaries())}) and no root + apt-get to install slurm-wlm and munge"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return f"could not install slurm-wlm and munge ({' '.join(cmd)}: {done.stderr.strip()[-300:]})"
    still = missing_binaries()
    return f"SLURM binaries still missing after apt-get install: {', '.join(still)}" if still else None


def _sbin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _slurm_conf(root: Path, host: str, munge_socket: Path) -> str:
    ctld_port, slurmd_port = _free_port(), _free_port()
    return f"""\
ClusterName=logitdifftest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# Keep finished jobs visible to scontrol long enough for the tests to read their state.
MinJobAge=3600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName={host} NodeAddr=127.0.0.1 CPUs={NODE_CPUS} RealMemory={NODE_MEMORY_MB} State=UNKNOWN
PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class SlurmCluster:
    """Handle on the running test cluster."""

    root: Path
    conf: Path
    host: str
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(self, args: Sequence[str], *, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout, check=check)

    def node_state(self) -> str:
        done = self.run(["sinfo", "--noheader", "-N", "-o", "%T"], check=False, timeout=15)
        return done.stdout.strip().lower() if done.returncode == 0 else f"sinfo failed: {done.stderr.strip()}"

    def jobs(self, job_id: str) -> dict[str, dict[str, str]]:
        """`scontrol show job` fields of every job of `job_id`, array tasks one by one ('<array>_<task>')."""
        done = self.run(["scontrol", "show", "job", "--oneliner", job_id], check=False, timeout=15)
        jobs: dict[str, dict[str, str]] = {}
        for line in done.stdout.splitlines():
            fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            if "JobId" not in fields:
                continue
            name = fields["JobId"]
            if fields.get("ArrayTaskId") and fields.get("ArrayJobId"):
                name = f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"
            jobs[name] = fields
        return jobs

    def wait_for_jobs(self, job_ids: Sequence[str], timeout: float) -> dict[str, dict[str, str]]:
        """Wait until every job (and array task) of `job_ids` is in a final state; return their fields."""
        deadline = time.monotonic() + timeout
        while True:
            per_id = {jid: self.jobs(jid) for jid in job_ids}
            jobs = {name: fields for found in per_id.values() for name, fields in found.items()}
            pending = [f"{n}:{f.get('JobState')}" for n, f in jobs.items() if not _finished(f)]
            # A pending array shows as one record with a task range ("1_[0-3]"); it is not final either.
            if all(per_id.values()) and not pending:
                return jobs
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs not finished after {timeout:.0f} s: {pending or list(job_ids)}\n{self.log_tail()}")
            time.sleep(1.0)

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            path = self.root / name
            if path.is_file():
                out.append(f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)


def _wait(what: str, ok: object, timeout: float, cluster: SlurmCluster | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not ok():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"test SLURM: {what} not ready after {timeout:.0f} s\n{cluster.log_tail() if cluster else ''}")
        time.sleep(0.5)


def _stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def _start_munge(root: Path) -> tuple[subprocess.Popen[bytes], Path]:
    mdir = root / "munge"
    mdir.mkdir(mode=0o700)
    key = mdir / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    sock = mdir / "munge.socket.2"
    # --force: munged refuses to run as root or with a socket outside /run without it.
    proc = subprocess.Popen(
        [
            _sbin("munged"), "--foreground", "--force",
            f"--key-file={key}", f"--socket={sock}", f"--pid-file={mdir}/munged.pid",
            f"--log-file={root}/munged.log", f"--seed-file={mdir}/munged.seed",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return proc, sock


@contextmanager
def running_cluster(root: Path) -> Iterator[SlurmCluster]:
    """A started cluster whose files live under `root` (an empty folder); needs the binaries and root."""
    for sub in ("state", "spool"):
        (root / sub).mkdir()
    host = socket.gethostname().split(".")[0]
    cluster = SlurmCluster(root=root, conf=root / "slurm.conf", host=host, env={})
    munged, munge_socket = _start_munge(root)
    cluster.procs.append(munged)
    try:
        _wait("munged socket", munge_socket.exists, 20, cluster)
        cluster.conf.write_text(_slurm_conf(root, host, munge_socket))
        cluster.env = {**os.environ, "SLURM_CONF": str(cluster.conf)}
        for daemon in ("slurmctld", "slurmd"):
            extra = ["-c", "-i"] if daemon == "slurmctld" else ["-N", host]
            cluster.procs.append(
                subprocess.Popen([_sbin(daemon), "-D", "-f", str(cluster.conf), *extra], env=cluster.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        _wait("node idle in sinfo", lambda: cluster.node_state() == "idle", 60, cluster)
        yield cluster
    finally:
        try:
            if cluster.env:
                subprocess.run(["scancel", "--full", "--partition", PARTITION], env=cluster.env, capture_output=True, timeout=30)
                _wait("jobs cancelled", lambda: not cluster.run(["squeue", "--noheader"], check=False).stdout.strip(), 30)
        finally:
            for proc in reversed(cluster.procs):
                _stop(proc)
