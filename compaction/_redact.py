"""Redaction of secrets (API keys, tokens, private keys, auth headers) from text we store.

Used on everything written to disk or handed to another agent: the originals cache,
stored handoffs and summaries. Each match is replaced by ``[REDACTED:<kind>]``.
"""

from __future__ import annotations

import re

__all__ = ["redact_secrets", "SECRET_PATTERNS"]

SECRET_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "private-key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
            re.DOTALL,
        ),
    ),
    ("authorization-header", re.compile(r"(?im)^(\s*(?:proxy-)?authorization\s*:\s*)(?!\[REDACTED)[^\r\n]+")),
    ("openai-key", re.compile(r"\bsk-(?:proj-|ant-(?:api\d\d-)?)?[A-Za-z0-9_\-]{20,}")),
    ("github-token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})")),
    ("aws-access-key", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b")),
    (
        "aws-secret-key",
        re.compile(r"(?i)(aws_?secret_?(?:access_?)?key\s*[=:]\s*[\"']?)(?!\[REDACTED)[A-Za-z0-9/+=]{40}"),
    ),
    ("slack-token", re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}")),
    ("bearer-token", re.compile(r"(?i)(\bbearer\s+)(?!\[REDACTED)[A-Za-z0-9\-._~+/]{16,}=*")),
]


def redact_secrets(text: str) -> str:
    """Return ``text`` with every recognised secret replaced by ``[REDACTED:<kind>]``."""
    if not text:
        return text
    for kind, pattern in SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m, k=kind: m.group(1) + f"[REDACTED:{k}]", text)
        else:
            text = pattern.sub(f"[REDACTED:{kind}]", text)
    return text
