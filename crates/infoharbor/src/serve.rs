//! `infoharbor serve`: opens the store, builds the engine and the API, serves until a signal.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use harbor_engine::history::{Historian, HistoryConfig};
use harbor_engine::notify::{Notifier, NotifyConfig};
use harbor_engine::{Engine, Limits};
use harbor_http::{AppState, HttpLimits};
use harbor_jsonld::registry::ContextRegistry;
use harbor_jsonld::resolve::{ContextResolver, ResolverLimits};
use harbor_outbound::HttpContextFetcher;
use harbor_store_embedded::EmbeddedStore;

use crate::config::Config;

pub async fn run(cfg: Config, traces: crate::telemetry::Traces) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let data_dir = cfg.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&data_dir))
        .await?
        .with_context(|| format!("opening the store in {}", cfg.data_dir.display()))?;
    let store = Arc::new(store);
    let engine = Engine::new(
        store.clone(),
        Limits {
            max_batch: cfg.max_batch,
            max_page: cfg.max_page,
            default_page: cfg.default_page,
            max_temporal_instances: cfg.max_temporal_instances,
        },
    )
    .with_subscriptions(store.clone())
    .with_temporal(store.clone())
    .with_registrations(store.clone())
    .with_quotas(cfg.quotas);
    let historian = Historian::new(
        store.clone(),
        store.clone(),
        HistoryConfig {
            record: cfg.history,
            flush: Duration::from_millis(cfg.history_flush_ms),
            ..HistoryConfig::default()
        },
    );
    let recording = historian.start();
    let engine = engine.with_history(historian.clone());
    let preloaded = match &cfg.context_dir {
        Some(dir) => crate::preload::load(dir)?,
        None => Default::default(),
    };
    if !preloaded.is_empty() {
        tracing::info!(count = preloaded.len(), "preloaded @context documents");
    }
    let egress = harbor_outbound::Egress::new(cfg.egress.clone());
    let pinned: Vec<String> = preloaded.keys().cloned().collect();
    let fetcher = Arc::new(
        HttpContextFetcher::new(
            Duration::from_millis(cfg.context_timeout_ms),
            egress.clone(),
        )
        .with_preloaded(preloaded)
        .with_max_bytes(cfg.context_max_bytes),
    );
    let base = format!("http://{}", cfg.listen);
    let registry = Arc::new(
        ContextRegistry::new(&base)
            .with_pinned(pinned)
            .with_stored_limits(cfg.stored_contexts),
    );
    crate::contexts::persist(&registry, store.clone())?;
    let resolver = Arc::new(ContextResolver::with_limits(
        fetcher,
        registry.clone(),
        ResolverLimits {
            max_document_bytes: cfg.context_max_bytes,
            cache_bytes: cfg.context_cache_bytes,
            ..ResolverLimits::default()
        },
    ));
    let transport = crate::transport::Outbound(harbor_outbound::Notifier::new(
        harbor_outbound::NotifierConfig {
            per_endpoint_concurrency: cfg.notify_per_endpoint,
            egress: egress.clone(),
            ..Default::default()
        },
    ));
    let notifier = Notifier::new(
        store.clone(),
        store.clone(),
        store.clone(),
        resolver.clone(),
        Arc::new(transport),
        NotifyConfig {
            max_attempts: cfg.notify_max_attempts,
            retry_base: Duration::from_millis(cfg.notify_retry_ms),
            retry_max: Duration::from_millis(cfg.notify_retry_max_ms.max(cfg.notify_retry_ms)),
            default_timeout: Duration::from_millis(cfg.notify_timeout_ms),
            ..NotifyConfig::default()
        },
    );
    let keys = Arc::new(
        harbor_auth::KeyRing::load(store.clone())
            .await
            .context("loading the API keys")?,
    );
    let policies = Arc::new(
        harbor_auth::PolicyBook::load(store.clone())
            .await
            .context("loading the access policies")?,
    );
    let notifier = notifier
        .with_registrations(store.clone())
        .with_view(Arc::new(crate::views::PolicyView {
            policies: policies.clone(),
            keys: keys.clone(),
        }));
    let engine = Arc::new(
        engine
            .with_notifier(notifier.clone())
            .with_context_sources(Arc::new(crate::transport::Sources(
                harbor_outbound::sources::SourceClient::new(egress.clone()),
            )))
            .with_broker_id(cfg.broker_id.clone())
            .with_endpoint_check(Arc::new(crate::transport::EndpointWall(cfg.egress.clone()))),
    );
    notifier.start().await;
    let retention = tokio::spawn(crate::sweep::history_forever(
        engine.clone(),
        cfg.history_retention_days,
    ));
    let sweeper = tokio::spawn(crate::sweep::expired_forever(
        engine.clone(),
        Duration::from_millis(cfg.expiry_sweep_ms),
    ));
    let audit = harbor_auth::AuditLog::start(store.clone());
    let auditing = tokio::spawn(crate::sweep::audit_forever(
        audit.clone(),
        cfg.audit_retention_days,
    ));
    let auth = match cfg.auth {
        harbor_auth::AuthMode::None => None,
        mode => {
            let jwt = cfg.oidc.clone().map(|oidc| {
                let fetch = crate::transport::ProviderFetch(
                    harbor_outbound::sources::SourceClient::new(egress.clone()),
                );
                Arc::new(harbor_auth::JwtVerifier::new(oidc, Arc::new(fetch)))
            });
            if let Some(v) = jwt.clone() {
                tokio::spawn(async move {
                    match v.prefetch().await {
                        Ok(n) => tracing::info!(keys = n, "identity provider keys fetched"),
                        Err(e) => {
                            tracing::warn!(error = %e, "identity provider keys not fetched yet")
                        }
                    }
                });
            }
            tracing::info!(auth = mode.as_str(), "requests are authenticated");
            Some(Arc::new(harbor_auth::Authenticator::new(
                mode,
                Some(keys.clone()),
                jwt,
            )))
        }
    };
    let telemetry =
        crate::telemetry::for_http(&cfg, &store, &engine, &notifier, &historian, &traces);
    let state = Arc::new(AppState {
        engine,
        resolver,
        registry,
        limits: HttpLimits {
            max_body: cfg.max_body_bytes,
            body_timeout: Duration::from_millis(cfg.body_timeout_ms),
            shed: harbor_http::shed::ShedLimits {
                reads: cfg.max_inflight_reads,
                writes: cfg.max_inflight_writes,
                queries: cfg.max_inflight_queries,
                cpu_threads: cfg.query_threads,
                cpu_budget: Duration::from_millis(cfg.query_budget_ms),
                shed_delay: Duration::from_millis(cfg.shed_delay_ms),
                shed_rate: cfg.shed_rate,
                shed_delay_max: Duration::from_millis(cfg.shed_delay_max_ms),
                ..Default::default()
            },
            rate: harbor_http::rate::RateLimit {
                per_second: cfg.rate_per_identity,
                burst: cfg.rate_burst.unwrap_or(cfg.rate_per_identity * 2.0),
            },
        },
        identity: harbor_http::SourceIdentity::new(crate::identity::load_or_create(&cfg.data_dir)?),
        auth,
        keys: Some(keys),
        policies: Some(policies),
        audit: Some(audit.clone()),
        telemetry,
    });
    let mut server = server_config(&cfg)?;
    server.connections = state.telemetry.connections();
    let listener = listen(cfg.listen).with_context(|| format!("listening on {}", cfg.listen))?;
    tracing::info!(
        listen = %cfg.listen,
        broker_id = %cfg.broker_id,
        tls = server.tls.is_some(),
        max_connections = server.max_connections,
        data_dir = %cfg.data_dir.display(),
        ready_in_ms = started.elapsed().as_millis() as u64,
        "infoharbor is serving NGSI-LD"
    );
    let stop_began = Arc::new(std::sync::OnceLock::new());
    let signal = {
        let stop_began = stop_began.clone();
        async move {
            shutdown_signal().await;
            let _ = stop_began.set(std::time::Instant::now());
        }
    };
    harbor_http::serve(listener, state, signal, server).await?;
    sweeper.abort();
    auditing.abort();
    retention.abort();
    recording.abort();
    // The spans still queued go out in what is left of the shutdown deadline.
    let spent = stop_began
        .get()
        .map_or(Duration::ZERO, std::time::Instant::elapsed);
    traces
        .stop(Duration::from_millis(cfg.shutdown_deadline_ms).saturating_sub(spent))
        .await;
    tracing::info!("stopped");
    Ok(())
}

