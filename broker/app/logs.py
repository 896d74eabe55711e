"""structlog, configured once: JSON lines when not on a terminal, readable on one.

Log events use fixed snake_case keys (origin, recipient, agreement, topic,
partition, offset, reason). Never log payload values, salts or key material:
reasons and identifiers only.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure(*, level: str = "INFO", force_json: bool = False) -> None:
    """ixb's own events at ``level`` and above; aiokafka's (stdlib logging) from WARNING up.

    aiokafka logs the retries it makes by itself (a partition whose leader
    is moving, a coordinator being elected) as warnings; at a stricter level
    those stay quiet too.
    """
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    renderer: structlog.typing.Processor
    if force_json or not sys.stderr.isatty():
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
