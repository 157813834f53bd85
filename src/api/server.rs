//! The API's socket: binding (loopback only while no key exists), optional
//! TLS with rustls, the tokio runtime it runs on, the key refresher, and
//! graceful shutdown. Everything else about the API is in `app(state)`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, bail};
use secmon_parse::LineParser;
use secmon_respond::Store;

use super::config::ApiConfig;
use super::keys::{Keys, ServerSecret};
use super::{AppState, Inner, auth};
use crate::daemon::{Msg, Shared};

pub struct Options {
    pub cfg: ApiConfig,
    pub shared: Arc<Shared>,
    pub tx: flume::Sender<Msg>,
    pub db: PathBuf,
    pub parser: Arc<LineParser>,
    pub notify: secmon_notify::NotifyConfig,
    pub archive: Option<flume::Sender<crate::archive::writer::ArchiveMsg>>,
    pub incidents: secmon_respond::IncidentConfig,
    pub engine: secmon_engine::EngineConfig,
}

pub struct ApiHandle {
    pub addr: SocketAddr,
    state: AppState,
    handle: axum_server::Handle<SocketAddr>,
    thread: Option<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
}

impl ApiHandle {
    /// Ingest answers 503 from now on; other routes keep working until shutdown.
    pub fn stop_intake(&self) {
        self.state.accepting.store(false, Ordering::Relaxed);
    }

    /// Starts a graceful shutdown: in-flight requests get up to 5 s.
    pub fn begin_shutdown(&self) {
        self.stop_intake();
        self.stopping.store(true, Ordering::Relaxed);
        self.handle.graceful_shutdown(Some(Duration::from_secs(5)));
    }

    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    pub fn join(mut self) {
        self.begin_shutdown();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("API thread panicked");
        }
    }
}

pub fn start(o: Options) -> anyhow::Result<ApiHandle> {
    let secret = ServerSecret::from_env()?;
    let store = Store::open(&o.db).with_context(|| format!("opening {}", o.db.display()))?;
    let keys = Keys::open(&store)?.active()?;
    if !keys.is_empty() && secret.is_none() {
        bail!(
            "{} API key(s) exist but {} is not set, so none can be verified",
            keys.len(),
            super::keys::SECRET_ENV
        );
    }
    let mut addr: SocketAddr = o
        .cfg
        .listen
        .parse()
        .with_context(|| format!("api.listen {:?}", o.cfg.listen))?;
    if keys.is_empty() {
        if !addr.ip().is_loopback() {
            tracing::warn!(
                event = "secmon.api_loopback_only",
                configured = %addr,
                "no API key exists: the API listens on loopback only; create one with `secmon keys create --role admin`"
            );
            addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        } else {
            tracing::warn!(
                event = "secmon.api_open",
                "no API key exists: the API is open to local clients on loopback; create one with `secmon keys create --role admin`"
            );
        }
    }
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("binding the API to {addr}"))?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let auth = auth::Auth::new(
        secret,
        local.ip().is_loopback(),
        keys,
        o.cfg.auth_fail_limit,
        Duration::from_millis(o.cfg.auth_fail_window.as_millis().max(1) as u64),
    );
    let state = AppState::new(Inner {
        shared: o.shared,
        auth,
        tx: o.tx,
        db: Arc::new(Mutex::new(store)),
        parser: o.parser,
        notify: o.notify,
        archive: o.archive,
        incidents_cfg: o.incidents,
        engine_cfg: o.engine,
        max_body: o.cfg.max_body_bytes,
        accepting: AtomicBool::new(true),
        dashboard: crate::dashboard::Dashboard::new(o.cfg.tls.is_some())
            .with_pages(o.cfg.pages.clone()),
    });
    let handle: axum_server::Handle<SocketAddr> = axum_server::Handle::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("secmon-api")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let tls = match &o.cfg.tls {
        Some(t) => Some(
            rt.block_on(axum_server::tls_rustls::RustlsConfig::from_pem_file(
                &t.cert, &t.key,
            ))
            .with_context(|| {
                format!(
                    "loading TLS certificate {} and key {}",
                    t.cert.display(),
                    t.key.display()
                )
            })?,
        ),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(event = "secmon.api_listening", addr = %local, url = %format!("{scheme}://{local}"), "API listening");
    let stopping = Arc::new(AtomicBool::new(false));
    let thread = {
        let (state, handle, stopping) = (state.clone(), handle.clone(), stopping.clone());
        std::thread::Builder::new()
            .name("secmon-api".into())
            .spawn(move || {
                rt.block_on(async move {
                    tokio::spawn(refresh_keys(state.clone(), stopping));
                    let app = super::app(state).into_make_service_with_connect_info::<SocketAddr>();
                    let served = match tls {
                        Some(tls) => match axum_server::from_tcp_rustls(listener, tls) {
                            Ok(s) => s.handle(handle).serve(app).await,
                            Err(e) => Err(e),
                        },
                        None => match axum_server::from_tcp(listener) {
                            Ok(s) => s.handle(handle).serve(app).await,
                            Err(e) => Err(e),
                        },
                    };
                    if let Err(e) = served {
                        tracing::error!(error = %e, "API server stopped");
                    }
                });
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .context("starting the API thread")?
    };
    Ok(ApiHandle {
        addr: local,
        state,
        handle,
        thread: Some(thread),
        stopping,
    })
}

/// Reloads the verifier's copy of the keys, so `secmon keys create|revoke`
/// takes effect on a running secmon within [`auth::REFRESH`].
async fn refresh_keys(state: AppState, stopping: Arc<AtomicBool>) {
    while !stopping.load(Ordering::Relaxed) {
        tokio::time::sleep(auth::REFRESH).await;
        let s = state.clone();
        let loaded = state
            .read(move |store| {
                Keys::open(store)
                    .and_then(|k| k.active())
                    .map_err(|e| super::ApiError::Internal(e.to_string()))
            })
            .await;
        match loaded {
            Ok(keys) => s.auth.replace_keys(keys),
            Err(e) => tracing::error!(error = ?e, "reloading API keys failed"),
        }
    }
}
