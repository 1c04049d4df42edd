"""The text view of an observation: what a person or an LLM agent reads.

``render_text`` depends only on the observation, so any holder of an
observation (a server, a remote client, an agent) can produce the same view.
"""

from __future__ import annotations

import textwrap

from incidentiq.sim.commands import Aspect, Fix

STATUS_NAMES = ("-", "ok", "degraded", "down")
WIDTH = 100
"""Long lists wrap at this many characters."""
COMMAND_HELP = (
    "investigate <service> [" + "|".join(a.value for a in Aspect) + "]",
    "assign to <team>",
    "mitigate: <fix> <service> [artifact]",
    "escalate",
    "resolve",
)
FIX_HELP = ", ".join(f.value for f in Fix)


def render_text(obs: dict) -> str:
    """Format an IncidentIQ observation as a plain-text report."""
    services = obs["affected_services"]
    metrics = obs["metrics"]
    lines = [
        f"INCIDENT [P{int(obs['severity'])}] {obs['task_id']}: {obs['incident_description']}",
        f"SLA remaining: {int(obs['sla_remaining'])} min | step {int(obs['step_count'])} | "
        f"score {float(obs['score'][0]):.2f}",
        "",
        "AFFECTED SERVICES         status     errors    p99 ms       rps  investigated",
    ]
    for i, name in enumerate(services):
        lines.append(
            f"  {name:<24}{STATUS_NAMES[int(metrics['status'][i])]:<10}"
            f"{metrics['error_rate_pct'][i]:6.1f}%  {metrics['latency_p99_ms'][i]:8.0f}  "
            f"{metrics['throughput_rps'][i]:8.0f}  {'yes' if obs['investigated'][i] else 'no'}"
        )
    deps = obs["dependencies"]
    edges = [
        f"{services[i]} -> {services[j]}"
        for i in range(len(services))
        for j in range(len(services))
        if deps[i][j]
    ]
    lines += ["", _wrap("OBSERVED DEPENDENCIES (caller -> callee): " + (", ".join(edges) or "none"))]
    roster = obs["team_roster"]
    teams = [
        f"{team} ({'available' if roster['available'][i] else 'busy'})" for i, team in enumerate(roster["teams"])
    ]
    lines.append(_wrap("TEAM ROSTER: " + ", ".join(teams)))
    if obs["hypotheses"]:
        lines.append("HYPOTHESES: " + ", ".join(obs["hypotheses"]))
    lines += ["", "RECENT LOGS:"] + [f"  {line}" for line in obs["logs"]]
    if obs["feedback"]:
        lines += ["", f"LAST ACTION: {obs['feedback']}"]
    lines += ["", _wrap("COMMANDS: " + " | ".join(COMMAND_HELP)), _wrap(f"FIXES: {FIX_HELP}")]
    return "\n".join(lines)


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=WIDTH, subsequent_indent="  ", break_on_hyphens=False)
