"""The outbound queue: delivery to the world (MX, smarthost, routes), retries, bounces, DKIM.

``QueueManager`` runs with the server (``Server._serve``) and delivers what the store's queue
holds; see ``manager.py`` for scheduling, ``attempts.py`` and ``session.py`` for one delivery,
``routes.py`` for MX resolution, ``outcomes.py`` for retries and DSNs, ``dkim.py`` for
signing.
"""

from stalwart_py.queue.dkim import DkimSigner, generate_key, zone_record
from stalwart_py.queue.manager import QueueManager
from stalwart_py.queue.schedule import Clock, RetrySchedule, SystemClock

__all__ = [
    "Clock",
    "DkimSigner",
    "QueueManager",
    "RetrySchedule",
    "SystemClock",
    "generate_key",
    "zone_record",
]
