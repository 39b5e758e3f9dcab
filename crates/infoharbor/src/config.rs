//! Configuration: file < `INFOHARBOR_*` environment < command-line flags. Every option is
//! documented here and in docs/configuration.md.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;

/// Options of `infoharbor serve`. Each may also come from the environment or the config file.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// TOML configuration file (lowest precedence).
    #[arg(long, env = "INFOHARBOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:1026].
    #[arg(long, env = "INFOHARBOR_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Folder of the embedded store [default: ./data].
    #[arg(long, env = "INFOHARBOR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The name this broker gives itself in `Via` on the requests it forwards to context
    /// sources, and recognises to stop a request that comes back round: a pseudonym or
    /// `host:port` [default: the listen address, or the host name and port when listening
    /// on every address].
    #[arg(long, env = "INFOHARBOR_BROKER_ID")]
    pub broker_id: Option<String>,
    /// Largest request body in bytes [default: 8388608].
    #[arg(long, env = "INFOHARBOR_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// PEM certificate chain for HTTPS; with tls_key, the API is served over TLS only
    /// [default: none, plain HTTP].
    #[arg(long, env = "INFOHARBOR_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of tls_cert [default: none].
    #[arg(long, env = "INFOHARBOR_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Connections open at once; beyond it idle connections are closed to make room, or the
    /// newcomer is answered 503 [default: 0, from the open-files limit].
    #[arg(long, env = "INFOHARBOR_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Time a client has to finish a request head once it began it, in milliseconds
    /// [default: 10000].
    #[arg(long, env = "INFOHARBOR_HEADER_TIMEOUT_MS")]
    pub header_timeout_ms: Option<u64>,
    /// Time a client has to send a request body, in milliseconds [default: 30000].
    #[arg(long, env = "INFOHARBOR_BODY_TIMEOUT_MS")]
    pub body_timeout_ms: Option<u64>,
    /// Time a kept-alive connection may stay idle, in milliseconds [default: 60000].
    #[arg(long, env = "INFOHARBOR_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u64>,
    /// Time requests in flight get to finish after SIGTERM, in milliseconds [default: 10000].
    #[arg(long, env = "INFOHARBOR_SHUTDOWN_DEADLINE_MS")]
    pub shutdown_deadline_ms: Option<u64>,
    /// Reads of single resources in flight; more are answered 503 [default: 1024].
    #[arg(long, env = "INFOHARBOR_MAX_INFLIGHT_READS")]
    pub max_inflight_reads: Option<usize>,
    /// Writes in flight; more are answered 503 [default: 1024].
    #[arg(long, env = "INFOHARBOR_MAX_INFLIGHT_WRITES")]
    pub max_inflight_writes: Option<usize>,
    /// Queries (entity, temporal, discovery details) in flight; more are answered 503
    /// [default: 64 per CPU core].
    #[arg(long, env = "INFOHARBOR_MAX_INFLIGHT_QUERIES")]
    pub max_inflight_queries: Option<usize>,
    /// Threads running the CPU-heavy part of queries [default: one per CPU core].
    #[arg(long, env = "INFOHARBOR_QUERY_THREADS")]
    pub query_threads: Option<usize>,
    /// Time budget of one query, waiting included, in milliseconds [default: 10000].
    #[arg(long, env = "INFOHARBOR_QUERY_BUDGET_MS")]
    pub query_budget_ms: Option<u64>,
    /// How long a request over its class's bound is held before its 503, in milliseconds
    /// [default: 1000; 0 answers at once].
    #[arg(long, env = "INFOHARBOR_SHED_DELAY_MS")]
    pub shed_delay_ms: Option<u64>,
    /// 503s a second at most while many shed requests are held: beyond, each is held longer
    /// (up to shed_delay_max_ms) [default: 1000].
    #[arg(long, env = "INFOHARBOR_SHED_RATE")]
    pub shed_rate: Option<u32>,
    /// The longest a shed request is held, in milliseconds [default: 10000].
    #[arg(long, env = "INFOHARBOR_SHED_DELAY_MAX_MS")]
    pub shed_delay_max_ms: Option<u64>,
    /// Requests per second each authenticated identity may sustain; more get 429
    /// [default: 0, no limit].
    #[arg(long, env = "INFOHARBOR_RATE_PER_IDENTITY")]
    pub rate_per_identity: Option<f64>,
    /// Requests an identity may send at once after being idle [default: twice the rate].
    #[arg(long, env = "INFOHARBOR_RATE_BURST")]
    pub rate_burst: Option<f64>,
    /// Most entities in one batch operation [default: 1000].
    #[arg(long, env = "INFOHARBOR_MAX_BATCH")]
    pub max_batch: Option<usize>,
    /// Largest page (`limit`) of a query [default: 1000].
    #[arg(long, env = "INFOHARBOR_MAX_PAGE")]
    pub max_page: Option<usize>,
    /// Page size when a query gives no `limit` [default: 20].
    #[arg(long, env = "INFOHARBOR_DEFAULT_PAGE")]
    pub default_page: Option<usize>,
    /// Most instances of one attribute a temporal query returns [default: 1000].
    #[arg(long, env = "INFOHARBOR_MAX_TEMPORAL_INSTANCES")]
    pub max_temporal_instances: Option<usize>,
    /// Days of attribute history kept; older instances are dropped in the background
    /// [default: 0, keep everything].
    #[arg(long, env = "INFOHARBOR_HISTORY_RETENTION_DAYS")]
    pub history_retention_days: Option<u64>,
    /// Days of audit log kept; older entries are dropped in the background [default: 90;
    /// 0 keeps everything].
    #[arg(long, env = "INFOHARBOR_AUDIT_RETENTION_DAYS")]
    pub audit_retention_days: Option<u64>,
    /// Whether changes of entities are recorded as temporal history [default: true].
    #[arg(long, env = "INFOHARBOR_HISTORY")]
    pub history: Option<bool>,
    /// How long recorded changes gather before they are written to the history together, in
    /// milliseconds; a temporal request writes them at once [default: 2000].
    #[arg(long, env = "INFOHARBOR_HISTORY_FLUSH_MS")]
    pub history_flush_ms: Option<u64>,
    /// Timeout for fetching a remote @context, in milliseconds [default: 5000].
    #[arg(long, env = "INFOHARBOR_CONTEXT_TIMEOUT_MS")]
    pub context_timeout_ms: Option<u64>,
    /// How often expired transient entities and attributes are deleted, in milliseconds
    /// [default: 1000].
    #[arg(long, env = "INFOHARBOR_EXPIRY_SWEEP_MS")]
    pub expiry_sweep_ms: Option<u64>,
    /// Attempts to deliver a notification before it is dead-lettered [default: 10].
    #[arg(long, env = "INFOHARBOR_NOTIFY_MAX_ATTEMPTS")]
    pub notify_max_attempts: Option<u32>,
    /// Wait after a first failed notification attempt, doubled after each further one, in
    /// milliseconds [default: 1000].
    #[arg(long, env = "INFOHARBOR_NOTIFY_RETRY_MS")]
    pub notify_retry_ms: Option<u64>,
    /// Longest wait between two attempts, in milliseconds [default: 300000].
    #[arg(long, env = "INFOHARBOR_NOTIFY_RETRY_MAX_MS")]
    pub notify_retry_max_ms: Option<u64>,
    /// Timeout of one notification attempt when the endpoint names none, in milliseconds
    /// [default: 10000].
    #[arg(long, env = "INFOHARBOR_NOTIFY_TIMEOUT_MS")]
    pub notify_timeout_ms: Option<u64>,
    /// Notifications in flight to one endpoint (host and port) at most [default: 8].
    #[arg(long, env = "INFOHARBOR_NOTIFY_PER_ENDPOINT")]
    pub notify_per_endpoint: Option<usize>,
    /// Log filter, e.g. `info` or `harbor_http=debug` [default: info].
    #[arg(long, env = "INFOHARBOR_LOG")]
    pub log: Option<String>,
    /// Log line format: text (for people) or json (one object a line, for collectors)
    /// [default: text].
    #[arg(long, env = "INFOHARBOR_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Whether the broker counts requests, commits and notifications and serves them at
    /// /metrics [default: true].
    #[arg(long, env = "INFOHARBOR_METRICS")]
    pub metrics: Option<bool>,
    /// Tenants that get series of their own in the per-tenant metrics, the largest by
    /// entities; the others are summed as `(other)` [default: 20].
    #[arg(long, env = "INFOHARBOR_METRICS_TENANTS")]
    pub metrics_tenants: Option<usize>,
    /// Base URL of an OpenTelemetry collector (OTLP over HTTP) to export traces to, e.g.
    /// `http://127.0.0.1:4318`; spans are POSTed to `{endpoint}/v1/traces`. Needs a binary
    /// built with the `otlp` feature [default: none, no export].
    #[arg(long, env = "INFOHARBOR_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported traces [default: infoharbor].
    #[arg(long, env = "INFOHARBOR_OTLP_SERVICE_NAME")]
    pub otlp_service_name: Option<String>,
    /// Share of new traces exported, from 0.0 to 1.0; a request that continues a caller's
    /// trace follows the caller's decision instead [default: 1.0].
    #[arg(long, env = "INFOHARBOR_OTLP_SAMPLE_RATIO")]
    pub otlp_sample_ratio: Option<f64>,
    /// Folder of @context documents to use instead of fetching them, listed in its
    /// `contexts.toml` [default: none].
    #[arg(long, env = "INFOHARBOR_CONTEXT_DIR")]
    pub context_dir: Option<PathBuf>,
    /// Destinations the egress wall lets through although they are loopback, private,
    /// link-local or otherwise special: `host:port`, `host`, an IP address or a CIDR block,
    /// comma-separated [default: none; public addresses are always allowed].
    #[arg(long, env = "INFOHARBOR_EGRESS_ALLOW", value_delimiter = ',')]
    pub egress_allow: Option<Vec<String>>,
    /// Lets the egress wall through to private addresses (RFC 1918, unique local, 100.64/10),
    /// for a broker inside a closed city network; loopback and link-local stay refused
    /// [default: false].
    #[arg(long, env = "INFOHARBOR_EGRESS_ALLOW_PRIVATE")]
    pub egress_allow_private: Option<bool>,
    /// How requests are authenticated: none, jwt, apikey or jwt+apikey [default: none, which
    /// is accepted only on a loopback listen address].
    #[arg(long, env = "INFOHARBOR_AUTH")]
    pub auth: Option<String>,
    /// Serve without authentication on a non-loopback address (never in production).
    #[arg(long, env = "INFOHARBOR_INSECURE")]
    pub insecure: bool,
    /// Issuer of accepted bearer tokens; discovery starts at its
    /// /.well-known/openid-configuration [required with auth = jwt].
    #[arg(long, env = "INFOHARBOR_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// Audience every accepted token must name [required with auth = jwt].
    #[arg(long, env = "INFOHARBOR_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// Dot path of the token claim holding grants such as "reader@sg-lta" [default: roles].
    #[arg(long, env = "INFOHARBOR_OIDC_ROLES_CLAIM")]
    pub oidc_roles_claim: Option<String>,
    /// Dot path of the token claim naming the partner its holder acts for, which
    /// `partner:` access policies match; "" for none [default: partner].
    #[arg(long, env = "INFOHARBOR_OIDC_PARTNER_CLAIM")]
    pub oidc_partner_claim: Option<String>,
    /// Tolerance for exp and nbf, in seconds [default: 30].
    #[arg(long, env = "INFOHARBOR_OIDC_CLOCK_SKEW_S")]
    pub oidc_clock_skew_s: Option<u64>,
    /// JWKS URL, instead of the one discovery names [default: discovery].
    #[arg(long, env = "INFOHARBOR_OIDC_JWKS_URL")]
    pub oidc_jwks_url: Option<String>,
    /// Memory for remote @contexts, their fetched documents and compiled forms together, in
    /// bytes; the least recently used go first, preloaded ones stay [default: 67108864].
    #[arg(long, env = "INFOHARBOR_CONTEXT_CACHE_BYTES")]
    pub context_cache_bytes: Option<usize>,
    /// Largest remote @context document fetched, in bytes [default: 1048576].
    #[arg(long, env = "INFOHARBOR_CONTEXT_MAX_BYTES")]
    pub context_max_bytes: Option<usize>,
    /// Largest @context a client may store (POST /jsonldContexts, or a subscription's inline
    /// @context), in bytes of compact JSON [default: 1048576].
    #[arg(long, env = "INFOHARBOR_HOSTED_CONTEXT_MAX_BYTES")]
    pub hosted_context_max_bytes: Option<usize>,
    /// Most hosted @contexts of one tenant; 0 is unlimited [default: 100].
    #[arg(long, env = "INFOHARBOR_HOSTED_CONTEXTS_MAX")]
    pub hosted_contexts_max: Option<usize>,
    /// Bytes of stored @contexts (hosted and implicitly created) of all tenants together; 0 is
    /// unlimited [default: 16777216].
    #[arg(long, env = "INFOHARBOR_HOSTED_CONTEXTS_BYTES")]
    pub hosted_contexts_bytes: Option<usize>,
    /// Most entities of one tenant; 0 is unlimited [default: 0].
    #[arg(long, env = "INFOHARBOR_QUOTA_ENTITIES")]
    pub quota_entities: Option<usize>,
    /// Most subscriptions of one tenant, and apart from them most subscriptions to
    /// registrations; 0 is unlimited [default: 1000].
    #[arg(long, env = "INFOHARBOR_QUOTA_SUBSCRIPTIONS")]
    pub quota_subscriptions: Option<usize>,
    /// Most context source registrations of one tenant; 0 is unlimited [default: 1000].
    #[arg(long, env = "INFOHARBOR_QUOTA_REGISTRATIONS")]
    pub quota_registrations: Option<usize>,
    /// Most tenants in all, the default one included; 0 is unlimited [default: 1000].
    #[arg(long, env = "INFOHARBOR_MAX_TENANTS")]
    pub max_tenants: Option<usize>,
    /// Most tenants one authenticated identity (not an operator) may bring into existence by
    /// writing into them; 0 is unlimited [default: 20].
    #[arg(long, env = "INFOHARBOR_TENANTS_PER_IDENTITY")]
    pub tenants_per_identity: Option<usize>,
}

