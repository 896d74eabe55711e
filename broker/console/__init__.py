"""``ixb console``: the browser console for analysts, liaison officers, auditors and operators.

Server-rendered pages (Starlette, Jinja2) over the same libraries the
commands use, so the browser shows what the command line says:

- an analyst sees one nation's verified feed, live (broker/console/feeds.py,
  through the recipient's own DeliveryVerifier), each report with every
  field's provenance, and what is still held under embargo for it;
- a liaison officer sees their nation's agreements in plain words and on a
  timeline, who receives what from whom (asked of the policy), explain for
  an uploaded report, the agreements check and the flows over a period;
- an auditor verifies the decision log, replays a period, checks a
  receipt and sees the export's charts (broker/auditor/);
- an operator sees each enforcer's readiness and metrics, the rejected
  topics and the held deliveries.

Each person sees only their own part: access is decided in one place
(broker/console/web.py :func:`allow`). Login is pluggable
(broker/console/users.py :class:`Authenticator`); until party identities
(mTLS) exist, users and scrypt hashes live in a 0600 file and the console
listens on loopback only. Every asset is served by the console itself and a
Content-Security-Policy forbids loading anything from anywhere else.
"""
