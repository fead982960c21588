"""Logging for rule scripts: one log file per job, and the traceback of a failure in it."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Iterator

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def log_to(path: str | os.PathLike | None) -> Iterator[logging.Logger]:
    """Send the ``sonoflow`` loggers to ``path`` (and stderr) for the duration of a job."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
    logger = logging.getLogger("sonoflow")
    logger.setLevel(logging.INFO)
    for handler in handlers:
        logger.addHandler(handler)
    try:
        yield logger
    except BaseException:
        logger.exception("job failed")
        raise
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
