"""The ``stalwart-py`` command (the console script) and ``python -m stalwart_py``."""

from __future__ import annotations

import gc
import sys


def main() -> int:
    # Importing the command (nearly every module of the server) allocates objects that live
    # as long as the process. The collector's passes over them free nothing: with it running,
    # about 80 collections cost 30-50 ms; paused and then re-enabled, its next passes walk
    # everything at once, which costs as much. So it pauses for these imports and what they
    # made is frozen (left out of every collection: it is what ``serve`` freezes anyway)
    # before it resumes: ~0.5 ms of collections in all.
    gc.disable()
    try:
        from stalwart_py.cli import main as command
    finally:
        gc.freeze()
        gc.enable()
    return command()


if __name__ == "__main__":
    sys.exit(main())
