"""Run a command inside a small multi-node NUMA Linux guest.

Usage::

    python -m numamap.testing.vm --topology two [--timeout 600] -- COMMAND [ARG ...]

The guest is booted with virtme-ng (``vng``) under QEMU with TCG (software
emulation; nested KVM is not relied upon).  It sees the host's own file
system, read-only, with copy-on-write overlays on ``/tmp``, ``/home``,
``/usr``, ``/var``, ``/etc``, ``/opt`` and ``/srv`` and, added by this runner,
on the current working directory: writes there succeed in the guest and are
thrown away when it stops.  COMMAND runs as root in the same working
directory, with the directory of this interpreter (``sys.executable``) first
on ``PATH``, so ``python`` means the interpreter (and virtual environment)
that started the runner.

COMMAND's standard output and standard error are copied to the runner's
standard output and standard error as they arrive, and the runner exits with
COMMAND's exit status.  The runner's own messages go to standard error only.

Exit statuses other than COMMAND's own:

* 2: a prerequisite is missing (QEMU, virtme-ng, a kernel image) or the
  arguments are wrong; the message says what to install.
* 124: ``--timeout`` ran out; the guest was stopped.
* 125: the guest stopped without reporting COMMAND's status (it did not
  boot, the kernel panicked, COMMAND took the guest down, ...).

Inside the guest COMMAND finds these environment variables:

``NUMAMAP_VM_TOPOLOGY``
    The name of the topology, a key of :data:`TOPOLOGIES`; use
    :func:`current_topology` to get the :class:`Topology`.
``NUMAMAP_VM``
    ``1``.
``PYTHONDONTWRITEBYTECODE``, ``PYTHONUNBUFFERED``
    ``1`` (byte code could not be kept anyway; unbuffered output keeps
    standard output and standard error in step in CI logs).

plus the host's ``VIRTUAL_ENV``, ``CI`` and every host variable whose name
starts with ``NUMAMAP_``, ``PYTEST_`` or ``PYTHON``, and those given with
``--env``.  Host directories given with ``--rwdir`` are writable from the
guest, with the writes reaching the host (use one for JUnit XML, coverage
data and other results to keep).

This module uses only the standard library and imports nothing else from
numamap, so it works before numamap is built.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

__all__ = [
    "ENV_TOPOLOGY",
    "EXIT_MISSING",
    "EXIT_NO_STATUS",
    "EXIT_TIMEOUT",
    "HmatEntry",
    "TOPOLOGIES",
    "Topology",
    "current_topology",
    "main",
]

#: Environment variable naming the topology inside the guest.
ENV_TOPOLOGY = "NUMAMAP_VM_TOPOLOGY"

#: Exit status when a prerequisite is missing or the arguments are wrong.
EXIT_MISSING = 2
#: Exit status when ``--timeout`` ran out.
EXIT_TIMEOUT = 124
#: Exit status when the guest stopped without reporting COMMAND's status.
EXIT_NO_STATUS = 125

#: Default ``--timeout`` in seconds.
DEFAULT_TIMEOUT = 600.0

#: Distance of a node to itself in the ACPI SLIT (what ``numactl -H`` shows).
LOCAL_DISTANCE = 10

# Directories virtme-ng already overlays (writable in the guest); the working
# directory needs no overlay of its own when it lies below one of them.
_VNG_OVERLAID = ("/etc", "/lib", "/home", "/opt", "/srv", "/usr", "/var", "/tmp")

# Host variables passed on to COMMAND (besides --env and the runner's own).
_FORWARDED_PREFIXES = ("NUMAMAP_", "PYTEST_", "PYTHON")
_FORWARDED_NAMES = ("VIRTUAL_ENV", "CI")

# PATH entries appended after the host's own, so that the usual tools are
# found in the guest even when the host's PATH is short.
_STANDARD_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class HmatEntry(NamedTuple):
    """One HMAT latency and bandwidth pair: memory of node ``target`` as seen from node ``initiator``.

    The guest publishes the best initiators' figures under
    ``/sys/devices/system/node/node<target>/access0/initiators/``, bandwidth in MB/s (MiB/s as
    QEMU counts them) and latency in ns.
    """

    initiator: int
    target: int
    latency_ns: int
    bandwidth_mbps: int


def _hmat_grid(latency: dict[tuple[int, int], int], bandwidth: dict[tuple[int, int], int]) -> tuple:
    return tuple(HmatEntry(i, t, latency[i, t], bandwidth[i, t]) for i, t in sorted(latency))


@dataclass(frozen=True)
class Topology:
    """A guest NUMA layout, as the guest kernel numbers it.

    Parameters
    ----------
    name : str
        Key in :data:`TOPOLOGIES` and value of ``NUMAMAP_VM_TOPOLOGY``.
    description : str
        One line for people.
    cpus : tuple of tuple of int
        ``cpus[n]`` lists the CPUs of node ``n``; empty for a node without
        CPUs.
    memory_mib : tuple of int
        ``memory_mib[n]`` is the memory given to node ``n`` in MiB; 0 for a
        node without memory.  The guest reports somewhat less (``numactl -H``
        shows about 450-500 MB of a 512 MiB node: firmware holes and the
        kernel's own use), so compare with a tolerance.
    distances : tuple of tuple of int
        The SLIT distance matrix, ``distances[a][b]`` from node ``a`` to node
        ``b``, as ``numactl -H`` and ``/sys/devices/system/node/nodeN/distance``
        show it.
    hmat : tuple of HmatEntry
        Memory-side latency and bandwidth per (initiator, target) pair, for
        QEMU's ACPI HMAT (``-machine hmat=on``); empty for a guest without
        one.  Give every pair of a CPU node and a memory node.

    Notes
    -----
    Linux numbers the nodes of an x86 guest in the order the ACPI SRAT first
    mentions them, and QEMU lists every CPU before any memory range, so the
    nodes that have CPUs always come first, in CPU order, and the nodes
    without CPUs come last.  :meth:`validate` insists on that order, which
    makes the node numbers here, QEMU's and the guest's the same.
    """

    name: str
    description: str
    cpus: tuple[tuple[int, ...], ...]
    memory_mib: tuple[int, ...]
    distances: tuple[tuple[int, ...], ...]
    hmat: tuple[HmatEntry, ...] = ()

    @property
    def num_nodes(self) -> int:
        """Number of NUMA nodes."""
        return len(self.cpus)

    @property
    def num_cpus(self) -> int:
        """Number of CPUs in the guest."""
        return sum(len(c) for c in self.cpus)

    @property
    def total_memory_mib(self) -> int:
        """Guest memory in MiB, the sum over the nodes."""
        return sum(self.memory_mib)

    @property
    def cpu_nodes(self) -> tuple[int, ...]:
        """Nodes that have at least one CPU."""
        return tuple(n for n, c in enumerate(self.cpus) if c)

    @property
    def memory_nodes(self) -> tuple[int, ...]:
        """Nodes that have memory."""
        return tuple(n for n, m in enumerate(self.memory_mib) if m > 0)

    def node_of_cpu(self, cpu: int) -> int:
        """Return the node that CPU ``cpu`` belongs to.

        Raises
        ------
        KeyError
            If the guest has no such CPU.
        """
        for node, cpus in enumerate(self.cpus):
            if cpu in cpus:
                return node
        raise KeyError(cpu)

    def validate(self) -> None:
        """Check that the layout is one QEMU and the guest agree on.

        Raises
        ------
        ValueError
            If the per-node tuples disagree in length, the distance matrix is
            not square and symmetric with 10 on the diagonal and more than 10
            elsewhere, a node has neither CPUs nor memory, no node has memory,
            or the CPUs are not numbered 0, 1, ... in node order with the
            CPU-less nodes last (see the class notes).
        """
        n = self.num_nodes
        if n < 1:
            raise ValueError(f"{self.name}: no nodes")
        if len(self.memory_mib) != n or len(self.distances) != n:
            raise ValueError(f"{self.name}: cpus, memory_mib and distances differ in length")
        for a, row in enumerate(self.distances):
            if len(row) != n:
                raise ValueError(f"{self.name}: distance row {a} has {len(row)} entries, not {n}")
            for b, d in enumerate(row):
                if a == b and d != LOCAL_DISTANCE:
                    raise ValueError(f"{self.name}: distance {a}->{a} must be {LOCAL_DISTANCE}")
                if a != b and not LOCAL_DISTANCE < d < 255:
                    raise ValueError(f"{self.name}: distance {a}->{b} must lie in 11..254")
                if d != self.distances[b][a]:
                    raise ValueError(f"{self.name}: distances {a}->{b} and {b}->{a} differ")
        for node, (cpus, mem) in enumerate(zip(self.cpus, self.memory_mib, strict=True)):
            if mem < 0:
                raise ValueError(f"{self.name}: node {node} has negative memory")
            if not cpus and mem == 0:
                raise ValueError(f"{self.name}: node {node} has neither CPUs nor memory")
        if not self.memory_nodes:
            raise ValueError(f"{self.name}: no node has memory")
        flat = [cpu for cpus in self.cpus for cpu in cpus]
        if flat != list(range(len(flat))):
            raise ValueError(f"{self.name}: CPUs must be numbered 0, 1, ... in node order")
        with_cpus = self.cpu_nodes
        if with_cpus != tuple(range(len(with_cpus))):
            raise ValueError(
                f"{self.name}: nodes with CPUs must come before nodes without CPUs "
                "(the guest kernel numbers them that way)"
            )

    def vng_arguments(self) -> list[str]:
        """Return the ``vng`` options that create this layout.

        Returns
        -------
        list of str
            ``--cpus``, ``--memory``, one ``--numa`` per node and one
            ``--numa-distance`` per pair of nodes.
        """
        args = ["--cpus", str(self.num_cpus), "--memory", f"{self.total_memory_mib}M"]
        for cpus, mem in zip(self.cpus, self.memory_mib, strict=True):
            # virtme-ng creates a node without a memory backend for "0".
            spec = f"{mem}M" if mem > 0 else "0"
            spec += "".join(f",cpus={r}" for r in _cpu_ranges(cpus))
            args += ["--numa", spec]
        for a in range(self.num_nodes):
            for b in range(a + 1, self.num_nodes):
                args += ["--numa-distance", f"{a},{b}={self.distances[a][b]}"]
        if self.hmat:
            opts = ["-machine", "hmat=on"]
            for e in self.hmat:
                pair = f"hmat-lb,initiator={e.initiator},target={e.target},hierarchy=memory"
                opts += ["-numa", f"{pair},data-type=access-latency,latency={e.latency_ns}",
                         "-numa", f"{pair},data-type=access-bandwidth,bandwidth={e.bandwidth_mbps}M"]
            args.append("--qemu-opts=" + " ".join(opts))
        return args

    def hmat_entry(self, initiator: int, target: int) -> HmatEntry | None:
        """The HMAT figures declared for ``initiator`` -> ``target``, or None."""
        return next((e for e in self.hmat if (e.initiator, e.target) == (initiator, target)), None)

    def as_dict(self) -> dict[str, object]:
        """Return the layout as plain data (lists, ints, strings), e.g. for JSON."""
        return {
            "name": self.name,
            "description": self.description,
            "num_nodes": self.num_nodes,
            "cpus": [list(c) for c in self.cpus],
            "memory_mib": list(self.memory_mib),
            "distances": [list(r) for r in self.distances],
            "hmat": [e._asdict() for e in self.hmat],
        }


def _cpu_ranges(cpus: Sequence[int]) -> list[str]:
    """Compress CPU numbers into QEMU ranges, e.g. ``[0, 1, 2, 5]`` -> ``["0-2", "5"]``."""
    ranges: list[str] = []
    ordered = sorted(cpus)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        ranges.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ranges


#: The named guest layouts, by name.  Node numbers are the guest's.
TOPOLOGIES: dict[str, Topology] = {
    t.name: t
    for t in (
        Topology(
            name="two",
            description="2 nodes x 1 CPU, 1 GiB each, distance 21",
            cpus=((0,), (1,)),
            memory_mib=(1024, 1024),
            distances=(
                (10, 21),
                (21, 10),
            ),
        ),
        Topology(
            name="four",
            description=(
                "4 nodes: 0 and 1 with a CPU and 512 MiB each, 2 with a CPU and no memory, "
                "3 with 512 MiB and no CPU; every distance different"
            ),
            # The guest numbers nodes with CPUs first (see Topology), so the
            # memory-only node can only be the last one.  Distances are all
            # different so that a test reading them by the wrong index fails;
            # the CPU-only node 2 is nearest to node 0 and the memory-only
            # node 3 nearest to node 1.
            cpus=((0,), (1,), (2,), ()),
            memory_mib=(512, 512, 0, 512),
            distances=(
                (10, 21, 12, 28),
                (21, 10, 23, 17),
                (12, 23, 10, 26),
                (28, 17, 26, 10),
            ),
        ),
        Topology(
            name="hugepages",
            description=(
                "2 nodes x 1 CPU, 1 GiB each, distance 21, for tests that reserve a "
                "2 MiB huge page pool on one node through sysfs"
            ),
            cpus=((0,), (1,)),
            memory_mib=(1024, 1024),
            distances=(
                (10, 21),
                (21, 10),
            ),
        ),
        Topology(
            name="hmat",
            description=(
                "3 nodes with an ACPI HMAT: 0 and 1 with a CPU and 512 MiB each, 2 with 512 MiB "
                "and no CPU, slower (less bandwidth, more latency) from both CPUs"
            ),
            # Node 2 stands for a CXL memory expander: the capacity tier. Local DRAM is the
            # fastest and nearest from each CPU, remote DRAM next, node 2 last; the figures are
            # arbitrary, only their order matters to the tests.
            cpus=((0,), (1,), ()),
            memory_mib=(512, 512, 512),
            distances=(
                (10, 21, 28),
                (21, 10, 28),
                (28, 28, 10),
            ),
            hmat=_hmat_grid(
                latency={(0, 0): 80, (0, 1): 130, (0, 2): 250,
                         (1, 0): 130, (1, 1): 80, (1, 2): 250},
                bandwidth={(0, 0): 20480, (0, 1): 10240, (0, 2): 4096,
                           (1, 0): 10240, (1, 1): 20480, (1, 2): 4096},
            ),
        ),
    )
}


def current_topology() -> Topology | None:
    """Return the topology this process runs in, or None outside the runner's guest.

    Returns
    -------
    Topology or None
        ``TOPOLOGIES[os.environ["NUMAMAP_VM_TOPOLOGY"]]`` when that variable
        names a known topology, else None.
    """
    return TOPOLOGIES.get(os.environ.get(ENV_TOPOLOGY, ""))


class MissingPrerequisite(Exception):
    """A program or file the runner needs is not there; the message says what to install."""


class Terminated(BaseException):
    """The runner got SIGTERM (e.g. a cancelled CI job) while the guest ran."""


def _raise_terminated(signum: int, frame: object) -> None:
    """SIGTERM handler: unwind so that the guest gets stopped."""
    raise Terminated(signum)


def _version_key(path: Path) -> tuple[tuple[int, object], ...]:
    """Sort key that orders ``vmlinuz-6.10.0`` after ``vmlinuz-6.9.0``."""
    parts = re.split(r"(\d+)", path.name)
    return tuple((1, int(p)) if p.isdigit() else (0, p) for p in parts if p)


def find_kernel(boot: Path = Path("/boot")) -> Path:
    """Return the newest readable ``vmlinuz-*`` in ``boot``.

    Parameters
    ----------
    boot : Path
        Directory to look in.

    Returns
    -------
    Path
        The kernel image with the highest version in its name.

    Raises
    ------
    MissingPrerequisite
        If there is none, or none that this user can read.
    """
    images = sorted(boot.glob("vmlinuz-*"), key=_version_key)
    if not images:
        raise MissingPrerequisite(
            f"no kernel image {boot}/vmlinuz-*: install one "
            "(Debian: `apt-get install linux-image-amd64`, Ubuntu: `apt-get install "
            "linux-image-generic`) or pass --kernel PATH"
        )
    readable = [p for p in images if os.access(p, os.R_OK)]
    if not readable:
        raise MissingPrerequisite(
            f"kernel images in {boot} are not readable by this user ({images[-1]}): "
            f"run as root, `chmod 0644 {images[-1]}`, or pass --kernel PATH"
        )
    return readable[-1]


def _qemu_name() -> tuple[str, str]:
    """Return the QEMU system emulator for this machine and the Debian package holding it."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "qemu-system-x86_64", "qemu-system-x86"
    if machine in ("aarch64", "arm64"):
        return "qemu-system-aarch64", "qemu-system-arm"
    return f"qemu-system-{machine}", "qemu-system"


def _search_path() -> str:
    """PATH for finding programs: this interpreter's directory first, then PATH."""
    return os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", os.defpath)])


def find_prerequisites(kernel: str | None) -> tuple[str, str, Path]:
    """Locate QEMU, ``vng``, busybox and the kernel image.

    Parameters
    ----------
    kernel : str or None
        Kernel image given on the command line, or None for the newest in
        ``/boot``.

    Returns
    -------
    tuple of (str, str, Path)
        QEMU system emulator, ``vng`` and kernel image.

    Raises
    ------
    MissingPrerequisite
        Naming everything that is missing and how to install it.
    """
    problems: list[str] = []
    if not sys.platform.startswith("linux"):
        raise MissingPrerequisite("the multi-node tier needs a Linux host (QEMU + virtme-ng)")
    search = _search_path()
    qemu_name, qemu_package = _qemu_name()
    qemu = shutil.which(qemu_name, path=search)
    if qemu is None:
        problems.append(f"{qemu_name} not found: install it with `apt-get install {qemu_package}`")
    vng = shutil.which("vng", path=search)
    if vng is None:
        problems.append(
            "vng (virtme-ng) not found: install it with `pip install virtme-ng` "
            f"(into this environment: `{sys.executable} -m pip install virtme-ng`)"
        )
    # virtme-ng builds an initramfs for Debian's modular kernels from busybox; without it the
    # guest never starts, which must read as a missing tool, not as a dead guest.
    if shutil.which("busybox", path=search + os.pathsep + "/bin:/usr/bin") is None:
        problems.append("busybox not found: install it with `apt-get install busybox-static`")
    image: Path | None = None
    if kernel is not None:
        image = Path(kernel)
        if not image.is_file():
            problems.append(f"kernel image {image} not found")
        elif not os.access(image, os.R_OK):
            problems.append(f"kernel image {image} is not readable by this user")
    else:
        try:
            image = find_kernel()
        except MissingPrerequisite as exc:
            problems.append(str(exc))
    if problems:
        raise MissingPrerequisite("\n".join(problems))
    assert qemu is not None and vng is not None and image is not None
    return qemu, vng, image


def _guest_environment(topology: Topology, extra: Mapping[str, str]) -> dict[str, str]:
    """Variables to export for COMMAND inside the guest.

    Parameters
    ----------
    topology : Topology
        The guest layout.
    extra : mapping of str to str
        Variables from ``--env``; they override the forwarded host ones.

    Returns
    -------
    dict of str to str
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if (k.startswith(_FORWARDED_PREFIXES) or k in _FORWARDED_NAMES) and _ENV_NAME.fullmatch(k)
    }
    entries = [os.path.dirname(sys.executable)]
    entries += os.environ.get("PATH", "").split(os.pathsep)
    entries += _STANDARD_PATH
    env["PATH"] = os.pathsep.join(dict.fromkeys(e for e in entries if e))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    env[ENV_TOPOLOGY] = topology.name
    env["NUMAMAP_VM"] = "1"
    return env


def _guest_script(command: Sequence[str], cwd: str, env: Mapping[str, str], status_file: str) -> str:
    """Write the guest shell script: set up, run COMMAND, record its status."""
    lines = ["# written by numamap.testing.vm; runs inside the guest"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    q_status = shlex.quote(status_file)
    lines += [
        f"cd {shlex.quote(cwd)} || {{ echo {EXIT_NO_STATUS} > {q_status}; exit {EXIT_NO_STATUS}; }}",
        shlex.join(command),
        "status=$?",
        f'echo "$status" > {q_status}',
        'exit "$status"',
    ]
    return "\n".join(lines) + "\n"


def _below(path: str, directory: str) -> bool:
    """Whether ``path`` is ``directory`` or lies below it (both absolute)."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def build_vng_command(
    vng: str,
    qemu: str,
    kernel: Path,
    topology: Topology,
    script: str,
    shared_dir: str,
    cwd: str,
    rwdirs: Sequence[str] = (),
    kvm: bool = False,
    verbose: bool = False,
) -> list[str]:
    """Assemble the ``vng`` command line.

    Parameters
    ----------
    vng, qemu : str
        Paths of ``vng`` and the QEMU system emulator.
    kernel : Path
        Kernel image to boot.
    topology : Topology
        Guest layout.
    script : str
        Path of the guest script (inside ``shared_dir``).
    shared_dir : str
        Host directory shared writable with the guest (status file).
    cwd : str
        Working directory for COMMAND; it gets a throw-away overlay unless it
        is already writable in the guest.
    rwdirs : sequence of str
        More host directories to share writable.
    kvm : bool
        Use KVM instead of TCG.
    verbose : bool
        Show the guest kernel's console.

    Returns
    -------
    list of str
    """
    cmd = [vng, "--run", str(kernel), "--qemu", qemu]
    if not kvm:
        cmd.append("--disable-kvm")
    cmd += topology.vng_arguments()
    writable = [shared_dir, *rwdirs]
    for d in writable:
        cmd.append(f"--rwdir={d}")
    if cwd != "/" and not any(_below(cwd, d) for d in (*_VNG_OVERLAID, *writable)):
        cmd.append(f"--overlay-rwdir={cwd}")
    cmd += ["--cwd", cwd]
    cmd.append("--verbose" if verbose else "--quiet")
    cmd += ["--exec", f"sh {shlex.quote(script)}"]
    return cmd


