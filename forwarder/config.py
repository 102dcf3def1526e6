"""The configuration file: one YAML document, validated with pydantic.

Every section has a working default, so an empty file (or no file) is a valid configuration:
local files in, NDJSON on standard output, SQLite state.
"""

from __future__ import annotations

import ipaddress
import os
import re
import unicodedata
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ACCOUNT_ID = re.compile(r"^\d{12}$")
# Uncompressed; larger objects are dead-lettered by name. Peak memory grows by up to 16 times
# this for each object in work (README, "Memory"), which the shipped limits are sized for.
MAX_OBJECT_BYTES = 32 << 20
HOSTNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the key."""


class _Model(BaseModel):
    # A model's validator is built when it is first used, not when this module is imported (the
    # three dozen models took most of `forwarder enrich`'s start-up): a command that reads no
    # configuration file builds none. So the defaults below are made with model_construct(),
    # which validates nothing (they are valid as written; tests/unit/test_config.py checks that
    # they equal the validated ones).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class SecretRef(_Model):
    """Where a secret lives: an environment variable or a file. Never the secret itself."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _not_inline(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(
                "a secret is never written in the configuration: "
                "name where it lives, {env: VARIABLE} or {file: /path/to/file}"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self

    def get(self) -> str:
        """The secret's value, read now (so rotated files are picked up on restart).

        Refused (ConfigError naming where it lives, never the value): unset, empty, or holding a
        newline or another control character, which would break the header or login it goes
        into, and make the HTTP library print it in its error.
        """
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise ConfigError(f"{self._where()} is not set (or empty)")
        else:
            assert self.file is not None
            try:
                # One trailing newline is what `echo secret > file` and editors leave (a CRLF one
                # too: text mode reads it as "\n").
                value = self.file.read_text(encoding="utf-8").removesuffix("\n")
            except OSError as exc:
                raise ConfigError(f"{self._where()}: cannot read it: {exc.strerror or exc}") from None
            except UnicodeDecodeError:  # its message would quote a byte of the secret
                raise ConfigError(f"{self._where()} is not UTF-8 text") from None
            if not value:
                raise ConfigError(f"{self._where()} is empty")
        self._refuse_characters(value)
        return value

    def _where(self) -> str:
        return f"environment variable {self.env} (named for a secret)" if self.env else f"secret file {self.file}"

    def _refuse_characters(self, value: str) -> None:
        for char in value:
            if unicodedata.category(char) == "Cc":
                what = "a newline" if char in "\r\n" else f"a control character (U+{ord(char):04X})"
                fix = "set it to the secret alone" if self.env else "write the secret alone on one line (one newline may end it)"
                raise ConfigError(f"{self._where()} holds {what}: {fix}")

    def __repr__(self) -> str:  # the reference is harmless to show; the value never is
        return f"SecretRef(env={self.env!r})" if self.env else f"SecretRef(file={str(self.file)!r})"


class HeaderSecret(SecretRef):
    """A secret sent as an HTTP header value (a token, an API key), which only ASCII can be."""

    def _refuse_characters(self, value: str) -> None:
        super()._refuse_characters(value)
        if not value.isascii():
            raise ConfigError(f"{self._where()} holds a character outside ASCII, which an HTTP header cannot carry")


def http_url(value: str, example: str) -> str:
    """``value`` when it is an http(s) URL with a host (and, if any, a valid port), without a login."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0-65535
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL such as {example}")
    if parts.username is not None or parts.password is not None:  # the value is not repeated: it holds a secret
        raise ValueError("a URL here carries no user name or password: give them as the section's own settings")
    return value


def listen_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 in brackets) as (host, port); ValueError saying what is wrong."""
    host, _, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            host = ""
    elif not HOSTNAME.match(host):
        host = ""
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT with a port from 1 to 65535: "
                         "127.0.0.1:9108 for this machine, 0.0.0.0:9108 for every interface, [::1]:9108 for IPv6")
    return host, int(port)


def _account_list(values: list[str]) -> list[str]:
    for value in values:
        if not ACCOUNT_ID.match(value):
            raise ValueError(f"{value!r} is not a 12-digit AWS account id")
    return values


