"""The local stack's own secrets: random, made once into ``.data/dev_secrets.json`` (0600).

``lifecycle dev`` never signs a link with the public development defaults of
lifecycle/settings.py: it makes a link secret, an unsubscribe secret, the localstripe
webhook's signing secret and an API key on its first start and reads them back on every
later one (links in emails already sent keep working). A secret configured in the
environment or ``.env`` wins over the file's.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from lifecycle.settings import DATA_DIR, UNSAFE_LINK_SECRET, UNSAFE_UNSUBSCRIBE_SECRET, Settings

FILE_NAME = "dev_secrets.json"
LEGACY_KEY_FILE = "dev_api_key"  # the API key before dev_secrets.json, kept if present


@dataclass(frozen=True)
class DevSecrets:
    link_secret: str
    unsubscribe_secret: str
    stripe_webhook_secret: str
    api_key: str


def _new(data_dir: Path) -> DevSecrets:
    legacy = data_dir / LEGACY_KEY_FILE
    key = legacy.read_text().strip() if legacy.exists() else ""
    return DevSecrets(
        link_secret=secrets.token_urlsafe(32),
        unsubscribe_secret=secrets.token_urlsafe(32),
        stripe_webhook_secret="whsec_" + secrets.token_urlsafe(32),
        api_key=key or "dev_" + secrets.token_urlsafe(32),
    )


def load_dev_secrets(data_dir: Path = DATA_DIR) -> DevSecrets:
    """The secrets in ``data_dir/dev_secrets.json``; made (mode 0600) if missing or incomplete."""
    path = data_dir / FILE_NAME
    try:
        stored = json.loads(path.read_text())
        return DevSecrets(**{f.name: str(stored[f.name]) for f in fields(DevSecrets)})
    except (OSError, ValueError, KeyError, TypeError):
        pass
    made = _new(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    # created 0600 (never readable by others, not even for a moment), replaced whole
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(asdict(made), out, indent=2)
        out.write("\n")
    tmp.replace(path)
    return made


def dev_environment(settings: Settings, made: DevSecrets) -> dict[str, str]:
    """The variables the stack's processes get: the made secrets where none is configured,
    and private webhook endpoints allowed (a product on this machine)."""
    env = {"LIFECYCLE_WEBHOOK_ALLOW_PRIVATE": "true"}
    if settings.link_secret == UNSAFE_LINK_SECRET:
        env["LIFECYCLE_LINK_SECRET"] = made.link_secret
    if settings.unsubscribe_secret == UNSAFE_UNSUBSCRIBE_SECRET:
        env["LIFECYCLE_UNSUBSCRIBE_SECRET"] = made.unsubscribe_secret
    if not settings.stripe_webhook_secret.get_secret_value():
        env["LIFECYCLE_STRIPE_WEBHOOK_SECRET"] = made.stripe_webhook_secret
    return env
