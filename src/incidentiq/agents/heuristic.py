"""A rule-based responder that reads only observations.

It knows what any on-call engineer's runbook knows (which log signatures
mean which fault, and which fix each fault wants) and nothing about the
episode beyond what the observation shows: it never touches the env.

Its loop: follow the evidence. Investigate the most suspicious service; a
finding either shows a root-cause signature (then escalate if needed, assign
the owner named by the catalog line, apply the runbook fix, resolve) or names
another service (investigate that next). In the hard task it checks the three
hypothesis sites in turn.
"""

from __future__ import annotations

import re

from incidentiq.sim.catalog import SERVICE_NAMES

# (signature, fix, hypothesis the signature supports)
RUNBOOK: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"connection pool exhausted|timeout waiting for connection from pool"), "restart", "db_overload"),
    (re.compile(r"too many clients|long-running query"), "kill-query", "db_overload"),
    (re.compile(r"feature flag \S+ enabled|code path raising"), "rollback", ""),
    (re.compile(r"heap grew|oomkilled"), "rollback", "memory_leak"),
    (re.compile(r"x509|certificate \S+ has expired"), "renew-cert", ""),
    (re.compile(r"returned 429|retry storm"), "throttle", "rate_limit"),
    (re.compile(r"corruptindexexception"), "rebuild-index", ""),
    (re.compile(r"canary \S+ enabled|regression on canary"), "rollback", ""),
)
_OWNER = re.compile(r"INFO catalog: (\S+) is owned by (\S+);")
_INVESTIGATED = re.compile(r"^Investigated (\S+): (.*)$")
_SERVICE = re.compile("|".join(sorted((re.escape(s) for s in SERVICE_NAMES), key=len, reverse=True)))
_HARD_PLAN = (("db-primary", "database"), ("stripe-api", "upstream"), ("payment-service", "memory"))
"""The hard task's three hypothesis sites, each asked the question that settles its hypothesis. A site
that points elsewhere points at the root, which answers the same question."""


class HeuristicAgent:
    """Follows the evidence from alerts to the root cause, then fixes it."""

    name = "heuristic"

    def reset(self, obs: dict, info: dict) -> None:
        """Forget the last incident; plan the hard task's checks if hypotheses are listed."""
        self.owners: dict[str, str] = {}
        self.investigated: set[str] = set()
        self.root: str | None = None
        self.fix: str | None = None
        self.hypothesis = ""
        self.leads: list[tuple[str, str]] = []
        self.escalated = False
        self.assigned = False
        self.mitigated = False
        self.plan = list(_HARD_PLAN) if obs["hypotheses"] else []
        self.asked: set[str] = set()
        self.aspect = ""  # what the last investigation asked: a lead it turns up is asked the same

    def act(self, obs: dict, info: dict) -> str:
        """Read the new observation, then investigate, escalate, assign, fix or resolve."""
        self._read(obs)
        if self.root is None:
            return self._investigate_next(obs)
        teams = list(obs["team_roster"]["teams"])
        owner = self.owners.get(self.root)
        busy = owner in teams and not obs["team_roster"]["available"][teams.index(owner)]
        if not self.escalated and (busy or int(obs["severity"]) == 0):
            self.escalated = True
            return "escalate"
        if owner and not self.assigned:
            self.assigned = True
            return f"assign to {owner}"
        if not self.mitigated:
            self.mitigated = True
            command = f"mitigate: {self.fix} {self.root}"
            return command + (f"\nroot cause: {self.hypothesis}" if obs["hypotheses"] and self.hypothesis else "")
        return "resolve"

    # ---- reading the observation ------------------------------------------------

    def _read(self, obs: dict) -> None:
        for line in obs["logs"]:
            match = _OWNER.search(line)
            if match:
                self.owners[match.group(1)] = match.group(2)
        found = _INVESTIGATED.match(obs["feedback"])
        if not found:
            return
        service, findings = found.groups()
        self.investigated.add(service)
        for finding in findings.split(" | "):
            lowered = finding.lower()
            if self.root is None:
                for pattern, fix, hypothesis in RUNBOOK:
                    if pattern.search(lowered):
                        self.root, self.fix, self.hypothesis = service, fix, hypothesis
                        break
            for named in _SERVICE.findall(finding):
                if named != service and named not in self.investigated and named in obs["affected_services"]:
                    self.leads.append((named, self.aspect))

    def _investigate_next(self, obs: dict) -> str:
        for queue in (self.leads, self.plan):
            while queue:
                service, aspect = queue.pop(0)
                command = f"investigate {service} {aspect}".strip()
                if command not in self.asked:
                    self.asked.add(command)
                    self.aspect = aspect
                    return command
        services = list(obs["affected_services"])
        signatures, alerting = set(), set()
        for line in obs["logs"]:
            message = line.split(" ", 2)[-1]
            named = _SERVICE.findall(message[:60])
            alerting.update(named)
            if any(pattern.search(message.lower()) for pattern, _, _ in RUNBOOK):
                signatures.update(named)
        error = obs["metrics"]["error_rate_pct"]
        candidates = [s for s in services if f"investigate {s}" not in self.asked]
        if not candidates:
            return "escalate"
        best = max(candidates, key=lambda s: (s in signatures, s in alerting, float(error[services.index(s)])))
        self.asked.add(f"investigate {best}")
        self.aspect = ""
        return f"investigate {best}"
