"""Settings into the auditor's typed arguments, for ``ixb audit``, the tests and the bench.

The auditor's library (broker/auditor/use_cases.py) takes typed values and
never reads settings; this is the one place that builds them from
:class:`~broker.app.settings.Settings`, so every caller audits the log the
way the configured enforcer wrote it.
"""

from __future__ import annotations

import datetime as dt

from broker.app.assembly import load_catalog, producer_idempotence, resolve_bootstrap
from broker.app.settings import Settings
from broker.auditor.source import AuditSource
from broker.auditor.use_cases import IntakeWindow
from broker.trust.registry_file import RegistryFile
from broker.wire.topics import TopicNames


def audit_source(settings: Settings) -> AuditSource:
    """The configured cluster, topic names, schemas and the registry as it is now."""
    return AuditSource(
        bootstrap=resolve_bootstrap(settings),
        topics=TopicNames(settings.topic_namespace),
        catalog=load_catalog(settings),
        registry=RegistryFile(settings.registry_path).current(),
        idempotent=producer_idempotence(settings),
        origin_prefix=settings.log_origin,
    )


def intake_window(settings: Settings) -> IntakeWindow:
    """The clock skew and freshness the enforcer's intake is configured with."""
    return IntakeWindow(
        max_clock_skew=dt.timedelta(seconds=settings.max_clock_skew_s),
        max_report_age=dt.timedelta(seconds=settings.max_report_age_s),
    )
