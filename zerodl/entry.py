"""How a stage script or the CLI ends: one line and an exit code, never a traceback for user mistakes."""
from __future__ import annotations

import errno
import os
import signal
import sys
from typing import Callable

from .errors import ZerodlError

# OSErrors that are the machine's state, not a bug: one line naming the file and what to do.
# Any other OSError (a FileNotFoundError the code did not expect, say) keeps its traceback.
_ENVIRONMENT = {getattr(errno, name): hint for name, hint in (
    ("ENOSPC", "free some disk space and run again"),
    ("EDQUOT", "free some disk space (you are over your quota) and run again"),
    ("EFBIG", "the file is larger than this system allows (ulimit -f?)"),
    ("EACCES", "check the permissions of that path"),
    ("EPERM", "check the permissions of that path"),
    ("EROFS", "the file system is read-only; run from a writable copy"),
    ("EIO", "the disk reported an I/O error"),
) if hasattr(errno, name)}  # EDQUOT is not on every platform


_FREE_MEMORY = "free some memory (close other programs) and run again"
_OUT_OF_MEMORY = {"train": "try smaller params (train.batch_size, model.hidden_size, or a smaller data set)"}


class Terminated(KeyboardInterrupt):
    """SIGTERM, unwound like Ctrl-C so atomic writes clean up, but reported as 143."""


def _sigterm(signum, frame):
    raise Terminated


def _while_starting(signum, frame):
    """Ctrl-C or SIGTERM before run() starts, while NumPy and friends import.

    Nothing has been read or written yet, so leave at once: an exception raised
    inside an import can surface as a misleading ImportError (NumPy turns one
    into "Importing the numpy C-extensions failed").
    """
    arg0 = sys.argv[0] if sys.argv[0] not in ("", "-m") else "zerodl"  # "-m": `python -m zerodl.cli` importing
    prog = os.path.splitext(os.path.basename(arg0))[0]
    what = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
    os.write(2, f"{prog}: {what} while starting; nothing was written\n".encode())
    os._exit(128 + signum)


# Installed on import: stages and the CLI import this module first, before NumPy.
signal.signal(signal.SIGINT, _while_starting)
signal.signal(signal.SIGTERM, _while_starting)


def run(main: Callable[[], int | None], prog: str) -> None:
    """Call main(); map the project's errors and interruptions to exit codes.

    0 done; 1 an error (bad data or model, divergence, disk full...); 2 bad
    params.yaml; 130 Ctrl-C (SIGINT); 143 SIGTERM: 128 + the signal, as a shell reports it.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        code = main()
    except ZerodlError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt as e:
        terminated = isinstance(e, Terminated)
        what = "terminated (SIGTERM)" if terminated else "interrupted"
        print(f"{prog}: {what}; nothing half-written was left behind", file=sys.stderr)
        sys.exit(143 if terminated else 130)
    except BrokenPipeError:
        sys.exit(1)
    except MemoryError:
        # Where a file is read, the reader names it (a DataError or ModelError above); what is left
        # is the stage's own work, and only training has params that make it smaller.
        print(f"{prog}: error: out of memory; {_OUT_OF_MEMORY.get(prog, _FREE_MEMORY)}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        if e.errno not in _ENVIRONMENT:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"{prog}: error: {where}{e.strerror or e}; {_ENVIRONMENT[e.errno]}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code or 0)