/// The same options as read from the TOML file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    broker_id: Option<String>,
    max_body_bytes: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_connections: Option<usize>,
    header_timeout_ms: Option<u64>,
    body_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    shutdown_deadline_ms: Option<u64>,
    max_inflight_reads: Option<usize>,
    max_inflight_writes: Option<usize>,
    max_inflight_queries: Option<usize>,
    query_threads: Option<usize>,
    query_budget_ms: Option<u64>,
    shed_delay_ms: Option<u64>,
    shed_rate: Option<u32>,
    shed_delay_max_ms: Option<u64>,
    rate_per_identity: Option<f64>,
    rate_burst: Option<f64>,
    max_batch: Option<usize>,
    max_page: Option<usize>,
    default_page: Option<usize>,
    max_temporal_instances: Option<usize>,
    history_retention_days: Option<u64>,
    audit_retention_days: Option<u64>,
    history: Option<bool>,
    history_flush_ms: Option<u64>,
    context_timeout_ms: Option<u64>,
    expiry_sweep_ms: Option<u64>,
    notify_max_attempts: Option<u32>,
    notify_retry_ms: Option<u64>,
    notify_retry_max_ms: Option<u64>,
    notify_timeout_ms: Option<u64>,
    notify_per_endpoint: Option<usize>,
    log: Option<String>,
    log_format: Option<String>,
    metrics: Option<bool>,
    metrics_tenants: Option<usize>,
    otlp_endpoint: Option<String>,
    otlp_service_name: Option<String>,
    otlp_sample_ratio: Option<f64>,
    context_dir: Option<PathBuf>,
    egress_allow: Option<Vec<String>>,
    egress_allow_private: Option<bool>,
    auth: Option<String>,
    insecure: Option<bool>,
    oidc_issuer: Option<String>,
    oidc_audience: Option<String>,
    oidc_roles_claim: Option<String>,
    oidc_partner_claim: Option<String>,
    oidc_clock_skew_s: Option<u64>,
    oidc_jwks_url: Option<String>,
    context_cache_bytes: Option<usize>,
    context_max_bytes: Option<usize>,
    hosted_context_max_bytes: Option<usize>,
    hosted_contexts_max: Option<usize>,
    hosted_contexts_bytes: Option<usize>,
    quota_entities: Option<usize>,
    quota_subscriptions: Option<usize>,
    quota_registrations: Option<usize>,
    max_tenants: Option<usize>,
    tenants_per_identity: Option<usize>,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// This broker's name in `Via` (forwarding and loop detection).
    pub broker_id: String,
    pub max_body_bytes: usize,
    /// Certificate chain and key of HTTPS, when it is on.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// 0: derived from the open-files limit at start.
    pub max_connections: usize,
    pub header_timeout_ms: u64,
    pub body_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub shutdown_deadline_ms: u64,
    pub max_inflight_reads: usize,
    pub max_inflight_writes: usize,
    pub max_inflight_queries: usize,
    pub query_threads: usize,
    pub query_budget_ms: u64,
    pub shed_delay_ms: u64,
    pub shed_rate: u32,
    pub shed_delay_max_ms: u64,
    pub rate_per_identity: f64,
    pub rate_burst: Option<f64>,
    pub max_batch: usize,
    pub max_page: usize,
    pub default_page: usize,
    pub max_temporal_instances: usize,
    pub history_retention_days: u64,
    pub audit_retention_days: u64,
    pub history: bool,
    pub history_flush_ms: u64,
    pub context_timeout_ms: u64,
    pub expiry_sweep_ms: u64,
    pub notify_max_attempts: u32,
    pub notify_retry_ms: u64,
    pub notify_retry_max_ms: u64,
    pub notify_timeout_ms: u64,
    pub notify_per_endpoint: usize,
    pub log: String,
    pub log_format: LogFormat,
    pub metrics: bool,
    pub metrics_tenants: usize,
    /// Where and how traces are exported, when `otlp_endpoint` is set.
    pub otlp: Option<Otlp>,
    pub context_dir: Option<PathBuf>,
    pub egress: harbor_outbound::EgressPolicy,
    pub auth: harbor_auth::AuthMode,
    /// The token check, with `auth` = jwt or jwt+apikey.
    pub oidc: Option<harbor_auth::OidcConfig>,
    pub context_cache_bytes: usize,
    pub context_max_bytes: usize,
    /// Limits on the @contexts clients store.
    pub stored_contexts: harbor_jsonld::registry::StoredLimits,
    pub quotas: harbor_engine::Quotas,
}

