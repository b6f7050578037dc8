"""Data parallelism for the inference commands: which process am I, which work is mine.

``unires restore``, ``unires search`` and ``unires bench run`` run as one process, or as
several started by a launcher, the way diffusers documents it for inference::

    accelerate launch --num_processes 4 -m unires restore photos/ -o out/
    torchrun --nproc_per_node 4 -m unires restore photos/ -o out/

Every process parses the same command line; the main process lists the work once and hands
the list to the others (``broadcast``); each takes its share (``share``: every N-th item, so
each item is done by exactly one process); the results are gathered (``gather``, ``total``)
so that every process returns the same exit code and the main one prints the summary and
writes shared tables. This module is the one place that knows about launchers: it is a thin
layer over ``accelerate.PartialState`` (which reads the launcher's environment, picks the
backend - NCCL on GPUs, gloo on CPUs - and each process's device) and the
``torch.distributed`` object collectives.

Without a launcher (no ``WORLD_SIZE`` or a size of 1) ``processes()`` is ``SINGLE``: nothing
is imported, every method is the identity, and the commands behave exactly as one process.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# Where launchers put the number of processes: torchrun and accelerate launch (WORLD_SIZE),
# MPI flavours (what accelerate.utils.get_cpu_distributed_information reads too).
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
PROGRESS_EVERY = 1.0  # seconds between two looks at the shared progress (main process)


def launched_processes() -> int:
    """How many processes the launcher started for this job: 1 without a launcher.

    Reads the environment only (``WORLD_SIZE`` of torchrun / accelerate launch, or the MPI
    equivalents). Raises ``ValueError`` if the variable is not an integer.
    """
    for name in WORLD_SIZE_VARIABLES:
        value = os.environ.get(name)
        if value:
            try:
                return max(1, int(value))
            except ValueError:
                raise ValueError(f"{name}={value!r} is not a number of processes") from None
    return 1


@dataclass(frozen=True)
class Processes:
    """The processes of one command: ``count`` of them, this one is ``index`` (0: the main
    one), ``local_index`` on its machine. ``device`` is this process's accelerator as
    accelerate chose it (``"cuda:3"``, ``"cpu"``), None for a single process.

    Every collective (``broadcast``, ``gather``, ``total``, ``any``, ``barrier``) must be
    called by all processes in the same order; with one process each is the identity.
    """

    index: int = 0
    count: int = 1
    local_index: int = 0
    device: str | None = None

    @property
    def parallel(self) -> bool:
        """Several processes share the work."""
        return self.count > 1

    @property
    def is_main(self) -> bool:
        """The process that prints summaries and writes shared files (rank 0)."""
        return self.index == 0

    def share(self, items: Sequence[T]) -> list[T]:
        """This process's items: ``items[index::count]``, round robin in list order.

        Deterministic: the processes together take every item exactly once, and the shares
        differ in length by at most one (neighbouring items, often alike in size, go to
        different processes).
        """
        return list(items[self.index :: self.count])

    def device_for(self, requested: str | None) -> str | None:
        """The device a command should load its model on: ``auto`` (and a bare ``cuda``)
        becomes this process's own device when several share the work; an explicit device
        (``cpu``, ``cuda:1``) is kept."""
        if not self.parallel or self.device is None:
            return requested
        if requested in (None, "auto") or (requested == "cuda" and self.device.startswith("cuda")):
            return self.device
        return requested

    def broadcast(self, obj: T, source: int = 0) -> T:
        """``obj`` of process ``source`` on every process (picklable objects)."""
        if not self.parallel:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=source)
        return box[0]

    def gather(self, obj: T) -> list[T]:
        """Every process's ``obj``, in process order, on every process (picklable)."""
        if not self.parallel:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.count
        dist.all_gather_object(out, obj)
        return out

    def total(self, n: int) -> int:
        """The sum of ``n`` over the processes, on every process."""
        return sum(self.gather(int(n))) if self.parallel else int(n)

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any process, on every process."""
        return any(self.gather(bool(flag))) if self.parallel else bool(flag)

    def barrier(self) -> None:
        """Wait until every process is here, its printed lines flushed first.

        Call it last, after the main process has reported: a launcher stops every process
        as soon as one exits with an error, so none may leave before the main one is done.
        """
        if self.parallel:
            import sys

            import torch.distributed as dist

            sys.stdout.flush()
            sys.stderr.flush()
            dist.barrier()

    @contextlib.contextmanager
    def progress(
        self,
        bar,
        count: Callable[[], int] | None = None,
        *,
        every: float = PROGRESS_EVERY,
    ) -> Iterator[Callable[[], None]]:
        """One progress bar for the whole job, on the main process.

        Yields ``advance()``, to call after each item this process finished. One process:
        ``advance`` is ``bar.update(1)``. Several: the main process's ``bar`` (its ``total``
        the whole job) shows ``count()``, what all of them wrote as read from the disk (e.g.
        ``files_written``), every ``every`` seconds and at each ``advance``; the other
        processes' bars should be disabled and their ``advance`` does nothing. The outputs
        are the only signal, so no process waits for another to report; gather inside the
        ``with`` so that the bar follows the others while the main process waits for them.
        """
        if not self.parallel:
            yield lambda: bar.update(1)
            return
        if not self.is_main or count is None or getattr(bar, "disable", False):
            yield lambda: None
            return
        lock = threading.Lock()

        def refresh() -> None:
            with lock:
                try:
                    n = count()
                except OSError:  # a file replaced while we looked: next time
                    return
                if bar.total is not None:
                    n = min(n, bar.total)
                if n != bar.n:
                    bar.n = n
                    bar.refresh()

        stop = threading.Event()

        def poll() -> None:
            while not stop.wait(every):
                refresh()

        thread = threading.Thread(target=poll, name="unires-progress", daemon=True)
        thread.start()
        try:
            yield refresh
        finally:
            stop.set()
            thread.join()
            refresh()


SINGLE = Processes()


def files_written(paths: Sequence[Path]) -> Callable[[], int]:
    """A counter of the files of ``paths`` written since this call: one counts once it exists
    and differs (inode, size, modification time) from what was there at the call (an atomic
    write replaces the inode). Takes one ``stat`` per path now and at each count: call it
    before another process can write (e.g. before ``broadcast`` hands out the work)."""
    before = {Path(p): _stamp(Path(p)) for p in paths}

    def count() -> int:
        n = 0
        for p, old in before.items():
            now = _stamp(p)
            n += now is not None and now != old
        return n

    return count


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


_PROCESSES: Processes | None = None


def processes(device: str | None = "auto") -> Processes:
    """The processes of this job, set up once per process (later calls return the same).

    No launcher: ``SINGLE``, at no cost (nothing imported). Several processes:
    ``accelerate.PartialState`` joins the process group (NCCL on GPUs; gloo when ``device``
    is ``cpu`` or no GPU is visible), binds this process to its GPU and, on CPUs without
    ``OMP_NUM_THREADS``, gives each process its share of the cores.

    Raises ``MissingExtra`` (one line with the ``pip install``) without accelerate, and
    ``RuntimeError`` if accelerate does not see the launcher's number of processes.
    """
    global _PROCESSES
    if _PROCESSES is not None:
        return _PROCESSES
    world = launched_processes()
    if world == 1:
        return SINGLE
    from .extras import require

    require("parallel", "several processes (accelerate launch, torchrun)")
    import torch
    from accelerate import PartialState

    cpu = str(device) == "cpu" or not torch.cuda.is_available()
    state = PartialState(cpu=cpu)
    if state.num_processes != world:
        raise RuntimeError(
            f"launched with {world} processes but accelerate joined {state.num_processes} "
            f"({state.distributed_type}): check the launcher and the accelerate config"
        )
    _PROCESSES = Processes(
        index=state.process_index,
        count=state.num_processes,
        local_index=state.local_process_index,
        device=str(state.device),
    )
    atexit.register(_leave_group)
    return _PROCESSES


def _leave_group() -> None:
    """Leave the process group at exit (NCCL warns about a group left open)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(Exception):
            dist.destroy_process_group()