class OrganizationConfig(_Model):
    accounts: list[str] = []
    approved_partners: list[str] = []
    discover: bool = False
    role_arn: str | None = None  # assumed for discovery from a member account
    refresh_seconds: int = Field(3600, ge=60)

    _check_accounts = field_validator("accounts", "approved_partners", mode="before")(
        lambda values: _account_list([str(v) for v in values]) if isinstance(values, list) else values
    )


class SensitiveRole(_Model):
    pattern: str
    approved_principals: list[str] = []


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class BusinessHours(_Model):
    timezone: str = "UTC"
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = ["mon", "tue", "wed", "thu", "fri"]
    start: time = time(7, 0)
    end: time = time(20, 0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long to be a file
            raise ValueError(f"unknown time zone {value[:80]!r} (use an IANA name such as Europe/Berlin)") from None
        return value

    @field_validator("start", "end", mode="before")
    @classmethod
    def _clock(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):  # YAML reads 07:00 unquoted as sexagesimal minutes
            if not 0 <= value < 24 * 60:
                raise ValueError(f"{value} is not a time of day: write it as \"HH:MM\"")
            return time(value // 60, value % 60)
        return value


class HumanRoles(_Model):
    patterns: list[str] = []
    business_hours: BusinessHours = BusinessHours.model_construct()


class RolesConfig(_Model):
    sensitive: list[SensitiveRole] = []
    human: HumanRoles = HumanRoles.model_construct()


class ChainsConfig(_Model):
    # How long (in event time of the record's account) a call of a young, still-unknown
    # session waits for its parent before it ships unresolved.
    hold_back_seconds: int = Field(900, ge=0)
    # Kept beyond a session's expiration, for late delivery.
    session_margin_seconds: int = Field(3600, ge=0)
    # How long eventIDs are remembered to drop CloudTrail's duplicate deliveries.
    dedup_window_seconds: int = Field(3600, ge=0)
    # How far one account's trail may run behind the most advanced one before the sessions it
    # would need are forgotten (a backfill reading a day of every account at a time needs a day).
    account_lag_seconds: int = Field(86400, ge=0)


class FilesSource(_Model):
    type: Literal["files"] = "files"
    paths: list[Path] = []


def _endpoint_url(value: str | None) -> str | None:
    return None if value is None else http_url(value, "http://127.0.0.1:4566")


class SqsSource(_Model):
    type: Literal["sqs"]
    queue_url: str
    region: str | None = None
    endpoint_url: str | None = None
    wait_time_seconds: int = Field(20, ge=0, le=20)
    max_messages: int = Field(10, ge=1, le=10)
    # Extended by a heartbeat while a message is in work, so it need not cover the largest object.
    visibility_timeout_seconds: int = Field(300, ge=5)
    # After a sink failure the message comes back this much later (not after the full timeout).
    retry_delay_seconds: int = Field(30, ge=0, le=43200)
    concurrency: int = Field(8, ge=1)
    max_object_bytes: int = Field(MAX_OBJECT_BYTES, ge=1024)

    _check_urls = field_validator("endpoint_url")(_endpoint_url)

    @field_validator("queue_url")
    @classmethod
    def _queue_url(cls, value: str) -> str:
        return http_url(value, "https://sqs.eu-central-1.amazonaws.com/111111111111/cloudtrail-objects")


class S3Source(_Model):
    type: Literal["s3"]
    bucket: str
    prefix: str = ""
    accounts: list[str] | None = None
    regions: list[str] | None = None
    region: str | None = None
    endpoint_url: str | None = None
    poll_interval_seconds: int = Field(60, ge=1)
    # Without a checkpoint, polling starts this many days back (UTC dates); older days are backfill's.
    start_days_back: int = Field(1, ge=0)
    # Each poll lists again this far before the checkpoint's minute, for files that appear under
    # a key sorting before one already read (see sources/s3poll.py).
    lookback_minutes: int = Field(15, ge=0)
    concurrency: int = Field(8, ge=1)
    max_object_bytes: int = Field(MAX_OBJECT_BYTES, ge=1024)

    _check_urls = field_validator("endpoint_url")(_endpoint_url)


Source = Annotated[FilesSource | SqsSource | S3Source, Field(discriminator="type")]


class SqliteState(_Model):
    type: Literal["sqlite"] = "sqlite"
    path: Path = Path("forwarder-state.db")


class RedisSentinel(_Model):
    """Redis Sentinel: the forwarder asks these for the current primary of ``service_name``
    and follows a failover. The state's ``url`` then gives only the scheme (rediss:// for
    TLS) and the database number."""

    hosts: list[str] = Field(min_length=1)  # HOST:PORT of each Sentinel
    service_name: str = "mymaster"
    password: SecretRef | None = None  # the Sentinels' own, when they require one

    @field_validator("hosts")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for host in value:
            listen_address(host)
        return value


class RedisState(_Model):
    type: Literal["redis"]
    url: str = "redis://127.0.0.1:6379/0"
    password: SecretRef | None = None
    sentinel: RedisSentinel | None = None
    key_prefix: str = "forwarder:"
    # A held record claimed by a process that dies is claimable again after this lease.
    # Shorter than the queue's visibility timeout (checked): a child released to a process
    # that then died is claimable again by the time its parent's message comes back.
    claim_lease_seconds: int = Field(120, ge=1)

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        try:
            parts = urlsplit(value)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"{value!r} is not a Redis URL such as redis://redis.internal:6379/0")
        if parts.password is not None:  # the value is not repeated: it holds a secret
            raise ValueError("the URL carries a password: give it as 'password' ({env: VARIABLE} or {file: PATH})")
        return value


State = Annotated[SqliteState | RedisState, Field(discriminator="type")]


class NdjsonSink(_Model):
    type: Literal["ndjson"]
    path: str = "-"  # "-" is standard output


class BulkIndexSink(_Model):
    """What the Elasticsearch and OpenSearch sinks share: where, how and in what they index."""

    hosts: list[str] = []
    username: str | None = None
    password: SecretRef | None = None
    ca_file: Path | None = None
    verify_tls: bool = True
    # strftime-style date in braces, filled from the event's own time: cloudtrail-assumerole-2026.11.25
    index: str = "cloudtrail-assumerole-{%Y.%m.%d}"
    data_stream: str | None = None
    batch_max_docs: int = Field(1000, ge=1)
    batch_max_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    dead_letter_index: str | None = None
    max_retries: int = Field(8, ge=0)
    request_timeout_seconds: float = Field(30, gt=0)
    check_templates: bool = True
    # Names the component templates (<name>@settings, @cloudtrail, @ecs, @assumerole) and the
    # index templates (<name>, <name>-dead-letter) that `forwarder setup elasticsearch|opensearch` installs.
    template_name: str = "cloudtrail-assumerole"
    # "create": a resent eventID is answered 409 and counted as delivered (nothing rewritten);
    # "index": a resend overwrites, so a replay with better enrichment updates the document.
    op_type: Literal["create", "index"] = "create"
    retry_initial_seconds: float = Field(0.5, gt=0)
    retry_max_seconds: float = Field(30, gt=0)
    # Bulk requests in flight at once: the next batch is prepared while one is indexed.
    bulk_concurrency: int = Field(2, ge=1, le=16)
    # A bulk request gathers the documents of every object in work: it goes once it is full
    # (batch_max_docs, batch_max_bytes) or once no object has added to it for this long.
    batch_linger_seconds: float = Field(0.01, ge=0, le=5)

    @field_validator("hosts")
    @classmethod
    def _host_urls(cls, values: list[str]) -> list[str]:
        return [http_url(value, "https://search.example.com:9200") for value in values]

    @model_validator(mode="after")
    def _consistent(self) -> BulkIndexSink:
        if self.password is not None and self.username is None:
            raise ValueError("'password' needs 'username'")
        if self.data_stream and self.op_type != "create":
            raise ValueError("a data stream only takes op_type 'create'")
        return self


class ElasticsearchSink(BulkIndexSink):
    type: Literal["elasticsearch"]
    cloud_id: str | None = None
    api_key: HeaderSecret | None = None

    @model_validator(mode="after")
    def _where(self) -> ElasticsearchSink:
        if not self.hosts and not self.cloud_id:
            raise ValueError("give 'hosts' or 'cloud_id'")
        return self


class AwsSigV4(_Model):
    """Requests signed for Amazon OpenSearch Service (``es``) or OpenSearch Serverless (``aoss``),
    with the credentials of the boto3 chain (environment, profile, container or instance role)."""

    region: str | None = None  # default: the boto3 chain's (AWS_REGION, AWS_DEFAULT_REGION, the profile's)
    service: Literal["es", "aoss"] = "es"


class IsmPolicy(_Model):
    """The Index State Management policy `forwarder setup opensearch` installs for the sink's indices."""

    delete_after: str  # an index this old (from its creation) is deleted: "90d"
    # A data stream's write index rolls over at this age or size (dated indices roll over by their name).
    rollover_after: str | None = "1d"
    rollover_size: str | None = None

    @field_validator("delete_after", "rollover_after")
    @classmethod
    def _age(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[1-9][0-9]*[dhm]", value):
            raise ValueError(f"{value[:40]!r} is not an age such as 90d, 12h or 30m")
        return value

    @field_validator("rollover_size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[1-9][0-9]*(mb|gb|tb)", value):
            raise ValueError(f"{value[:40]!r} is not a size such as 50gb or 500mb")
        return value


class OpenSearchSink(BulkIndexSink):
    type: Literal["opensearch"]
    aws_sigv4: AwsSigV4 | None = None
    ism: IsmPolicy | None = None

    @model_validator(mode="after")
    def _where(self) -> OpenSearchSink:
        if not self.hosts:
            raise ValueError("give 'hosts'")
        if self.aws_sigv4 is not None and self.username is not None:
            raise ValueError("give either 'aws_sigv4' or 'username' (with 'password'), not both")
        return self


class SplunkHecSink(_Model):
    type: Literal["splunk_hec"]
    url: str
    token: HeaderSecret
    index: str | None = None
    sourcetype: str = "aws:cloudtrail"
    host: str | None = None
    gzip: bool = True
    ack: bool = False
    ack_timeout_seconds: float = Field(300, gt=0)
    ack_poll_seconds: float = Field(2, gt=0)
    batch_max_events: int = Field(500, ge=1)
    batch_max_bytes: int = Field(1024 * 1024, ge=1024)
    # As for Elasticsearch: requests gather every object in work; this many in flight at once,
    # each on its own connection and acknowledgement channel.
    batch_linger_seconds: float = Field(0.01, ge=0, le=5)
    send_concurrency: int = Field(2, ge=1, le=16)
    indexed_fields: list[str] = []
    ca_file: Path | None = None
    verify_tls: bool = True
    max_retries: int = Field(8, ge=0)
    # Backoff (with jitter) between retries of a busy or unreachable collector.
    retry_initial_seconds: float = Field(0.5, gt=0)
    retry_max_seconds: float = Field(30, gt=0)
    request_timeout_seconds: float = Field(30, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value, "https://splunk.example.com:8088")


SinkConfig = Annotated[NdjsonSink | ElasticsearchSink | OpenSearchSink | SplunkHecSink, Field(discriminator="type")]


class FailedAssumptions(_Model):
    # The Sigma burst rule alerts on more than `threshold` failures of one principal in the window.
    threshold: int = Field(5, ge=1)
    window_minutes: int = Field(10, ge=1, le=1440)


class SplunkAlerts(_Model):
    """How each rule becomes a scheduled Splunk alert (`sigma convert --format savedsearches`, the Splunk app)."""

    # Put in front of every converted query: where the forwarder's events are.
    search_prefix: str = "index=main sourcetype=aws:cloudtrail"
    name_prefix: str = "AssumeRole - "
    forms: list[Literal["enriched", "raw"]] = ["enriched"]
    cron_schedule: str = "*/10 * * * *"
    # Each run looks at what was indexed since the previous one (CloudTrail arrives minutes late,
    # so index time, not event time, decides), over events up to `lookback` old.
    index_window: str = "10m"
    lookback: str = "24h"


class SplunkSavedSearches(SplunkAlerts):
    """Where `forwarder sigma deploy splunk` creates the scheduled saved searches (splunkd REST)."""

    host: str
    port: int = Field(8089, ge=1, le=65535)
    scheme: Literal["https", "http"] = "https"
    username: str | None = None
    password: SecretRef | None = None
    token: HeaderSecret | None = None  # a Splunk authentication token (Bearer), instead of a login
    verify_tls: bool = True
    owner: str = "nobody"
    app: str = "search"

    @model_validator(mode="after")
    def _auth(self) -> SplunkSavedSearches:
        if (self.token is None) == (self.username is None):
            raise ValueError("give either 'token' or 'username' (with 'password')")
        if self.username is not None and self.password is None:
            raise ValueError("'username' needs 'password'")
        return self


class AssumeRootDetection(_Model):
    # Shell-style ARN patterns of who may call sts:AssumeRoot: the calling identity, or for a role
    # session its role. Empty: every AssumeRoot alerts.
    approved_principals: list[str] = []


class DetectionsConfig(_Model):
    """Settings of the Sigma rules that `forwarder sigma generate` writes."""

    max_chain_depth: int = Field(3, ge=1)
    failed_assumptions: FailedAssumptions = FailedAssumptions.model_construct()
    # The same kind of burst: MalformedPolicyDocument answers to one principal's trust-policy probes.
    trust_policy_enumeration: FailedAssumptions = FailedAssumptions.model_construct()
    assume_root: AssumeRootDetection = AssumeRootDetection.model_construct()
    splunk: SplunkSavedSearches | None = None


class KibanaContent(_Model):
    """What the Kibana content pack is built for (`forwarder package kibana`)."""

    # The data view's pattern and the detection rules' indices: where the forwarder's documents are.
    index_pattern: str = "cloudtrail-assumerole-*"
    forms: list[Literal["enriched", "raw"]] = ["enriched"]


class KibanaConfig(KibanaContent):
    """Where `forwarder setup kibana` imports the content pack (saved objects and detection rules)."""

    url: str
    api_key: HeaderSecret  # an Elasticsearch API key (the encoded form Kibana shows), sent as "ApiKey <key>"
    space: str | None = None  # a Kibana space id; none: the default space
    ca_file: Path | None = None
    verify_tls: bool = True
    request_timeout_seconds: float = Field(30, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value, "https://kibana.example.com:5601")

    @field_validator("space")
    @classmethod
    def _space_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z0-9_-]+", value):
            raise ValueError(f"{value[:80]!r} is not a Kibana space id (lower-case letters, digits, '_' and '-')")
        return value


class VolumeConfig(_Model):
    # A pair's count on a day is a spike when it reaches the largest of `floor`, `factor` times the
    # median of the `days` days before, and that median plus `spread` robust deviations (README,
    # "Behaviour baseline"). `sample`: eventID hashes kept per pair and day (exact counts below it).
    days: int = Field(28, ge=7, le=366)
    floor: int = Field(10, ge=1)
    factor: float = Field(3.0, ge=1)
    spread: float = Field(6.0, ge=0)
    sample: int = Field(32, ge=8, le=1024)


class BaselineConfig(_Model):
    """The behaviour baseline (forwarder/baseline): kept in the state store, in event time."""

    enabled: bool = True
    # Hours of the week and days are counted in this zone; default: roles.human.business_hours'.
    timezone: str | None = None
    # No flag is raised while the whole baseline, the subject or the pair is younger than this,
    # or was seen on fewer days (its observations, day by day): the document says learning: true.
    learning_days: int = Field(14, ge=0)
    min_days_seen: int = Field(5, ge=0)
    retention_days: int = Field(90, ge=1)  # what was not seen for this long is forgotten
    max_values: int = Field(200, ge=1)  # per list of a key (networks, countries, roles...): least recently seen go
    volume: VolumeConfig = VolumeConfig.model_construct()
    # A role assumption (or a call) whose flags an earlier event read later could change waits
    # the chains' hold-back window, then is judged again: the same flags whatever the order the
    # objects arrive in within it. false: flags on arrival, sooner, and order-dependent.
    hold_verdicts: bool = True
    # MaxMind / DB-IP / IPinfo .mmdb files (country, ASN): they replace the built-in countries.
    mmdb: list[Path] = []

    _check_zone = field_validator("timezone")(
        lambda value: None if value is None else BusinessHours._known_zone(value))


class DeadLetterConfig(_Model):
    # Records and objects that could not be delivered, one JSON line each with the reason.
    path: Path = Path("dead-letter")


class MetricsConfig(_Model):
    listen: str | None = "127.0.0.1:9108"
    # /healthz answers 503 when the source has not completed a receive or listing for this long.
    stale_after_seconds: int = Field(120, ge=1)

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            listen_address(value)
        return value


class LoggingConfig(_Model):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class Config(_Model):
    organization: OrganizationConfig = OrganizationConfig.model_construct()
    roles: RolesConfig = RolesConfig.model_construct()
    # Which records ship: role assumptions only, those plus every call made with a role
    # session's credentials (the default), or everything.
    select: Literal["assumptions", "sessions", "all"] = "sessions"
    chains: ChainsConfig = ChainsConfig.model_construct()
    detections: DetectionsConfig = DetectionsConfig.model_construct()
    baseline: BaselineConfig = BaselineConfig.model_construct()
    kibana: KibanaConfig | None = None
    source: Source = FilesSource.model_construct()
    state: State = SqliteState.model_construct()
    sinks: list[SinkConfig] = [NdjsonSink.model_construct(type="ndjson")]
    dead_letter: DeadLetterConfig = DeadLetterConfig.model_construct()
    metrics: MetricsConfig = MetricsConfig.model_construct()
    logging: LoggingConfig = LoggingConfig.model_construct()

    @model_validator(mode="before")
    @classmethod
    def _sqlite_unless_said(cls, data: Any) -> Any:
        # `state: {path: ...}` means the default store at another path.
        if isinstance(data, dict) and isinstance(data.get("state"), dict) and "type" not in data["state"]:
            return {**data, "state": {"type": "sqlite", **data["state"]}}
        return data

    @model_validator(mode="after")
    def _lease_fits_the_queue(self) -> Config:
        state, source = self.state, self.source
        if isinstance(state, RedisState) and isinstance(source, SqsSource) and (
                state.claim_lease_seconds >= source.visibility_timeout_seconds):
            raise ValueError(
                f"state.claim_lease_seconds ({state.claim_lease_seconds}) must be shorter than "
                f"source.visibility_timeout_seconds ({source.visibility_timeout_seconds}): held records claimed by a "
                "process that stopped must be free again before the message that releases them comes back")
        return self


def _kinds(union: Any) -> str:
    """The ``type`` values a discriminated section takes: "files, sqs or s3"."""
    names = [get_args(model.model_fields["type"].annotation)[0] for model in get_args(get_args(union)[0])]
    return ", ".join(names[:-1]) + " or " + names[-1]


KINDS = {"source": _kinds(Source), "state": _kinds(State), "sinks": _kinds(SinkConfig)}


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "union_tag_not_found":
        section = str(error["loc"][0]) if error["loc"] else ""
        message = f"'type' is missing: give one of {KINDS.get(section, 'the kinds the README lists')}"
    return f"{where or '(top level)'}: {message}"


def parse_config(data: Any, origin: str = "<config>") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the configuration must be a mapping of sections, not {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = "\n".join(f"  {origin}: {_describe(err)}" for err in exc.errors())
        raise ConfigError(f"{origin}: invalid configuration\n{lines}") from None


def load_config(path: str | Path | None) -> Config:
    """Read and validate a configuration file; ``None`` gives the defaults."""
    if path is None:
        return Config.model_construct()
    from forwarder.strict_yaml import YamlError, read

    path = Path(path)
    try:
        data = read(path)
    except YamlError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_config(data, str(path))