/// Binds the API's address with a deep accept queue: under a burst of connections, a short
/// one overflows and clients wait a second for their SYN to be sent again.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    // The kernel caps it at net.core.somaxconn.
    socket.listen(8192)
}

/// The connection limits and TLS of the server. Raises the open-files limit to its hard
/// maximum first: every connection is a file.
fn server_config(cfg: &Config) -> anyhow::Result<harbor_http::server::ServerConfig> {
    let files = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-files limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    };
    // An eighth of the files stays for the store, outbound connections and logs.
    let automatic = (files - files / 8).clamp(16, 65_536) as usize;
    let max_connections = match cfg.max_connections {
        0 => automatic,
        n if n as u64 > files => {
            tracing::warn!(
                max_connections = n,
                open_files = files,
                "max_connections exceeds the open-files limit; connections will fail to open \
                 before the limit is reached"
            );
            n
        }
        n => n,
    };
    let tls = match &cfg.tls {
        Some((cert, key)) => Some(harbor_http::tls::load(cert, key)?),
        None => None,
    };
    Ok(harbor_http::server::ServerConfig {
        max_connections,
        header_timeout: Duration::from_millis(cfg.header_timeout_ms),
        idle_timeout: Duration::from_millis(cfg.idle_timeout_ms),
        shutdown_deadline: Duration::from_millis(cfg.shutdown_deadline_ms),
        tls,
        ..Default::default()
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
