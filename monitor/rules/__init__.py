"""Rules: pure functions Inventory -> Findings. Each module lists its rules in RULES.

`evaluate` runs them all. A rule that raises is a bug of ours, not of the user's stack: it
becomes a `rule-failed` warning naming the rule, and the other rules still run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from monitor.model import Finding, Inventory, Link, Severity
from monitor.rules import cudnn, driver, environment, gpu, libraries, tensorflow, windows

Rule = Callable[[Inventory], Iterable[Finding]]

RULE_MODULES = (driver, gpu, cudnn, libraries, tensorflow, environment, windows)

_LINK_ORDER = {link: index for index, link in enumerate(Link)}


def all_rules() -> tuple[Rule, ...]:
    return tuple(rule for module in RULE_MODULES for rule in module.RULES)


def evaluate(inventory: Inventory) -> tuple[Finding, ...]:
    """Every finding for `inventory`, most severe first, then in chain order."""
    findings: list[Finding] = []
    for rule in all_rules():
        try:
            findings.extend(rule(inventory))
        except Exception as exc:  # a rule bug must not hide the other findings
            findings.append(
                Finding(
                    id="rule-failed",
                    severity=Severity.WARNING,
                    link=Link.ENVIRONMENT,
                    title=f"Internal error in rule {rule.__name__}",
                    detail=f"{type(exc).__name__}: {exc}",
                    fix=(
                        "Report this at the tf-stack-monitor issue tracker with a snapshot "
                        "(tf-stack-monitor check --save-snapshot FILE --redact).",
                    ),
                    subject=rule.__name__,
                )
            )
    return sort_findings(findings)


def sort_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """Most severe first, then in chain order."""
    return tuple(
        sorted(findings, key=lambda f: (-f.severity.rank, _LINK_ORDER[f.link], f.id, f.subject))
    )
