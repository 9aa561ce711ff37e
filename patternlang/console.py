"""How the `patternlang` process ends: its exit status, and a quick exit after the command is done.

Once the command is done, tearing the interpreter down (freeing the thousands of modules torch,
transformers and TransformerLens import, and the model's tensors) takes over a second on 2 cores
and changes nothing the command wrote. So the atexit handlers run, the output is flushed, and the
process ends there. While another non-daemon thread runs, the interpreter ends as usual.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

__all__ = ["_exit_status", "quick_exit"]


def quick_exit(code: int) -> None:
    """End the process with `code`: atexit handlers, a flush, `os._exit` (or `sys.exit` while another
    non-daemon thread runs)."""
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is None or any(thread.is_alive() and not thread.daemon
                                        for thread in threading.enumerate()
                                        if thread is not threading.main_thread()):
        sys.exit(code)
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`): what could be written was
            pass
    os._exit(code)


def _exit_status(code: object) -> int:
    """The status `sys.exit(code)` would end the process with (a message is printed, as it does)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1