def _pump(source: BinaryIO, sink: BinaryIO) -> None:
    """Copy ``source`` to ``sink`` as data arrives, flushing each chunk."""
    fd = source.fileno()
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        try:
            sink.write(chunk)
            sink.flush()
        except (BrokenPipeError, ValueError):
            pass


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the ``vng`` process group (vng, QEMU and helpers) that this runner started.

    QEMU can outlive vng for a moment, so this waits until the whole group is
    gone, escalating from SIGTERM to SIGKILL after 10 s.
    """
    group = proc.pid  # started with start_new_session=True: its own group
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            proc.poll()  # reap vng so that it stops counting as a member
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            continue
        break
    try:
        proc.wait(timeout=10.0)
    except subprocess.TimeoutExpired:
        pass


def _message(text: str) -> None:
    """Print a runner message on standard error."""
    print(f"numamap.testing.vm: {text}", file=sys.stderr, flush=True)


def run(
    topology: Topology,
    command: Sequence[str],
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    kernel: str | None = None,
    env: Mapping[str, str] | None = None,
    rwdirs: Sequence[str] = (),
    kvm: bool = False,
    verbose: bool = False,
    dry_run: bool = False,
) -> int:
    """Boot a guest with ``topology``, run ``command`` in it and return its exit status.

    Parameters
    ----------
    topology : Topology
        Guest layout.
    command : sequence of str
        Program and arguments, run in the current working directory.
    timeout : float or None
        Seconds before the guest is stopped (boot included); None for no limit.
    kernel : str or None
        Kernel image; None for the newest ``/boot/vmlinuz-*``.
    env : mapping of str to str, optional
        Extra variables for COMMAND.
    rwdirs : sequence of str
        Host directories COMMAND may write to, with the writes kept.
    kvm : bool
        Use KVM rather than TCG (only where KVM works; nested KVM often hangs).
    verbose : bool
        Show the ``vng`` command line and the guest kernel's console on
        standard error.
    dry_run : bool
        Print the ``vng`` command line and the guest script on standard
        error and return 0 without booting.

    Returns
    -------
    int
        COMMAND's exit status, or :data:`EXIT_MISSING`, :data:`EXIT_TIMEOUT`
        or :data:`EXIT_NO_STATUS`.
    """
    try:
        topology.validate()
    except ValueError as exc:
        _message(f"bad topology: {exc}")
        return EXIT_MISSING
    if not command:
        _message("no COMMAND given (put it after --)")
        return EXIT_MISSING
    try:
        qemu, vng, image = find_prerequisites(kernel)
    except MissingPrerequisite as exc:
        for line in str(exc).splitlines():
            _message(line)
        return EXIT_MISSING
    missing_dirs = [d for d in rwdirs if not os.path.isdir(d)]
    if missing_dirs:
        _message(f"--rwdir: not a directory: {', '.join(missing_dirs)}")
        return EXIT_MISSING

    cwd = os.getcwd()
    rwdirs = [os.path.abspath(d) for d in rwdirs]
    with tempfile.TemporaryDirectory(prefix="numamap-vm-") as shared:
        status_file = os.path.join(shared, "status")
        script_file = os.path.join(shared, "run.sh")
        script = _guest_script(command, cwd, _guest_environment(topology, env or {}), status_file)
        with open(script_file, "w", encoding="utf-8") as f:
            f.write(script)
        cmd = build_vng_command(vng, qemu, image, topology, script_file, shared, cwd, rwdirs, kvm, verbose)
        if verbose or dry_run:
            _message("running " + shlex.join(cmd))
        if dry_run:
            sys.stderr.write(script)
            sys.stderr.flush()
            return 0

        # vng runs virtme-run through the shell: its directory must be on PATH
        # even when the environment holding it is not activated.
        host_env = dict(os.environ)
        host_env["PATH"] = os.pathsep.join([os.path.dirname(vng), host_env.get("PATH", os.defpath)])
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            return _boot(cmd, host_env, status_file, timeout, verbose)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def _boot(
    cmd: Sequence[str],
    host_env: Mapping[str, str],
    status_file: str,
    timeout: float | None,
    verbose: bool,
) -> int:
    """Run ``vng``, copy its output through and return COMMAND's status."""
    start = time.monotonic()
    # Pipes, not the runner's own descriptors: QEMU reopens its standard
    # output through /proc/self/fd/1, and on a regular file that starts
    # writing at offset 0 over what is already there.
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=host_env,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, sys.stdout.buffer), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, sys.stderr.buffer), daemon=True),
    ]
    for p in pumps:
        p.start()
    timed_out = False
    try:
        vng_status = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _stop(proc)
        vng_status = proc.returncode
    except (KeyboardInterrupt, Terminated):
        _stop(proc)
        raise
    for p in pumps:
        p.join(timeout=10)
    elapsed = time.monotonic() - start
    if timed_out:
        _message(f"timed out after {timeout:g} s; guest stopped")
        return EXIT_TIMEOUT
    try:
        with open(status_file, encoding="ascii") as f:
            status = int(f.read().strip())
    except (OSError, ValueError):
        _message(
            f"the guest stopped without reporting the command's status "
            f"(vng exited with {vng_status} after {elapsed:.0f} s); "
            "rerun with --verbose to see the guest console"
        )
        return EXIT_NO_STATUS
    if vng_status != status:
        _message(f"note: vng exited with {vng_status}, the command with {status}")
    if verbose:
        _message(f"guest finished in {elapsed:.1f} s, command status {status}")
    return status


