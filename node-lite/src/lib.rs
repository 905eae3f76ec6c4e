//! # node-lite: a light DSI storage node
//!
//! A node-lite keeps content-addressed chunks on disk, serves them to peers over HTTP,
//! downloads content from many peers at once (verifying every chunk), and deals in seeding
//! receipts: as a downloader it signs one for every verified chunk and sends it to the
//! seeder; as a seeder it keeps the receipts it is given, durably, and stops serving
//! downloaders that do not pay in receipts.
//!
//! What lives where:
//! - [`data_dir`]: the node's directory (key, config, chunk store, receipt database);
//! - [`store`]: chunks and manifests on disk, adding files, verification and quarantine;
//! - [`receipts`]: the seeder's durable receipt database (SQLite) and acceptance rules;
//! - [`server`]: the HTTP API (`router(state)` separate from binding) and `/metrics`;
//! - [`transport`]: the same node-to-node routes over iroh (QUIC keyed by the node key,
//!   hole punching, the network's relays), for nodes without a public address;
//! - [`download`]: the swarm downloader (rarest-first, endgame, resume);
//! - [`payer`]: signing receipts and paying seeders with them, for the downloader and for
//!   vector pages;
//! - [`status`]: the seeder's status (`node-lite status`, the `/dashboard` page);
//! - [`quota`]: the disk quota and what is evicted first when room is needed;
//! - [`peers`]: peer discovery behind the [`peers::PeerSource`] trait (explicit `--peer` URLs
//!   and the oracle's tracker, [`tracker`]);
//! - [`vectors`]: vector indexes (the `vector-store` crate) stored as chunks, queried from
//!   the local store or from peers, updated; text models (the `text-embed` crate) stored as
//!   content, and text turned into query vectors;
//! - [`error::NodeError`]: the failures a user can cause, each with its exit code;
//! - [`cli`] and [`commands`]: the command line and the work of each subcommand (a report
//!   the thin `main.rs` prints); [`serve`] runs a node until its shutdown token fires.
//!
//! It does not decide rewards: receipts are evidence that the oracle turns into payouts.
//! Wire formats (ids, manifests, receipts) come from `dsi-protocol`, HTTP bodies and error
//! codes from `dsi-api`.

pub mod cli;
pub mod commands;
pub mod config;
pub mod data_dir;
pub mod download;
pub mod error;
pub mod payer;
pub mod peers;
pub mod quota;
pub mod receipts;
pub mod replicate;
pub mod server;
pub mod size;
pub mod status;
pub mod store;
pub mod tracker;
pub mod transport;
pub mod vectors;

pub use config::Config;
pub use data_dir::DataDir;
pub use error::NodeError;

pub use dsi_api::DOWNLOADER_HEADER;

/// Runs the HTTP gateway of `state` on `listener` until `shutdown` fires (no announcing:
/// a gateway fetches, it does not seed).
pub async fn serve_gateway(
    state: std::sync::Arc<server::NodeState>,
    listener: tokio::net::TcpListener,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), NodeError> {
    let address = bound_address(&listener)?;
    if !address.ip().is_loopback() {
        tracing::warn!(%address, clients = ?state.config.gateway.clients, "gateway listening beyond loopback, as configured");
    }
    tracing::info!(node = %state.node_id.short(), %address, "gateway running");
    let saver = tokio::spawn(save_egress(state.clone(), shutdown.clone()));
    let served = server::serve_routes(
        listener,
        server::gateway_router(state.clone()),
        shutdown.clone(),
    )
    .await;
    shutdown.cancel();
    let _ = saver.await;
    state.gateway.drain(drain_limit(&state)).await;
    if let Err(e) = state.egress.save() {
        tracing::warn!(error = %e, "cannot save the egress counts");
    }
    state.receipts.close().await;
    served.map_err(|e| NodeError::Server {
        address,
        reason: e.to_string(),
    })
}

