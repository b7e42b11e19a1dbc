"""Build Statuspage documents for a scenario from the real Anthropic summary fixture.

Starting from a real payload keeps every key, quirk and nesting of the real format;
only the states that the scenario walks through are changed.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

REAL_SUMMARY = (
    Path(__file__).parent / "fixtures" / "statuspage" / "summary-anthropic-claude-incident-2026-10-07.json"
)

API = "Claude API (api.anthropic.com)"


def _base() -> dict:
    doc = json.loads(REAL_SUMMARY.read_text())
    for c in doc["components"]:
        c["status"] = "operational"
    doc["incidents"] = []
    doc["status"] = {"indicator": "none", "description": "All Systems Operational"}
    return doc


def _component(doc: dict, name: str) -> dict:
    return next(c for c in doc["components"] if c["name"] == name)


def operational() -> bytes:
    return json.dumps(_base()).encode()


def components_down(status: str = "major_outage", name: str = API) -> bytes:
    """The page flips a component before anyone has written an incident."""
    doc = _base()
    _component(doc, name)["status"] = status
    doc["status"] = {"indicator": "major", "description": "Partial System Outage"}
    return json.dumps(doc).encode()


def incident(
    *updates: tuple[str, str, str],
    name: str = "Claude API unavailable",
    impact: str = "critical",
    component_status: str = "major_outage",
    incident_id: str = "zz1outage001",
    component: str = API,
    indicator: str = "critical",
) -> bytes:
    """An open incident on ``component``; ``updates`` are (status, body, created_at), oldest first."""
    doc = _base()
    comp = _component(doc, component)
    comp["status"] = component_status
    doc["status"] = {"indicator": indicator, "description": "Major System Outage"}
    template = copy.deepcopy(json.loads(REAL_SUMMARY.read_text())["incidents"][0])
    template.update(
        {
            "id": incident_id,
            "name": name,
            "impact": impact,
            "status": updates[-1][0],
            "created_at": updates[0][2],
            "started_at": updates[0][2],
            "updated_at": updates[-1][2],
            "monitoring_at": None,
            "resolved_at": None,
            "shortlink": "https://stspg.io/test",
            "components": [comp],
        }
    )
    template["incident_updates"] = [
        {
            "id": f"{incident_id}-u{n}",
            "incident_id": incident_id,
            "status": status,
            "body": body,
            "created_at": at,
            "updated_at": at,
            "display_at": at,
            "affected_components": [
                {"code": comp["id"], "name": component, "old_status": "operational", "new_status": component_status}
            ],
            "custom_tweet": None,
            "deliver_notifications": True,
            "tweet_id": None,
        }
        for n, (status, body, at) in reversed(list(enumerate(updates)))
    ]
    doc["incidents"] = [template]
    return json.dumps(doc).encode()
