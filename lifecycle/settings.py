"""The one settings object: environment variables prefixed ``LIFECYCLE_`` and an optional ``.env``.

No other module reads ``os.environ``. Call :func:`get_settings` (cached) or build
``Settings(...)`` explicitly in tests. An invalid value fails at start with
:class:`SettingsError`, whose message names the variable and what it expects.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from lifecycle.api_keys import ApiKey

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / ".data"

ENV_PREFIX = "LIFECYCLE_"

# The Stripe API version every request asks for, and the one to choose for the webhook
# endpoint in the Stripe dashboard. It is the version the pinned SDK (stripe 16.x) is
# generated for; lifecycle.billing.shapes also reads localstripe's 2017-08-15 objects.
STRIPE_API_VERSION = "2026-10-28.endive"

# Signs unsubscribe links in development; real providers refuse to start with it.
UNSAFE_UNSUBSCRIBE_SECRET = "dev-only-unsubscribe-secret"
# Signs the billing pages' links (card update, reactivation) in development only.
UNSAFE_LINK_SECRET = "dev-only-link-secret"
# Production-like settings (:func:`production_reasons`) need every secret at least this long.
MIN_SECRET_BYTES = 32
# Stripe's live secret and restricted keys; anything else is test mode (or localstripe).
LIVE_STRIPE_KEY_PREFIXES = ("sk_live_", "rk_live_")


class SettingsError(RuntimeError):
    """A setting has a value the engine cannot use; the message says which and why."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    # --- storage -------------------------------------------------------------------------
    database_url: str = Field(
        default=f"sqlite:///{DATA_DIR / 'lifecycle.db'}",
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host/db",
    )

    # --- Temporal ------------------------------------------------------------------------
    temporal_address: str = Field(default="127.0.0.1:7233", description="host:port of the frontend")
    temporal_namespace: str = "default"
    task_queue: str = "lifecycle"
    temporal_tls_cert: Path | None = Field(default=None, description="client certificate (PEM) for mTLS")
    temporal_tls_key: Path | None = Field(default=None, description="client private key (PEM) for mTLS")
    temporal_tls_ca: Path | None = Field(default=None, description="server CA (PEM), if not a public CA")
    temporal_api_key: str | None = Field(default=None, description="API key (Temporal Cloud)")
    temporal_ui_url: str = Field(default="http://127.0.0.1:8233", description="Web UI base URL for links")
    temporal_deadline_seconds: float = Field(
        default=2.0, gt=0, le=60, description="how long an API request waits for Temporal before it "
        "answers without it (an event stays queued and is delivered later)",
    )
    signal_relay_interval_seconds: float = Field(
        default=2.0, ge=0, description="how often the API delivers queued workflow events "
        "Temporal did not take at once (0: never; `lifecycle signals deliver` does it by hand)",
    )

    # --- HTTP API ------------------------------------------------------------------------
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated bearer keys accepted on /v1: "
        "name:key[:scope,...] (scopes events, usage, billing, ops, read; none: all) or a bare key "
        "(all scopes); see lifecycle/api_keys.py",
    )
    public_url: str = Field(default="http://127.0.0.1:8000", description="where the API is reached")
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="largest request body on /v1 routes (and any route "
        "without a limit of its own); larger: 413, refused while reading",
    )
    stripe_webhook_max_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="largest body POST /webhooks/stripe reads (413 past it)"
    )
    sendgrid_webhook_max_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024,
        description="largest body POST /webhooks/sendgrid reads (413 past it)",
    )

    # --- campaigns -----------------------------------------------------------------------
    templates_dir: Path = PROJECT_ROOT / "templates"
    policy_file: Path | None = Field(
        default=None, description="campaign policy TOML; default templates/campaigns.toml"
    )
    day_seconds: float = Field(
        default=86400.0, gt=0, description="length of a policy 'day' in seconds (demo compresses it)"
    )

    # --- usage metering ------------------------------------------------------------------
    usage_max_batch: int = Field(
        default=1000, ge=1, le=100_000, description="most events one POST /v1/usage may carry"
    )
    usage_clock_skew_seconds: float = Field(
        default=300.0, ge=0, description="how far an event's timestamp may lie in the future "
        "(or before the customer's signup) and still be accepted",
    )
    usage_resend_interval_seconds: float = Field(
        default=5.0, ge=0, description="how often the API re-sends threshold signals Temporal "
        "did not take (0: never; `lifecycle usage resend` does it by hand)",
    )

    # --- email ---------------------------------------------------------------------------
    email_provider: Literal["outbox", "smtp", "sendgrid"] = "outbox"
    email_sender: str = Field(default="Lifecycle Engine <hello@example.com>")
    email_postal_address: str = Field(
        default="Example Inc., 1 Main Street, Springfield", description="footer address (CAN-SPAM)"
    )
    email_company_name: str = Field(default="Example Inc.", description="name in the email footer")
    email_app_url: str = Field(
        default="https://app.example.com", description="absolute base URL of the product, for links"
    )
    email_reply_to: str | None = Field(default=None, description="Reply-To address, if any")
    # SMTP (LIFECYCLE_EMAIL_PROVIDER=smtp)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_tls: Literal["none", "starttls", "ssl"] = Field(
        default="none", description="none, starttls (port 587) or ssl (implicit TLS, port 465)"
    )
    smtp_timeout: float = Field(default=20.0, gt=0, description="seconds per SMTP conversation")
    smtp_ca_file: Path | None = Field(
        default=None, description="CA bundle (PEM) that signed the SMTP server's certificate, if private"
    )
    # SendGrid (LIFECYCLE_EMAIL_PROVIDER=sendgrid)
    sendgrid_api_key: str | None = Field(default=None, description="SendGrid API key (SG.…)")
    sendgrid_base_url: str = Field(
        default="https://api.sendgrid.com", description="SendGrid API host (tests point it at a local server)"
    )
    sendgrid_sandbox_mode: bool = Field(
        default=False, description="SendGrid validates but does not deliver (mail_settings.sandbox_mode)"
    )
    sendgrid_timeout: float = Field(default=15.0, gt=0, description="seconds per SendGrid request")
    sendgrid_webhook_public_key: str | None = Field(
        default=None,
        description="Event Webhook verification key (base64 ECDSA public key from SendGrid's Mail "
        "Settings); unset: POST /webhooks/sendgrid answers 503 (see the next setting)",
    )
    sendgrid_webhook_insecure_no_verify: bool = Field(
        default=False,
        description="local development only: accept Event Webhook posts without a signature when "
        "no public key is set (anyone could then suppress any address); refused with the smtp "
        "and sendgrid providers",
    )
    # compliance and etiquette
    unsubscribe_secret: str = Field(
        default=UNSAFE_UNSUBSCRIBE_SECRET,
        description="HMAC key that signs unsubscribe links; must be set for smtp/sendgrid",
    )
    link_secret: str = Field(
        default=UNSAFE_LINK_SECRET,
        description="HMAC key that signs the billing pages' expiring links (card update, "
        "reactivation); set a long random value in production",
    )
    link_ttl_days: int = Field(
        default=14, ge=1, le=90, description="how long a billing page link in an email stays valid"
    )
    email_quiet_hours_start: dt.time = Field(
        default=dt.time(18, 0),
        description="marketing email waits from this local time ... (start == end: no quiet hours)",
    )
    email_quiet_hours_end: dt.time = Field(
        default=dt.time(9, 0), description="... until this local time (customer's time zone)"
    )
    email_frequency_cap: int = Field(
        default=1, ge=0, description="marketing emails per customer per cap window (0: no cap)"
    )
    email_frequency_cap_hours: float = Field(
        default=24.0, gt=0, description="the cap window, in hours of policy time (see day_seconds)"
    )

    # --- Stripe --------------------------------------------------------------------------
    stripe_api_key: SecretStr = Field(
        default=SecretStr(""), description="secret key (sk_live_..., sk_test_...; any sk_... for localstripe)"
    )
    stripe_api_base: str | None = Field(
        default=None, description="unset for api.stripe.com; http://127.0.0.1:PORT for localstripe"
    )
    stripe_webhook_secret: SecretStr = Field(
        default=SecretStr(""), description="the endpoint's signing secret (whsec_...)"
    )
    stripe_api_version: str = Field(default=STRIPE_API_VERSION, description="pinned Stripe API version")
    stripe_webhook_tolerance_seconds: int = Field(
        default=300, gt=0, description="oldest Stripe-Signature timestamp accepted"
    )
    stripe_localstripe_compat: bool = Field(
        default=False,
        description="leave out parameters localstripe answers 500 to (proration_behavior, discounts)",
    )
    stripe_sweep_interval_seconds: float = Field(
        default=5.0, ge=0, description="how often the API processes Stripe events left received "
        "or failed (a crash after the 200, a bug since fixed); 0: never",
    )
    stripe_stuck_after_seconds: float = Field(
        default=30.0, gt=0, description="a Stripe event still unprocessed this long after receipt "
        "is stuck: swept, logged and counted",
    )
    localstripe_port: int = Field(default=8420, description="port of localstripe in `lifecycle dev`")
    stripe_price_tiers: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Stripe prices (or legacy plans) mapped to a tier when nothing else maps them: "
        "price_abc=business,price_def=enterprise",
    )
    # dunning (payment recovery): see templates/campaigns.toml [dunning] and docs/billing.md
    dunning_retry_mode: Literal["engine", "stripe"] = Field(
        default="engine",
        description="engine: the engine retries failed invoices on the policy's days (Stripe's "
        "Smart Retries off); stripe: Stripe retries and the engine never charges",
    )

    # --- webhooks to the product ---------------------------------------------------------
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, description="seconds one delivery to a product endpoint may take"
    )
    webhook_retry_initial_seconds: float = Field(
        default=5.0, gt=0, description="first wait before a failed delivery is retried (doubling)"
    )
    webhook_retry_max_seconds: float = Field(
        default=3600.0, gt=0, description="longest wait between two attempts of one delivery"
    )
    webhook_retry_window_seconds: float = Field(
        default=3 * 86400.0, gt=0, description="how long a delivery is retried (3 days); an endpoint "
        "that failed for that long is disabled",
    )
    webhook_allow_private: bool = Field(
        default=False, description="let product endpoints be loopback or private addresses (a product "
        "on the same private network); link-local, multicast, reserved and unspecified stay refused",
    )

    @field_validator("stripe_price_tiers", mode="before")
    @classmethod
    def _parse_price_tiers(cls, value: object) -> object:
        from lifecycle.contracts import catalog

        if value in (None, ""):
            return {}
        if isinstance(value, str):
            pairs: dict[str, str] = {}
            for part in value.split(","):
                if not part.strip():
                    continue
                price, sep, tier = part.partition("=")
                if not sep or not price.strip() or not tier.strip():
                    raise ValueError(f"expected PRICE_ID=TIER pairs separated by commas, got {part.strip()!r}")
                pairs[price.strip()] = tier.strip()
            value = pairs
        if isinstance(value, dict):
            for price, tier in value.items():
                if tier not in catalog.PLANS_BY_CODE:
                    raise ValueError(
                        f"price {price!r}: unknown tier {tier!r}; expected one of {', '.join(catalog.PLANS_BY_CODE)}"
                    )
        return value

    @field_validator("stripe_api_base")
    @classmethod
    def _check_stripe_base(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http(s):// URL, e.g. http://127.0.0.1:8420")
        return value.rstrip("/")

    @field_validator("sendgrid_webhook_public_key")
    @classmethod
    def _check_sendgrid_key(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from cryptography.hazmat.primitives.asymmetric import ec
        from sendgrid.helpers.eventwebhook import EventWebhook

        value = value.strip()
        try:
            key = EventWebhook(value).public_key  # the same parsing the webhook route uses
        except ValueError:
            key = None
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError(
                "expected the Event Webhook verification key from SendGrid's Mail Settings "
                "(a base64 ECDSA public key, without the PEM header lines)"
            )
        return value

    @field_validator("sendgrid_webhook_insecure_no_verify")
    @classmethod
    def _check_insecure_webhook(cls, value: bool, info: ValidationInfo) -> bool:
        provider = info.data.get("email_provider")
        if value and provider in ("smtp", "sendgrid"):
            raise ValueError(
                f"must not be true with LIFECYCLE_EMAIL_PROVIDER={provider}: unsigned Event "
                "Webhook posts could suppress any address (set "
                "LIFECYCLE_SENDGRID_WEBHOOK_PUBLIC_KEY instead)"
            )
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("api_keys")
    @classmethod
    def _check_keys(cls, value: list[str]) -> list[str]:
        from lifecycle.api_keys import parse_api_keys

        parse_api_keys(value)  # a bad entry stops the process at start, naming the variable
        return value

    @property
    def api_key_grants(self) -> list[ApiKey]:
        """The keys with their names and scopes."""
        from lifecycle.api_keys import parse_api_keys

        return parse_api_keys(self.api_keys)

    @field_validator("database_url")
    @classmethod
    def _check_db_url(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("expected a sqlite:/// or postgresql+psycopg:// URL")
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("temporal_address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("expected host:port, e.g. 127.0.0.1:7233")
        return value

    @property
    def policy_path(self) -> Path:
        return self.policy_file or (self.templates_dir / "campaigns.toml")

    def temporal_ui_link(self, workflow_id: str) -> str:
        return (
            f"{self.temporal_ui_url}/namespaces/{self.temporal_namespace}/workflows/"
            f"{workflow_id}"
        )


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning pydantic's error into one that names the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # overrides are field names, checked by pydantic
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            lines.append(f"{ENV_PREFIX}{field.upper()}: {err['msg']} (got {err.get('input')!r})")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None


def settings_or_exit() -> Settings:
    """For command-line entry points: the settings, or the error on stderr and exit status 2."""
    try:
        return load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def live_stripe_key(key: str) -> bool:
    return key.startswith(LIVE_STRIPE_KEY_PREFIXES)


def on_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1); anything else reaches beyond."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def real_stripe(settings: Settings) -> bool:
    """Against Stripe itself (no API base set, or api.stripe.com), not a stand-in such as
    localstripe."""
    base = settings.stripe_api_base
    return base is None or urlsplit(base).hostname == "api.stripe.com"


def production_reasons(settings: Settings, host: str | None = None) -> list[str]:
    """Why these settings are production-like; empty: development.

    The one rule for "is this development?": real money (a live Stripe key, or any key
    while ``stripe_api_base`` is unset, i.e. real Stripe), real people (an email provider
    other than the outbox), or reachable by others (the API bound to ``host`` beyond
    loopback, or a public URL beyond loopback)."""
    reasons: list[str] = []
    key = settings.stripe_api_key.get_secret_value()
    if live_stripe_key(key):
        reasons.append(f"{ENV_PREFIX}STRIPE_API_KEY is a live key")
    elif key and real_stripe(settings):
        reasons.append(f"{ENV_PREFIX}STRIPE_API_KEY is set and {ENV_PREFIX}STRIPE_API_BASE is not a stand-in "
                       "(real Stripe)")
    if settings.email_provider != "outbox":
        reasons.append(f"{ENV_PREFIX}EMAIL_PROVIDER={settings.email_provider} mails real people")
    if host is not None and not on_loopback(host):
        reasons.append(f"the API listens on {host}, beyond loopback")
    if not on_loopback(urlsplit(settings.public_url).hostname or ""):
        reasons.append(f"{ENV_PREFIX}PUBLIC_URL={settings.public_url} is beyond loopback")
    return reasons


def weak_secret(value: str, default: str | None = None) -> str | None:
    """Why ``value`` cannot sign or authenticate anything outside development (None: it can)."""
    if not value:
        return "is unset"
    if default is not None and value == default:
        return "is the public development default"
    if len(value.encode()) < MIN_SECRET_BYTES:
        return f"is {len(value.encode())} bytes; at least {MIN_SECRET_BYTES} are needed"
    return None


def unsafe_settings(settings: Settings) -> list[str]:
    """Each secret that is a default or too short, and each key without scopes, by its
    variable; what production-like settings may not have."""
    from lifecycle.api_keys import SCOPES

    problems = []
    for name, value, default in (
        ("LINK_SECRET", settings.link_secret, UNSAFE_LINK_SECRET),
        ("UNSUBSCRIBE_SECRET", settings.unsubscribe_secret, UNSAFE_UNSUBSCRIBE_SECRET),
        ("STRIPE_WEBHOOK_SECRET", settings.stripe_webhook_secret.get_secret_value(), None),
    ):
        why = weak_secret(value, default)
        if why:
            problems.append(f"{ENV_PREFIX}{name} {why}")
    for grant in settings.api_key_grants:
        if len(grant.key) < MIN_SECRET_BYTES:
            problems.append(f"{ENV_PREFIX}API_KEYS: key {grant.name!r} is {len(grant.key)} characters; "
                            f"bearer keys need at least {MIN_SECRET_BYTES}")
        if not grant.scoped:
            problems.append(f"{ENV_PREFIX}API_KEYS: key {grant.name!r} lists no scopes (it would get every "
                            f"one); write name:key:scope,... with scopes from {', '.join(SCOPES)}")
    if settings.sendgrid_webhook_insecure_no_verify:
        problems.append(f"{ENV_PREFIX}SENDGRID_WEBHOOK_INSECURE_NO_VERIFY is true (development only)")
    return problems


def refuse_unsafe_start(settings: Settings, *, host: str | None = None, who: str = "the engine") -> None:
    """Raise :class:`SettingsError` when the settings are production-like and a secret is a
    default or short (or a key has no scopes); the message names every such variable."""
    reasons = production_reasons(settings, host)
    problems = unsafe_settings(settings) if reasons else []
    if problems:
        raise SettingsError(
            f"{who} refuses to start: production-like settings ({'; '.join(reasons)}) need a long "
            f"random value for every secret (python -c 'import secrets; print(secrets.token_urlsafe(32))'):\n  "
            + "\n  ".join(problems)
        )


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
