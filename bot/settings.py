"""Herald's configuration: read from the environment (and an optional ``.env``), nowhere else."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import phonenumbers
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from persistence.timezones import is_timezone


class ConfigurationError(Exception):
    """A setting is missing or wrong; the message is one line naming the variable."""


class TelegramMode(StrEnum):
    POLLING = "polling"
    WEBHOOK = "webhook"


class SkebbyAuth(StrEnum):
    SESSION = "session"
    TOKEN = "token"  # noqa: S105 - the name of an auth method, not a secret


PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Money = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
# A bot token as @BotFather hands it out: the bot's numeric id, a colon, the secret part.
_TOKEN_SHAPE = re.compile(r"^[0-9]+:[A-Za-z0-9_-]+$")
PositiveInt = Annotated[int, Field(gt=0)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # --- core ---
    database_url: str = "sqlite+aiosqlite:///./data/herald.db"
    http_host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    log_level: str = "INFO"
    data_dir: Path = Path("./data")
    default_phone_region: str = Field(default="IT", min_length=2, max_length=2)
    default_language: str = Field(default="en", pattern="^(en|it)$")

    # --- telegram ---
    telegram_bot_token: SecretStr | None = None
    telegram_mode: TelegramMode = TelegramMode.POLLING
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: SecretStr | None = None
    telegram_webhook_path: str = "/telegram/webhook"
    # Comma-separated update types (e.g. "message,my_chat_member"); empty means every type.
    telegram_allowed_updates: str = ""
    telegram_drop_pending_updates: bool = False
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_api_file_url: str = "https://api.telegram.org/file/bot"
    # Unset: the sandbox's simulator takes a free port (DATA_DIR/sandbox.json tells herald chat).
    telegram_sandbox_port: int | None = Field(default=None, ge=0, le=65535)
    telegram_rate_per_second: PositiveFloat = 30.0
    telegram_paid_broadcast: bool = False
    telegram_paid_rate_per_second: PositiveFloat = Field(default=1000.0, le=1000)
    telegram_parse_mode: str | None = Field(default="HTML", pattern="^(HTML|MarkdownV2)$")
    conversation_timeout_seconds: PositiveInt = 900
    persistence_update_interval: PositiveFloat = 5.0
    support_contact: str = "your organisation's office"

    # --- email ---
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_ssl: bool = False
    smtp_timeout: PositiveFloat = 30.0
    email_from: str = "herald@localhost"

    # --- skebby ---
    skebby_username: str | None = None
    skebby_password: SecretStr | None = None
    skebby_auth: SkebbyAuth = SkebbyAuth.SESSION
    skebby_base_url: str = "https://api.skebby.it/API/v1.0/REST/"
    skebby_message_type: str = Field(default="GP", pattern="^(GP|TI|SI)$")
    skebby_sender: str | None = None
    skebby_max_fragments: int = Field(default=7, ge=1, le=20)
    skebby_truncate: bool = False
    skebby_batch_size: int = Field(default=1000, ge=1, le=10000)
    skebby_report_max_age_hours: PositiveFloat = 72.0
    # Received SMS are fetched this often; the blacklist is synchronised both ways this often.
    skebby_received_poll_seconds: PositiveFloat = 30.0
    skebby_blacklist_sync_seconds: PositiveFloat = 300.0
    # A received SMS whose first word is one of these opts the sender out of SMS.
    sms_stop_keywords: str = "STOP,ANNULLA,CANCELLA,BASTA"

    # --- unsubscribe links ---
    # Signs the unsubscribe links in emails (at least 32 characters). Unset: a random secret is
    # generated once and kept in DATA_DIR/unsubscribe_secret.
    unsubscribe_secret: SecretStr | None = None
    # Where people reach this service (the links in emails); unset: http://HTTP_HOST:PORT.
    public_base_url: str | None = None

    # --- costs per billable unit ---
    cost_telegram: Money = Decimal("0")
    cost_email: Money = Decimal("0")
    cost_sms: Money = Decimal("0.06")
    cost_storage: Money = Decimal("0")

    # --- delivery ---
    message_typology_required: bool = False
    dispatch_batch_size: int = Field(default=200, ge=1, le=5000)
    dispatch_max_attempts: int = Field(default=5, ge=1, le=50)
    dispatch_lease_seconds: PositiveFloat = 60.0
    dispatch_backoff_base_seconds: PositiveFloat = 2.0
    dispatch_backoff_max_seconds: PositiveFloat = 600.0
    dispatch_concurrency: int = Field(default=64, ge=1, le=2000)
    # A delivery still not through this long after it was first due fails with the last reason.
    delivery_deadline_hours: PositiveFloat = 24.0
    delivery_deadline_hours_telegram: PositiveFloat | None = None
    delivery_deadline_hours_email: PositiveFloat | None = None
    delivery_deadline_hours_sms: PositiveFloat | None = None
    delivery_deadline_hours_storage: PositiveFloat | None = None
    # Several processes on PostgreSQL: a leadership lasts this long unless renewed this often.
    leadership_ttl_seconds: float = Field(default=10.0, ge=3, le=300)
    leadership_renew_seconds: float = Field(default=3.0, gt=0, le=100)
    # A channel whose provider fails (unreachable, timeouts, 5xx) for most of the window pauses.
    breaker_window_seconds: PositiveFloat = 10.0
    breaker_min_failures: PositiveInt = 5
    breaker_open_seconds: PositiveFloat = 5.0
    breaker_max_open_seconds: PositiveFloat = 60.0

    # --- delivery-status webhooks ---
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Twelve tries, doubling from 15 s up to 30 min (±50 %): more than an hour in all.
    webhook_max_attempts: int = Field(default=12, ge=1, le=50)
    webhook_backoff_base_seconds: PositiveFloat = 15.0
    webhook_backoff_max_seconds: PositiveFloat = 1800.0
    webhook_concurrency_per_endpoint: int = Field(default=4, ge=1, le=100)
    webhook_concurrency: int = Field(default=64, ge=1, le=1000)
    webhook_max_response_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    webhook_event_retention_days: PositiveInt = 30

    # --- the web console ---
    # Encrypts the console's session cookies (at least 32 characters). Unset: a random key is
    # generated once and kept in DATA_DIR/secret_key.
    secret_key: SecretStr | None = None
    console_session_idle_minutes: PositiveFloat = 30.0
    console_session_max_hours: PositiveFloat = 12.0
    # Dates are shown in each user's time zone; this one until they choose (IANA name).
    console_timezone: str = "Europe/Rome"
    console_login_attempts: int = Field(default=5, ge=1, le=1000)

    # --- input limits ---
    max_attachment_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    max_request_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    persistence_retention_days: PositiveInt = 180

    @field_validator(
        "telegram_bot_token",
        "telegram_webhook_url",
        "telegram_webhook_secret",
        "smtp_host",
        "smtp_username",
        "smtp_password",
        "skebby_username",
        "skebby_password",
        "skebby_sender",
        "telegram_sandbox_port",
        "delivery_deadline_hours_telegram",
        "delivery_deadline_hours_email",
        "delivery_deadline_hours_sms",
        "delivery_deadline_hours_storage",
        "secret_key",
        "unsubscribe_secret",
        "public_base_url",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``NAME=`` (as in a copied .env.example) means not set, not an empty secret."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        scheme = value.split(":", 1)[0]
        if not scheme.startswith(("sqlite", "postgres")):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        try:
            url = make_url(value.replace("postgres://", "postgresql://", 1))
            port = url.port  # parsed lazily: a port that is not a number fails here
        except (ArgumentError, ValueError):
            raise ValueError("is not a valid database URL") from None
        if url.get_backend_name() == "postgresql" and not (url.database and url.host):
            raise ValueError("a PostgreSQL URL names a host and a database")
        if port is not None and not 0 < port < 65536:
            raise ValueError("the port must be between 1 and 65535")
        return value

    @field_validator(
        "telegram_api_base_url",
        "telegram_api_file_url",
        "telegram_webhook_url",
        "skebby_base_url",
        "public_base_url",
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parsed = urlsplit(value)
        try:
            parsed.port  # noqa: B018 - parsed lazily: a bad port raises here
        except ValueError:
            raise ValueError("has a port that is not a number") from None
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @field_validator("telegram_bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _TOKEN_SHAPE.match(value.get_secret_value()):
            # Never echo the value: it is a secret even when it is malformed.
            raise ValueError("is not a bot token (@BotFather gives one like 123456:ABC-def...)")
        return value

    @field_validator("secret_key", "unsubscribe_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("sms_stop_keywords")
    @classmethod
    def _keywords(cls, value: str) -> str:
        words = [word.strip() for word in value.split(",")]
        if not any(words) or any(not w or any(c.isspace() for c in w) for w in words):
            raise ValueError("must be comma-separated single words, e.g. STOP,ANNULLA")
        return value

    @field_validator("console_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        if not is_timezone(value):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Rome")
        return value

    @field_validator("default_phone_region")
    @classmethod
    def _upper_region(cls, value: str) -> str:
        region = value.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("must be a two-letter region code such as IT, DE or US")
        return region

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @model_validator(mode="after")
    def _webhook_needs_url_and_secret(self) -> Settings:
        if self.telegram_mode is TelegramMode.WEBHOOK and self.telegram_bot_token is not None:
            if not self.telegram_webhook_url:
                raise ValueError("TELEGRAM_WEBHOOK_URL: required when TELEGRAM_MODE=webhook")
            if self.telegram_webhook_secret is None:
                raise ValueError("TELEGRAM_WEBHOOK_SECRET: required when TELEGRAM_MODE=webhook")
        if self.leadership_renew_seconds + 2 >= self.leadership_ttl_seconds:
            raise ValueError(
                "LEADERSHIP_RENEW_SECONDS: must be at least 2 s shorter than LEADERSHIP_TTL_SECONDS"
            )
        if self.skebby_username and self.skebby_password is None:
            raise ValueError("SKEBBY_PASSWORD: required when SKEBBY_USERNAME is set")
        return self

    @property
    def allowed_updates(self) -> list[str] | None:
        """TELEGRAM_ALLOWED_UPDATES as a list; None lets the bot layer ask for every type."""
        kinds = [kind.strip() for kind in self.telegram_allowed_updates.split(",")]
        return [kind for kind in kinds if kind] or None

    def delivery_deadline(self, channel: str) -> timedelta:
        specific = getattr(self, f"delivery_deadline_hours_{channel}", None)
        return timedelta(hours=specific or self.delivery_deadline_hours)

    @property
    def stop_keywords(self) -> frozenset[str]:
        """SMS_STOP_KEYWORDS, upper-cased."""
        return frozenset(word.strip().upper() for word in self.sms_stop_keywords.split(","))

    @property
    def attachments_dir(self) -> Path:
        """Where broadcast attachments are stored (under DATA_DIR)."""
        return self.data_dir / "attachments"

    @property
    def sandbox(self) -> bool:
        """No bot token: the Telegram Bot API simulator runs inside the process."""
        return self.telegram_bot_token is None

    def secrets(self) -> list[str]:
        """Every secret value, for the redaction of logs and output."""
        values = [
            self.telegram_bot_token,
            self.telegram_webhook_secret,
            self.smtp_password,
            self.skebby_password,
            self.secret_key,
            self.unsubscribe_secret,
        ]
        found = [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]
        password = make_url(self.database_url.replace("postgres://", "postgresql://", 1)).password
        return [*found, str(password)] if password else found


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning validation errors into one line that names the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigurationError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    location = [str(part) for part in error.get("loc", ())]
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if location:
        return f"{location[0].upper()}: {message}"
    return message  # model-level checks already start with the variable name