def _parse_env(items: Sequence[str]) -> dict[str, str]:
    """Turn ``NAME=VALUE`` strings into a dict; raise ValueError on a bad one."""
    env: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not _ENV_NAME.fullmatch(name):
            raise ValueError(f"--env expects NAME=VALUE, got {item!r}")
        env[name] = value
    return env


def _parser() -> argparse.ArgumentParser:
    """Build the command-line parser."""
    lines = [f"  {t.name:<10} {t.description}" for t in TOPOLOGIES.values()]
    parser = argparse.ArgumentParser(
        prog="python -m numamap.testing.vm",
        description=(
            "Boot a multi-node NUMA Linux guest (virtme-ng, QEMU TCG) on this host's file system "
            "and run COMMAND in it, in the same directory, with this Python first on PATH. "
            "Exits with COMMAND's status."
        ),
        epilog="topologies:\n" + "\n".join(lines),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--topology", required=True, choices=sorted(TOPOLOGIES), help="guest NUMA layout")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"stop the guest after this long, boot included; 0 for no limit (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument("--kernel", metavar="PATH", help="kernel image (default: newest /boot/vmlinuz-*)")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a variable for COMMAND (repeatable)",
    )
    parser.add_argument(
        "--rwdir",
        action="append",
        default=[],
        metavar="DIR",
        help="host directory COMMAND may write to, writes kept (repeatable)",
    )
    parser.add_argument("--kvm", action="store_true", help="use KVM instead of TCG (not with nested KVM)")
    parser.add_argument("--verbose", action="store_true", help="show the vng command and the guest console")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the vng command and guest script, boot nothing"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="what to run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status (see the module docstring).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        parser.error("give the command to run after --")
    try:
        env = _parse_env(args.env)
    except ValueError as exc:
        parser.error(str(exc))
    timeout = args.timeout if args.timeout > 0 else None
    try:
        return run(
            TOPOLOGIES[args.topology],
            command,
            timeout=timeout,
            kernel=args.kernel,
            env=env,
            rwdirs=args.rwdir,
            kvm=args.kvm,
            verbose=args.verbose,
            dry_run=args.dry_run,
        )
    except KeyboardInterrupt:
        _message("interrupted; guest stopped")
        return 128 + signal.SIGINT
    except Terminated:
        _message("terminated; guest stopped")
        return 128 + signal.SIGTERM


if __name__ == "__main__":
    sys.exit(main())