/// Serves `state` on `listener` (and to peers over iroh on `iroh`, an endpoint from
/// [`transport::bind`]) until `shutdown` fires: the HTTP API and, when `[tracker]` names an
/// oracle, announcing and forwarding receipts to it. On shutdown, open requests finish,
/// receipts are forwarded one last time and the receipt database is closed.
pub async fn serve(
    state: std::sync::Arc<server::NodeState>,
    listener: tokio::net::TcpListener,
    iroh: Option<iroh::Endpoint>,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), NodeError> {
    let address = bound_address(&listener)?;
    if let Some(endpoint) = &iroh {
        // Announced with the HTTP URL, so the tracker can send downloaders here over iroh.
        let _ = state.iroh.set(endpoint.clone());
    }
    let tracker = tracker::TrackerSettings::from_config(&state.config.tracker)?
        .map(|settings| settings.announcing_from(address))
        .transpose()?;
    if !address.ip().is_loopback() {
        tracing::warn!(%address, "listening beyond loopback, as configured");
    }
    tracing::info!(node = %state.node_id.short(), %address, verify = ?state.config.serve.verify, "serving");
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(settings) = tracker {
        let public_url = settings.public_url(address);
        if state.config.serve.replicate > 0 {
            tasks.spawn(replicate::run(
                state.clone(),
                settings.client.clone(),
                state.config.serve.replicate,
                shutdown.clone(),
            ));
        }
        let iroh_url = iroh.as_ref().map(|_| transport::peer_url(&state.node_id));
        tracing::info!(tracker = %settings.client.url(), %public_url, iroh_url = ?iroh_url.map(|u| u.to_string()), "announcing to the tracker (at the iroh URL instead when the URL is loopback and the tracker audits over a relay of ours)");
        tasks.spawn(tracker::run(
            state.clone(),
            settings.client,
            public_url,
            settings.payout,
            shutdown.clone(),
        ));
    }
    tasks.spawn(save_egress(state.clone(), shutdown.clone()));
    let iroh = iroh.map(|endpoint| serve_iroh(&state, endpoint));
    // HTTP and iroh stop together once `shutdown` fires (or HTTP fails).
    let http = async {
        let served = server::serve(listener, state.clone(), shutdown.clone()).await;
        shutdown.cancel();
        served
    };
    let peers = async {
        if let Some((router, streams)) = &iroh {
            shutdown.cancelled().await;
            if let Err(e) = router.shutdown().await {
                tracing::warn!(error = %e, "the iroh endpoint did not close cleanly");
            }
            // Streams still answering finish (their connections are closed) before the
            // counts they moved are saved.
            streams.close();
            if tokio::time::timeout(drain_limit(&state), streams.wait())
                .await
                .is_err()
            {
                tracing::warn!("iroh streams still answering at shutdown; left behind");
            }
        }
    };
    let (served, ()) = tokio::join!(http, peers);
    while tasks.join_next().await.is_some() {}
    state.gateway.drain(drain_limit(&state)).await;
    // What the last answers sent, counted after the listener stopped.
    if let Err(e) = state.egress.save() {
        tracing::warn!(error = %e, "cannot save the egress counts");
    }
    state.receipts.close().await;
    tracing::info!("stopped");
    served.map_err(|e| NodeError::Server {
        address,
        reason: e.to_string(),
    })
}

/// Accepts peers over iroh (`transport`) on the node key, serving the swarm routes.
fn serve_iroh(
    state: &std::sync::Arc<server::NodeState>,
    endpoint: iroh::Endpoint,
) -> (iroh::protocol::Router, tokio_util::task::TaskTracker) {
    let config = &state.config.iroh;
    let direct: Vec<String> = endpoint
        .addr()
        .ip_addrs()
        .map(ToString::to_string)
        .collect();
    if config.bind.iter().any(|a| !a.ip().is_loopback()) {
        tracing::warn!(bind = ?config.bind, "iroh listening beyond loopback, as configured");
    }
    tracing::info!(node = %state.node_id, relays = ?config.relays, ?direct, "accepting peers over iroh");
    let auditor = state.clone();
    let service =
        transport::PeerService::new(server::peer_routes(state.clone()), config.max_connections)
            .privileged(move |node| auditor.audits.auditor() == Some(*node));
    let streams = service.tasks();
    let router = iroh::protocol::Router::builder(endpoint)
        .incoming_filter(service.incoming_filter())
        .accept(transport::ALPN, service)
        .spawn();
    (router, streams)
}

fn bound_address(listener: &tokio::net::TcpListener) -> Result<std::net::SocketAddr, NodeError> {
    listener
        .local_addr()
        .map_err(|e| NodeError::Usage(format!("the listener has no address: {e}")))
}

/// How long a stopping node waits for gateway fetches and receipt deliveries: a window and
/// a delivery, each bounded by stall timeouts.
fn drain_limit(state: &server::NodeState) -> std::time::Duration {
    std::time::Duration::from_millis(state.config.download.stall_timeout_ms.saturating_mul(4))
}

/// Saves the egress counts every few seconds, and once more when `shutdown` fires.
async fn save_egress(
    state: std::sync::Arc<server::NodeState>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let stop = tokio::select! {
            () = shutdown.cancelled() => true,
            () = tokio::time::sleep(std::time::Duration::from_secs(2)) => false,
        };
        if let Err(e) = state.egress.save() {
            tracing::warn!(error = %e, "cannot save the egress counts");
        }
        if stop {
            return;
        }
    }
}