/// Trace export over OTLP/HTTP (`otlp_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct Otlp {
    /// Where spans are POSTed: the endpoint with `/v1/traces`.
    pub traces_url: String,
    pub service_name: String,
    /// Share of new traces sampled, 0.0 to 1.0.
    pub sample_ratio: f64,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: timestamp, level, fields (with the message), span.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => anyhow::bail!("log_format must be text or json, got {other:?}"),
        }
    }
}

/// The trace export the `otlp_*` options ask for; `None` without an endpoint.
fn otlp(
    endpoint: Option<String>,
    service_name: Option<String>,
    sample_ratio: Option<f64>,
) -> anyhow::Result<Option<Otlp>> {
    let Some(endpoint) = endpoint else {
        return Ok(None);
    };
    anyhow::ensure!(
        cfg!(feature = "otlp"),
        "otlp_endpoint is set, but this infoharbor binary was built without the `otlp` \
         feature and cannot export traces: build it with `cargo build --release --features \
         otlp`, or remove otlp_endpoint"
    );
    let traces_url =
        harbor_outbound::collector::traces_url(&endpoint).map_err(anyhow::Error::msg)?;
    let service_name = service_name.unwrap_or_else(|| "infoharbor".into());
    anyhow::ensure!(
        !service_name.trim().is_empty(),
        "otlp_service_name must not be empty"
    );
    let sample_ratio = sample_ratio.unwrap_or(1.0);
    anyhow::ensure!(
        (0.0..=1.0).contains(&sample_ratio),
        "otlp_sample_ratio must be from 0.0 to 1.0, got {sample_ratio}"
    );
    Ok(Some(Otlp {
        traces_url,
        service_name,
        sample_ratio,
    }))
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl ServeArgs {
    /// Combines flags and environment (already merged by clap) with the file.
    pub fn resolve(self) -> anyhow::Result<Config> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:1026".parse().expect("valid default"));
        let broker_id = match self.broker_id.or(file.broker_id) {
            Some(id) => check_broker_id(&id).map_err(anyhow::Error::msg)?,
            None => default_broker_id(listen, host_name().as_deref()),
        };
        let cfg = Config {
            listen,
            broker_id,
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./data")),
            max_body_bytes: self
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(8 * 1024 * 1024),
            tls: match (
                self.tls_cert.or(file.tls_cert),
                self.tls_key.or(file.tls_key),
            ) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => anyhow::bail!("tls_cert and tls_key go together: set both or neither"),
            },
            max_connections: self.max_connections.or(file.max_connections).unwrap_or(0),
            header_timeout_ms: self
                .header_timeout_ms
                .or(file.header_timeout_ms)
                .unwrap_or(10_000),
            body_timeout_ms: self
                .body_timeout_ms
                .or(file.body_timeout_ms)
                .unwrap_or(30_000),
            idle_timeout_ms: self
                .idle_timeout_ms
                .or(file.idle_timeout_ms)
                .unwrap_or(60_000),
            shutdown_deadline_ms: self
                .shutdown_deadline_ms
                .or(file.shutdown_deadline_ms)
                .unwrap_or(10_000),
            max_inflight_reads: self
                .max_inflight_reads
                .or(file.max_inflight_reads)
                .unwrap_or(1024),
            max_inflight_writes: self
                .max_inflight_writes
                .or(file.max_inflight_writes)
                .unwrap_or(1024),
            max_inflight_queries: self
                .max_inflight_queries
                .or(file.max_inflight_queries)
                .unwrap_or(64 * cores()),
            query_threads: self.query_threads.or(file.query_threads).unwrap_or(cores()),
            query_budget_ms: self
                .query_budget_ms
                .or(file.query_budget_ms)
                .unwrap_or(10_000),
            shed_delay_ms: self.shed_delay_ms.or(file.shed_delay_ms).unwrap_or(1000),
            shed_rate: self.shed_rate.or(file.shed_rate).unwrap_or(1000),
            shed_delay_max_ms: self
                .shed_delay_max_ms
                .or(file.shed_delay_max_ms)
                .unwrap_or(10_000),
            rate_per_identity: self
                .rate_per_identity
                .or(file.rate_per_identity)
                .unwrap_or(0.0),
            rate_burst: self.rate_burst.or(file.rate_burst),
            max_batch: self.max_batch.or(file.max_batch).unwrap_or(1000),
            max_page: self.max_page.or(file.max_page).unwrap_or(1000),
            default_page: self.default_page.or(file.default_page).unwrap_or(20),
            history_retention_days: self
                .history_retention_days
                .or(file.history_retention_days)
                .unwrap_or(0),
            audit_retention_days: self
                .audit_retention_days
                .or(file.audit_retention_days)
                .unwrap_or(90),
            history: self.history.or(file.history).unwrap_or(true),
            history_flush_ms: self
                .history_flush_ms
                .or(file.history_flush_ms)
                .unwrap_or(2000),
            max_temporal_instances: self
                .max_temporal_instances
                .or(file.max_temporal_instances)
                .unwrap_or(1000),
            context_timeout_ms: self
                .context_timeout_ms
                .or(file.context_timeout_ms)
                .unwrap_or(5000),
            expiry_sweep_ms: self
                .expiry_sweep_ms
                .or(file.expiry_sweep_ms)
                .unwrap_or(1000),
            notify_max_attempts: self
                .notify_max_attempts
                .or(file.notify_max_attempts)
                .unwrap_or(10),
            notify_retry_ms: self
                .notify_retry_ms
                .or(file.notify_retry_ms)
                .unwrap_or(1000),
            notify_retry_max_ms: self
                .notify_retry_max_ms
                .or(file.notify_retry_max_ms)
                .unwrap_or(300_000),
            notify_timeout_ms: self
                .notify_timeout_ms
                .or(file.notify_timeout_ms)
                .unwrap_or(10_000),
            notify_per_endpoint: self
                .notify_per_endpoint
                .or(file.notify_per_endpoint)
                .unwrap_or(8),
            log: self.log.or(file.log).unwrap_or_else(|| "info".into()),
            log_format: self
                .log_format
                .or(file.log_format)
                .as_deref()
                .unwrap_or("text")
                .parse()?,
            metrics: self.metrics.or(file.metrics).unwrap_or(true),
            metrics_tenants: self.metrics_tenants.or(file.metrics_tenants).unwrap_or(20),
            otlp: otlp(
                self.otlp_endpoint.or(file.otlp_endpoint),
                self.otlp_service_name.or(file.otlp_service_name),
                self.otlp_sample_ratio.or(file.otlp_sample_ratio),
            )?,
            context_dir: self.context_dir.or(file.context_dir),
            egress: harbor_outbound::EgressPolicy::new(
                &self.egress_allow.or(file.egress_allow).unwrap_or_default(),
                self.egress_allow_private
                    .or(file.egress_allow_private)
                    .unwrap_or(false),
            )
            .map_err(anyhow::Error::msg)?,
            auth: self
                .auth
                .or(file.auth)
                .as_deref()
                .unwrap_or("none")
                .parse()
                .map_err(anyhow::Error::msg)?,
            oidc: None,
            context_cache_bytes: self
                .context_cache_bytes
                .or(file.context_cache_bytes)
                .unwrap_or(64 * 1024 * 1024),
            context_max_bytes: self
                .context_max_bytes
                .or(file.context_max_bytes)
                .unwrap_or(1024 * 1024),
            stored_contexts: harbor_jsonld::registry::StoredLimits {
                max_document_bytes: self
                    .hosted_context_max_bytes
                    .or(file.hosted_context_max_bytes)
                    .unwrap_or(1024 * 1024),
                max_hosted_per_tenant: self
                    .hosted_contexts_max
                    .or(file.hosted_contexts_max)
                    .unwrap_or(100),
                max_total_bytes: self
                    .hosted_contexts_bytes
                    .or(file.hosted_contexts_bytes)
                    .unwrap_or(16 * 1024 * 1024),
            },
            quotas: harbor_engine::Quotas {
                entities: self.quota_entities.or(file.quota_entities).unwrap_or(0),
                subscriptions: self
                    .quota_subscriptions
                    .or(file.quota_subscriptions)
                    .unwrap_or(1000),
                registrations: self
                    .quota_registrations
                    .or(file.quota_registrations)
                    .unwrap_or(1000),
                max_tenants: self.max_tenants.or(file.max_tenants).unwrap_or(1000),
                tenants_per_identity: self
                    .tenants_per_identity
                    .or(file.tenants_per_identity)
                    .unwrap_or(20),
            },
        };
        let mut cfg = cfg;
        let insecure = self.insecure || file.insecure.unwrap_or(false);
        anyhow::ensure!(
            cfg.auth != harbor_auth::AuthMode::None || cfg.listen.ip().is_loopback() || insecure,
            "refusing to serve {} without authentication: set auth (jwt, apikey or jwt+apikey), \
             listen on a loopback address, or pass --insecure to accept the risk",
            cfg.listen
        );
        if cfg.auth.uses_jwt() {
            let issuer = self.oidc_issuer.or(file.oidc_issuer);
            let audience = self.oidc_audience.or(file.oidc_audience);
            let (Some(issuer), Some(audience)) = (issuer, audience) else {
                anyhow::bail!(
                    "auth = {} needs oidc_issuer and oidc_audience",
                    cfg.auth.as_str()
                );
            };
            cfg.oidc = Some(harbor_auth::OidcConfig {
                issuer,
                audience,
                roles_claim: self
                    .oidc_roles_claim
                    .or(file.oidc_roles_claim)
                    .unwrap_or_else(|| "roles".into()),
                partner_claim: self
                    .oidc_partner_claim
                    .or(file.oidc_partner_claim)
                    .unwrap_or_else(|| "partner".into()),
                clock_skew: std::time::Duration::from_secs(
                    self.oidc_clock_skew_s
                        .or(file.oidc_clock_skew_s)
                        .unwrap_or(30),
                ),
                jwks_url: self.oidc_jwks_url.or(file.oidc_jwks_url),
                refetch_interval: std::time::Duration::from_secs(10),
            });
        }
        anyhow::ensure!(cfg.max_batch > 0, "max_batch must be at least 1");
        anyhow::ensure!(
            cfg.rate_per_identity >= 0.0 && cfg.rate_burst.is_none_or(|b| b >= 1.0),
            "rate_per_identity must be 0 or more, and rate_burst at least 1"
        );
        for (name, v) in [
            ("header_timeout_ms", cfg.header_timeout_ms),
            ("body_timeout_ms", cfg.body_timeout_ms),
            ("idle_timeout_ms", cfg.idle_timeout_ms),
            ("query_budget_ms", cfg.query_budget_ms),
        ] {
            anyhow::ensure!(v > 0, "{name} must be at least 1");
        }
        for (name, v) in [
            ("max_inflight_reads", cfg.max_inflight_reads),
            ("max_inflight_writes", cfg.max_inflight_writes),
            ("max_inflight_queries", cfg.max_inflight_queries),
            ("query_threads", cfg.query_threads),
            ("shed_rate", cfg.shed_rate as usize),
        ] {
            anyhow::ensure!(v > 0, "{name} must be at least 1");
        }
        anyhow::ensure!(
            cfg.shed_delay_max_ms >= cfg.shed_delay_ms,
            "shed_delay_max_ms ({}) must be at least shed_delay_ms ({})",
            cfg.shed_delay_max_ms,
            cfg.shed_delay_ms
        );
        anyhow::ensure!(cfg.max_page > 0, "max_page must be at least 1");
        anyhow::ensure!(
            cfg.max_temporal_instances > 0,
            "max_temporal_instances must be at least 1"
        );
        anyhow::ensure!(
            cfg.expiry_sweep_ms > 0,
            "expiry_sweep_ms must be at least 1"
        );
        anyhow::ensure!(
            cfg.notify_max_attempts > 0,
            "notify_max_attempts must be at least 1"
        );
        anyhow::ensure!(
            cfg.notify_per_endpoint > 0,
            "notify_per_endpoint must be at least 1"
        );
        anyhow::ensure!(
            cfg.notify_timeout_ms > 0,
            "notify_timeout_ms must be at least 1"
        );
        anyhow::ensure!(
            cfg.default_page <= cfg.max_page,
            "default_page must not exceed max_page"
        );
        anyhow::ensure!(
            cfg.context_max_bytes > 0,
            "context_max_bytes must be at least 1"
        );

        Ok(cfg)
    }
}

