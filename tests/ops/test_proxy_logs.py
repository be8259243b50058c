"""The TLS proxies in deploy/ never write a webhook's URL token to their access logs: the token
is the secret in the path (`/webhooks/alegra/{token}`), and a proxy logs every request's path."""

from __future__ import annotations

import re
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
WEBHOOK_PATH = "/webhooks/alegra/some-token"
_LOCATION = re.compile(r"location\s+(=\s*)?(\S+)\s*\{([^{}]*)\}")  # no nested blocks


def nginx_location(conf: str, path: str) -> str:
    """The body of the location block nginx picks for `path` (exact match, else the longest
    prefix; the configs use no regex locations)."""
    exact = [body for eq, prefix, body in _LOCATION.findall(conf) if eq and prefix == path]
    if exact:
        return exact[0]
    prefixes = [(prefix, body) for eq, prefix, body in _LOCATION.findall(conf)
                if not eq and path.startswith(prefix)]
    assert prefixes, f"no location serves {path}"
    return max(prefixes, key=lambda found: len(found[0]))[1]


def test_nginx_does_not_log_webhook_paths() -> None:
    conf = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    assert "access_log off;" in nginx_location(conf, WEBHOOK_PATH)
    assert "access_log off;" not in nginx_location(conf, "/v1/receipts")  # the rest is logged
    assert "proxy_pass http://127.0.0.1:8000;" in nginx_location(conf, WEBHOOK_PATH)


def test_caddy_writes_no_access_log() -> None:
    """Caddy logs requests only where a `log` directive asks; the Caddyfile has none."""
    caddy = (DEPLOY / "Caddyfile").read_text(encoding="utf-8")
    directives = [line.split()[0] for line in caddy.splitlines()
                  if line.strip() and not line.lstrip().startswith("#")]
    assert "log" not in directives
