"""MISP out of and into ixb, with pymisp (docs/STIX.md, "MISP").

- :func:`delivery_to_event` / :func:`delivery_to_misp_json`: a verified
  delivery as a MISP core-format event;
- :func:`events_to_reports`: MISP events (REST API answers or JSON exports)
  as ixb reports; what cannot be kept is refused by name.
"""

from connectors.misp.inbound import event_to_report, events_to_reports, load_events
from connectors.misp.outbound import delivery_to_event, delivery_to_misp_json

__all__ = [
    "delivery_to_event",
    "delivery_to_misp_json",
    "event_to_report",
    "events_to_reports",
    "load_events",
]
