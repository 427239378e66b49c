//! Wiring: settings → store → engine → HTTP server. `Application` binds its listener
//! before it runs, so tests (and the CLI) can read the port, including port 0.

use std::{sync::Arc, time::Duration};

use alta_actors::{
    Engine, EngineRoles,
    clock::{SharedClock, SystemClock},
    store::{Db, DbOptions},
};
use alta_api::ApiConfig;
use anyhow::Context;
use poem::{
    Server,
    listener::{Acceptor, Listener, TcpAcceptor, TcpListener},
};
use secrecy::ExposeSecret;

use crate::{settings::Settings, telemetry};

/// Open the database named by the settings and bring its schema up to date.
pub async fn connect_database(settings: &Settings) -> anyhow::Result<Db> {
    if settings.create_sqlite_file {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("DATA_DIR: cannot create {}", settings.data_dir.display()))?;
    }
    let db = Db::connect(&DbOptions {
        url: settings.database_url.expose_secret().to_owned(),
        max_connections: settings.database_max_connections,
        create_sqlite_file: settings.create_sqlite_file,
    })
    .await
    .context("DATABASE_URL: cannot open the database")?;
    db.migrate()
        .await
        .context("cannot apply database migrations")?;
    Ok(db)
}

/// Start the engine for the given roles on a migrated database.
pub async fn start_engine(
    settings: &Settings,
    db: Db,
    clock: SharedClock,
    roles: EngineRoles,
) -> anyhow::Result<Engine> {
    Engine::start(settings.engine_config(), db, clock, roles)
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the engine: {e}"))
}

pub struct Application {
    acceptor: TcpAcceptor,
    port: u16,
    /// Where a browser on this machine finds the API's pages (for the startup log).
    local_base: String,
    engine: Engine,
    api_config: ApiConfig,
    /// `METRICS_ADDR`: `/metrics` on a listener of its own (and its port).
    metrics_listener: Option<(TcpAcceptor, u16, alta_api::MetricsRender)>,
}

/// Bind `addr`; the acceptor and the port it got (`:0` picks one).
async fn bind(addr: std::net::SocketAddr, var: &str) -> anyhow::Result<(TcpAcceptor, u16)> {
    let acceptor = TcpListener::bind(addr)
        .into_acceptor()
        .await
        .with_context(|| format!("{var}: cannot listen on {addr}"))?;
    let port = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().map(|s| s.port()))
        .context("cannot read the bound port")?;
    Ok((acceptor, port))
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// As `build`, with the clock injected (tests move time to check expiry).
    pub async fn build_with_clock(settings: Settings, clock: SharedClock) -> anyhow::Result<Self> {
        let db = connect_database(&settings).await?;
        let roles = if settings.serve_workers {
            EngineRoles::SERVE
        } else {
            EngineRoles::API
        };
        let engine = start_engine(&settings, db, clock, roles).await?;
        let addr = std::net::SocketAddr::new(settings.host, settings.port);
        let (acceptor, port) = bind(addr, "HOST/PORT").await?;
        // A wildcard address is reached on this machine as loopback.
        let host = match settings.host {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let local_base = format!("http://{host}:{port}");
        let render = telemetry::metrics_handle()
            .map(|h| Arc::new(move || h.render()) as alta_api::MetricsRender);
        let metrics_listener = match (settings.metrics_addr, &render) {
            (Some(addr), Some(render)) => {
                let (acceptor, port) = bind(addr, "METRICS_ADDR").await?;
                Some((acceptor, port, Arc::clone(render)))
            }
            _ => None,
        };
        let api_config = ApiConfig {
            cors_origins: settings.cors_origins.clone(),
            max_body_bytes: settings.max_body_bytes,
            max_upload_bytes: usize::try_from(settings.max_upload_bytes).unwrap_or(usize::MAX),
            trusted_proxies: settings.trusted_proxies.clone(),
            public_origin: url::Url::parse(&settings.public_url)
                .ok()
                .map(|u| u.origin().ascii_serialization()),
            hsts: settings.public_url.starts_with("https://"),
            // With a listener of its own, the API port serves no /metrics.
            metrics: render.filter(|_| settings.metrics_addr.is_none()),
            metrics_token: settings
                .metrics_token
                .as_ref()
                .map(|t| alta_api::MetricsToken::new(t.expose_secret())),
        };
        Ok(Self {
            acceptor,
            port,
            local_base,
            engine,
            api_config,
            metrics_listener,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the `/metrics` listener (`METRICS_ADDR`), when there is one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_listener.as_ref().map(|(_, port, _)| *port)
    }

    /// The engine this application serves (the CLI and tests make engine calls directly).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Serve until `shutdown` resolves, then drain in-flight requests (up to 30 s)
    /// and stop the engine.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let metrics_token = self.api_config.metrics_token.clone();
        let app = alta_api::app(self.engine.clone(), self.api_config);
        // One shutdown signal for both listeners (a dropped sender stops them too).
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let metrics_server = self.metrics_listener.map(|(acceptor, port, render)| {
            tracing::info!(port, "serving /metrics on its own listener");
            let mut stop = stop_rx.clone();
            tokio::spawn(
                Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
                    alta_api::metrics_app(render, metrics_token),
                    async move {
                        let _ = stop.wait_for(|stopped| *stopped).await;
                    },
                    Some(Duration::from_secs(5)),
                ),
            )
        });
        tracing::info!(
            port = self.port,
            database = self.engine.database_backend(),
            // Where the API's documentation (Swagger UI) is. The message stays "serving":
            // tests and scripts find the port by it.
            docs = format!("{}/docs", self.local_base),
            "serving"
        );
        let result = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(
                app,
                async move {
                    shutdown.await;
                    let _ = stop_tx.send(true);
                },
                Some(Duration::from_secs(30)),
            )
            .await;
        if let Some(task) = metrics_server {
            // The sender is gone by now, so the listener is stopping.
            if let Ok(Err(e)) = task.await {
                tracing::warn!(error = %e, "the metrics listener failed");
            }
        }
        self.engine.shutdown().await;
        result.context("the HTTP server failed")
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
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
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// `alta worker`'s own listener: `/metrics` and `/health` on `WORKER_METRICS_PORT`,
/// until `shutdown` resolves.
pub async fn serve_worker_metrics(
    settings: &Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use poem::{Route, get, handler};

    #[handler]
    fn health() -> &'static str {
        "ok"
    }

    let render: alta_api::MetricsRender = match telemetry::metrics_handle() {
        Some(handle) => Arc::new(move || handle.render()),
        None => Arc::new(String::new),
    };
    // The same guarded /metrics as the API's: METRICS_TOKEN applies here too.
    let token = settings
        .metrics_token
        .as_ref()
        .map(|t| alta_api::MetricsToken::new(t.expose_secret()));
    let app = Route::new()
        .nest_no_strip("/metrics", alta_api::metrics_app(render, token))
        .at("/health", get(health));
    let addr = std::net::SocketAddr::new(settings.host, settings.worker_metrics_port);
    let acceptor = TcpListener::bind(addr)
        .into_acceptor()
        .await
        .with_context(|| format!("WORKER_METRICS_PORT: cannot listen on {addr}"))?;
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(app, shutdown, Some(Duration::from_secs(5)))
        .await
        .context("the worker metrics listener failed")
}
