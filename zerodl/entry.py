"""How a stage script or the CLI ends: one line and an exit code, never a traceback for user mistakes."""
from __future__ import annotations

import signal
import sys
from typing import Callable

from .errors import ZerodlError


def _sigterm(signum, frame):
    # Turn SIGTERM into the same unwinding as Ctrl-C, so atomic writes clean up.
    raise KeyboardInterrupt


def run(main: Callable[[], int | None], prog: str) -> None:
    """Call main(); map the project's errors and interruptions to exit codes."""
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        code = main()
    except ZerodlError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing half-written was left behind", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    sys.exit(code or 0)