/// A `broker_id` as `Via` can carry it (RFC 9110 7.6.3: a pseudonym is a token, or
/// `host[:port]`): no spaces, commas, parentheses or other separators.
fn check_broker_id(id: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~:[]".contains(c);
    if id.is_empty() || !id.chars().all(allowed) {
        return Err(format!(
            "broker_id: \"{id}\" cannot stand in a Via header; use letters, digits and \
             -._~:, e.g. nanning-broker or broker.nanning.example.org:1026"
        ));
    }
    Ok(id.to_string())
}

/// The broker id when none is configured: the listen address, unless it is the unspecified
/// address (every interface), which names no host; then the host name and the port.
fn default_broker_id(listen: SocketAddr, host: Option<&str>) -> String {
    if !listen.ip().is_unspecified() {
        return listen.to_string().to_ascii_lowercase();
    }
    match host.map(str::trim).filter(|h| check_broker_id(h).is_ok()) {
        Some(h) => format!("{}:{}", h.to_ascii_lowercase(), listen.port()),
        None => format!("infoharbor:{}", listen.port()),
    }
}

/// The machine's host name, as the kernel or the environment knows it.
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file() {
        let dir = std::env::temp_dir().join(format!("infoharbor-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("infoharbor.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nmax_batch = 10\n").unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            max_batch: Some(5),
            ..Default::default()
        };
        let cfg = args.resolve().unwrap();
        assert_eq!(cfg.listen.port(), 9000);
        assert_eq!(cfg.max_batch, 5);
        assert_eq!(cfg.default_page, 20);
        std::fs::write(&path, "colour = \"blue\"\n").unwrap();
        let err = ServeArgs {
            config: Some(path),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{err:#}").contains("colour"), "{err:#}");
    }

    #[cfg(not(feature = "otlp"))]
    #[test]
    fn an_otlp_endpoint_needs_the_otlp_feature() {
        let err = ServeArgs {
            otlp_endpoint: Some("http://127.0.0.1:4318".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains("without the `otlp` feature"), "{err}");
        assert!(
            err.contains("cargo build --release --features otlp"),
            "{err}"
        );
        // Without an endpoint the other options change nothing and are accepted.
        let cfg = ServeArgs {
            otlp_service_name: Some("broker-a".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(cfg.otlp, None);
    }

    #[cfg(feature = "otlp")]
    #[test]
    fn otlp_options_are_checked() {
        let resolve = |endpoint: &str, name: Option<&str>, ratio: Option<f64>| {
            ServeArgs {
                otlp_endpoint: Some(endpoint.into()),
                otlp_service_name: name.map(str::to_string),
                otlp_sample_ratio: ratio,
                ..Default::default()
            }
            .resolve()
            .map(|c| c.otlp.expect("export configured"))
            .map_err(|e| format!("{e:#}"))
        };
        assert_eq!(
            resolve("http://127.0.0.1:4318", None, None),
            Ok(Otlp {
                traces_url: "http://127.0.0.1:4318/v1/traces".into(),
                service_name: "infoharbor".into(),
                sample_ratio: 1.0,
            })
        );
        let cases: &[(&str, Option<&str>, Option<f64>, &str)] = &[
            ("udp://127.0.0.1:4318", None, None, "http:// or https://"),
            (
                "http://127.0.0.1:4318",
                Some(" "),
                None,
                "otlp_service_name",
            ),
            (
                "http://127.0.0.1:4318",
                None,
                Some(1.5),
                "from 0.0 to 1.0, got 1.5",
            ),
            ("http://127.0.0.1:4318", None, Some(-0.1), "from 0.0 to 1.0"),
            (
                "http://127.0.0.1:4318",
                None,
                Some(f64::NAN),
                "from 0.0 to 1.0",
            ),
        ];
        for (endpoint, name, ratio, want) in cases {
            let err = resolve(endpoint, *name, *ratio).unwrap_err();
            assert!(err.contains(want), "{endpoint} {name:?} {ratio:?}: {err}");
        }
    }

    #[test]
    fn the_broker_id_defaults_to_an_address_peers_can_tell_apart() {
        let at = |a: &str| a.parse::<SocketAddr>().unwrap();
        assert_eq!(
            super::default_broker_id(at("127.0.0.1:1026"), Some("h")),
            "127.0.0.1:1026"
        );
        assert_eq!(
            super::default_broker_id(at("[::1]:8090"), None),
            "[::1]:8090"
        );
        assert_eq!(
            super::default_broker_id(at("0.0.0.0:1026"), Some("Broker-SG\n")),
            "broker-sg:1026"
        );
        assert_eq!(
            super::default_broker_id(at("[::]:1026"), None),
            "infoharbor:1026"
        );
        assert_eq!(
            super::default_broker_id(at("0.0.0.0:1026"), Some("a b")),
            "infoharbor:1026"
        );
        assert!(super::check_broker_id("nanning-broker").is_ok());
        assert!(super::check_broker_id("broker.example.org:1026").is_ok());
        for bad in ["", "two words", "a,b", "x(y)"] {
            let err = super::check_broker_id(bad).unwrap_err();
            assert!(err.contains("broker_id"), "{bad}: {err}");
        }
    }

    #[test]
    fn documented_options_match() {
        // docs/configuration.md names every option of the file.
        let doc = include_str!("../../../docs/configuration.md");
        for key in [
            "listen",
            "data_dir",
            "broker_id",
            "max_body_bytes",
            "tls_cert",
            "tls_key",
            "max_connections",
            "header_timeout_ms",
            "body_timeout_ms",
            "idle_timeout_ms",
            "shutdown_deadline_ms",
            "max_inflight_reads",
            "max_inflight_writes",
            "max_inflight_queries",
            "query_threads",
            "query_budget_ms",
            "shed_delay_ms",
            "shed_rate",
            "shed_delay_max_ms",
            "rate_per_identity",
            "rate_burst",
            "max_batch",
            "max_page",
            "default_page",
            "context_timeout_ms",
            "expiry_sweep_ms",
            "history_retention_days",
            "audit_retention_days",
            "history_flush_ms",
            "notify_max_attempts",
            "notify_retry_ms",
            "notify_retry_max_ms",
            "notify_timeout_ms",
            "notify_per_endpoint",
            "log",
            "log_format",
            "metrics",
            "metrics_tenants",
            "otlp_endpoint",
            "otlp_service_name",
            "otlp_sample_ratio",
            "egress_allow",
            "egress_allow_private",
            "auth",
            "insecure",
            "oidc_issuer",
            "oidc_audience",
            "oidc_roles_claim",
            "oidc_partner_claim",
            "oidc_clock_skew_s",
            "oidc_jwks_url",
            "context_cache_bytes",
            "context_max_bytes",
            "hosted_context_max_bytes",
            "hosted_contexts_max",
            "hosted_contexts_bytes",
            "quota_entities",
            "quota_subscriptions",
            "quota_registrations",
            "max_tenants",
            "tenants_per_identity",
        ] {
            assert!(
                doc.contains(key),
                "docs/configuration.md does not document {key}"
            );
        }
    }
}
