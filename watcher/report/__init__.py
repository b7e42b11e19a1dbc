"""The weekly report: how each vendor did, for the team's regular review of its AI tools.

Per watched vendor, over one week:

- **availability**: the share of the week not covered by an ``outage`` or
  ``degradation`` incident (their durations merged where they overlap, clipped
  to the week; an incident still open counts until the end of the week), with
  the outage and degraded time apart;
- **incidents by kind** that started in the week, and the list of them;
- **time to acknowledge** (first alert sent → first acknowledgement) and **time
  to resolve** (vendor's start → resolved), median and 90th percentile;
  maintenance is left out of both;
- from watcher's own probes: the **latency trend** (median time to first token
  this week against the week before), **canary accuracy** (known-answer
  prompts answered right), **tokens and cost** spent.

The package is three stages, each its own module:

- :mod:`.figures`: :func:`build_report`, pure over the store (reads only; the
  same store and week give the same report);
- :mod:`.render`: :func:`render_text`, :func:`render_slack_blocks`,
  :func:`render_email` (and :func:`render_message`, all of them for the outbox);
  every vendor string is escaped for its target;
- :mod:`.weekly`: :func:`due` and :func:`run_weekly` schedule it once a week and
  queue it in the outbox, so it gets the alerts' retries and fallback;
  :func:`send_report` sends it now through the same channel code.
"""

from __future__ import annotations

from watcher.report.figures import IncidentLine, Report, VendorReport, build_report
from watcher.report.render import (
    human_duration,
    render_email,
    render_html,
    render_message,
    render_slack_blocks,
    render_subject,
    render_text,
)
from watcher.report.weekly import (
    MAX_LATE,
    META_PREFIX,
    SendResult,
    due,
    last_occurrence,
    last_sent,
    mark_sent,
    report_alert,
    report_targets,
    report_window,
    run_weekly,
    send_report,
)

__all__ = [
    "MAX_LATE",
    "META_PREFIX",
    "IncidentLine",
    "Report",
    "SendResult",
    "VendorReport",
    "build_report",
    "due",
    "human_duration",
    "last_occurrence",
    "last_sent",
    "mark_sent",
    "render_email",
    "render_html",
    "render_message",
    "render_slack_blocks",
    "render_subject",
    "render_text",
    "report_alert",
    "report_targets",
    "report_window",
    "run_weekly",
    "send_report",
]
