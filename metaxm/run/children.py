"""Child processes that die with their parent, even when it dies by SIGKILL.

A parent killed by SIGKILL (``kill -9``, the OOM killer, a scheduler's time limit) runs no
cleanup, and nothing tells its children. A :class:`~concurrent.futures.ProcessPoolExecutor`
worker then lives on for good: it blocks reading the call queue's pipe, and since a
:mod:`multiprocessing` queue pickles both of its ends into the child, the worker holds the write
end itself and the read never sees end-of-file. multiprocessing's resource tracker needs no help:
it exits when every holder of its pipe (the parent and the workers it passed it to) is gone, so
it follows the workers. :func:`die_with_parent`, called first thing in a child (a pool's
``initializer``), ends the child when its parent goes.

A Ctrl-C in a terminal reaches every process of its group, a pool's workers too: one still
importing prints its own KeyboardInterrupt traceback. And a parent stopped by SIGTERM (or by a
job that failed) leaving a ``with ProcessPoolExecutor(...)`` block waits for every job left in
the pool. So a pool's workers start with SIGINT blocked (:func:`interrupt_blocked` around the
submits, which start them) and ignore it (:func:`ignore_interrupts`, in the initializer), and the
parent stops them itself (:func:`stop_pool`), at once.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int | None = None, poll_s: float = 0.5) -> None:
    """End this process (``os._exit(1)``, or SIGKILL) as soon as its parent process dies.

    Two mechanisms, since neither covers every case:

    * On Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills this process when its
      parent dies, at once, even while it runs C code that holds the GIL. The parent here is
      the *thread* that started this process (see ``man 2 prctl``), so call this only in a
      child whose starting thread outlives it: a pool must be submitted to (which is when
      :class:`~concurrent.futures.ProcessPoolExecutor` starts its spawn workers) from the thread
      that shuts it down.
    * Everywhere, a daemon thread that polls :func:`os.getppid` every ``poll_s`` seconds and
      exits when it no longer is ``parent_pid`` (an orphan is re-parented to init or a
      subreaper).

    A parent that died before this call (while the child imported its modules) is caught at
    once: the child's parent is then already someone else.

    Args:
        parent_pid: the pid of the process that started this one. Default: the pid
            :mod:`multiprocessing` recorded when it started this process, else the current
            parent (which, outside multiprocessing, misses a parent that is already dead).
        poll_s: seconds between two checks of the watchdog thread.
    """
    if parent_pid is None:
        parent = multiprocessing.parent_process()
        parent_pid = parent.pid if parent is not None and parent.pid else os.getppid()
    if sys.platform.startswith("linux"):
        _kill_me_with_parent()
    if os.getppid() != parent_pid:  # died before the prctl above, which then never fires
        os._exit(1)
    threading.Thread(
        target=_watch, args=(parent_pid, poll_s), name="die-with-parent", daemon=True
    ).start()


def _kill_me_with_parent() -> None:
    """``prctl(PR_SET_PDEATHSIG, SIGKILL)``; a failure is logged and leaves the watchdog."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # prctl reads its arguments as unsigned longs: pass them at that width
        args = (_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        failed = libc.prctl(*(ctypes.c_ulong(a) for a in args)) != 0
    except (OSError, AttributeError) as e:  # no libc, or one without prctl
        log.debug("prctl unavailable (%s); relying on the parent watchdog", e)
        return
    if failed:
        log.debug("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))


def _watch(parent_pid: int, poll_s: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(poll_s)
    os._exit(1)  # no cleanup: whoever would receive this process's results is gone


@contextmanager
def interrupt_blocked() -> Iterator[None]:
    """SIGINT blocked in this thread for the block. Processes and threads started in it start
    with it blocked (a signal mask survives fork and exec), so a Ctrl-C cannot reach a pool's
    worker before :func:`ignore_interrupts`. The parent may still be interrupted within the
    block (another of its threads, tqdm's monitor say, takes the signal): a worker started
    then but not yet recorded by the pool ends with it (:func:`die_with_parent`). Nothing is
    blocked where signals cannot be (Windows)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def ignore_interrupts() -> None:
    """In a pool's worker, first thing: ignore SIGINT from now on, and drop one that came while
    it started (setting SIG_IGN discards a pending signal) before unblocking it; its parent
    stops it (:func:`stop_pool`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def stop_pool(pool: ProcessPoolExecutor, timeout_s: float = 5.0) -> None:
    """Stop ``pool`` now: cancel the jobs not begun and end its workers (SIGTERM), not waiting
    for the jobs in hand as ``shutdown`` does (Python 3.14's ``terminate_workers``)."""
    terminate_workers = getattr(pool, "terminate_workers", None)  # Python 3.14
    if terminate_workers is not None:
        terminate_workers()
        return
    if not hasattr(pool, "_processes"):  # a Python whose pool keeps them elsewhere
        log.warning("cannot reach the pool's workers to stop them: they finish their jobs")
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout_s)
        if process.is_alive():  # it handles SIGTERM: no more waiting
            process.kill()
