//! # dsi-relay: the network's iroh relay
//!
//! Nodes that cannot reach each other directly (behind home routers or carrier-grade NAT)
//! exchange their QUIC packets through a relay, and use it to start hole punching. The
//! traffic stays end-to-end encrypted between the two node keys: the relay sees which node
//! ids talk and how much, never what. A DSI network runs its own relays (no public relay
//! of anyone else is used); nodes name them in `[iroh] relays` (`node-lite`).
//!
//! [`Relay::start`] serves the relay over plain HTTP (and WebSocket) on one address, with
//! an optional per-client rate limit, until [`Relay::shutdown`]. With [`Settings::qad`]
//! it also answers QUIC address discovery on a UDP address with a TLS certificate
//! ([`Qad`]; [`write_self_signed`] makes one): a node behind a home router learns there
//! the public address and port its router gives it, which is what lets two such nodes
//! punch holes to each other. Keys are free, so a relay
//! that carries every key carries anyone's traffic at its operator's cost: with
//! [`Settings::admit_from`] it carries only the keys the network's tracker vouches for
//! (`GET /v1/relay-access/{node}`: the oracle, nodes with a live announcement, downloaders
//! with credit), remembering each answer for a while ([`TrackerAccess`]). Put it behind a
//! TLS-terminating reverse proxy that passes WebSocket upgrades to hide relay metadata on
//! the wire (see `docs/ARCHITECTURE.md`, "Relays").

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use dsi_protocol::NodeId;
use dsi_service::OracleClient;
use iroh_relay::server::{
    Access, AccessControl, ClientRateLimit, ClientRequest, RelayConfig, Server, ServerConfig,
};

/// What a relay serves.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The HTTP address (port 0: any free port).
    pub listen: SocketAddr,
    /// Bytes per second one client may send through the relay; `None`: no limit.
    pub client_bytes_per_sec: Option<NonZeroU32>,
    /// How many node keys the relay remembers (bounds its memory).
    pub key_cache: usize,
    /// The tracker (oracle) whose `GET /v1/relay-access/{node}` decides which keys the
    /// relay carries; `None`: every key.
    pub admit_from: Option<String>,
    /// QUIC address discovery, `None`: off. A node behind a home router learns there the
    /// public address and port its router gives its UDP socket, and offers it to peers, so
    /// that two such nodes can punch holes to each other; without it only a node with a
    /// public address can be reached directly.
    pub qad: Option<Qad>,
}

/// Where a relay answers QUIC address discovery, and the TLS certificate it shows (QUIC
/// needs TLS; nodes check the certificate against their roots and `iroh.relay_ca_file`).
/// Its `Debug` leaves the key out.
#[derive(Clone)]
pub struct Qad {
    /// The UDP address (port 0: any free port).
    pub listen: SocketAddr,
    /// The certificate chain, leaf first (DER).
    pub certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The private key of the leaf.
    pub key: Arc<rustls::pki_types::PrivateKeyDer<'static>>,
}

impl std::fmt::Debug for Qad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qad")
            .field("listen", &self.listen)
            .field("certs", &self.certs.len())
            .finish_non_exhaustive()
    }
}

impl Qad {
    /// Reads the certificate chain and key from PEM files (`--tls-cert`, `--tls-key`; the
    /// key as PKCS#8, PKCS#1 or SEC1, as certbot, acme.sh and lego write them).
    pub fn from_pem_files(
        listen: SocketAddr,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> anyhow::Result<Self> {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("reading the certificates in {}", cert.display()))?;
        anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", cert.display());
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).with_context(|| {
            format!(
                "reading a private key (PEM: PKCS#8, PKCS#1 or SEC1) in {}",
                key.display()
            )
        })?;
        Ok(Self {
            listen,
            certs,
            key: Arc::new(key),
        })
    }

    fn server_config(&self) -> anyhow::Result<rustls::ServerConfig> {
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 with ring")?
        .with_no_client_auth()
        .with_single_cert(self.certs.clone(), self.key.clone_key())
        .context(
            "the QUIC address discovery certificate and key do not go together, or the key's \
             type is not supported (RSA, ECDSA P-256 or P-384, Ed25519)",
        )
    }
}

/// A self-signed certificate for `names` (host names or IP addresses nodes reach the relay
/// at) and its key, both PEM: the certificate for nodes' `iroh.relay_ca_file`, the key
/// for the relay only.
pub fn self_signed(names: &[String]) -> anyhow::Result<(String, String)> {
    anyhow::ensure!(
        !names.is_empty(),
        "name the host names or addresses nodes reach the relay at"
    );
    let cert = rcgen::generate_simple_self_signed(names.to_vec())
        .context("making a self-signed certificate")?;
    Ok((cert.cert.pem(), cert.signing_key.serialize_pem()))
}

/// [`self_signed`] written to `dir/relay-cert.pem` and `dir/relay-key.pem` (the key
/// readable by its owner only; neither file is overwritten); returns their paths.
pub fn write_self_signed(
    dir: &std::path::Path,
    names: &[String],
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (cert_pem, key_pem) = self_signed(names)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (cert, key) = (dir.join("relay-cert.pem"), dir.join("relay-key.pem"));
    for path in [&cert, &key] {
        anyhow::ensure!(
            !path.exists(),
            "{} exists: nothing written (an existing certificate or key is kept)",
            path.display()
        );
    }
    // Both are written under temporary names, then linked into place (a link never
    // replaces a file), so a failure leaves no key without its certificate.
    let temporary = |path: &std::path::Path| {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".tmp-{}", std::process::id()));
        std::path::PathBuf::from(name)
    };
    let pairs = [(&key, &key_pem, 0o600), (&cert, &cert_pem, 0o644)];
    let written = pairs.iter().try_for_each(|(path, text, mode)| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(*mode)
            .open(temporary(path))
            .and_then(|mut file| {
                file.write_all(text.as_bytes())
                    .and_then(|()| file.sync_all())
            })
            .with_context(|| format!("writing {}", temporary(path).display()))
    });
    let placed = written.and_then(|()| {
        std::fs::hard_link(temporary(&key), &key)
            .with_context(|| format!("placing {}", key.display()))?;
        std::fs::hard_link(temporary(&cert), &cert).map_err(|e| {
            let _ = std::fs::remove_file(&key);
            anyhow::Error::from(e).context(format!("placing {}", cert.display()))
        })
    });
    for (path, _, _) in pairs {
        let _ = std::fs::remove_file(temporary(path));
    }
    placed?;
    Ok((cert, key))
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3340)),
            client_bytes_per_sec: None,
            key_cache: 65_536,
            admit_from: None,
            qad: None,
        }
    }
}

/// A running relay.
#[derive(Debug)]
pub struct Relay {
    server: Server,
    address: SocketAddr,
    /// Learning the tracker's key (with `admit_from`), stopped with the relay.
    learning: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    /// Starts a relay with `settings`.
    pub async fn start(settings: &Settings) -> anyhow::Result<Self> {
        let mut relay = RelayConfig::new(settings.listen);
        relay.key_cache_capacity = Some(settings.key_cache);
        relay.limits.client_rx = settings.client_bytes_per_sec.map(ClientRateLimit::new);
        let mut learning = None;
        if let Some(tracker) = &settings.admit_from {
            let access = Arc::new(TrackerAccess::new(tracker, settings.key_cache)?);
            learning = Some(tokio::spawn({
                let access = access.clone();
                async move { access.learn_oracle().await }
            }));
            relay.access = access;
        }
        let mut config = ServerConfig::default();
        config.relay = Some(relay);
        if let Some(qad) = &settings.qad {
            let mut quic = iroh_relay::server::QuicConfig::new(qad.listen);
            quic.server_config = Some(qad.server_config()?);
            config.quic = Some(quic);
        }
        let server = Server::spawn(config)
            .await
            .with_context(|| format!("starting the relay on {}", settings.listen))?;
        let address = server
            .http_addr()
            .context("the relay server has no HTTP address")?;
        if !address.ip().is_loopback() {
            tracing::warn!(%address, "relay listening beyond loopback, as configured");
        }
        Ok(Self {
            server,
            address,
            learning,
        })
    }

    /// The UDP address of its QUIC address discovery, if on.
    pub fn qad_address(&self) -> Option<SocketAddr> {
        self.server.quic_addr()
    }

    /// The address it serves on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The URL nodes name in `[iroh] relays` (when reached directly, without a proxy).
    pub fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    /// Stops the relay.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        if let Some(learning) = &self.learning {
            learning.abort();
        }
        self.server.shutdown().await.context("stopping the relay")?;
        Ok(())
    }
}

/// How long an admission is fresh (a key that loses its standing keeps relaying at most
/// this long; its open connection is not cut). A stale admission still stands in while the
/// tracker is busy or silent.
pub const ADMITTED_FOR: Duration = Duration::from_secs(300);

/// How long a refusal is remembered (a node that has just announced waits at most this
/// long for the relay to carry it).
pub const REFUSED_FOR: Duration = Duration::from_secs(5);

/// Refusals remembered at most (fresh keys are free: past this, refusals are not
/// remembered, and admissions are never pushed out by them).
pub const MAX_REMEMBERED_REFUSALS: usize = 4096;

/// How long the relay waits for the tracker's answer before refusing.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Lookups at the tracker in flight at once (a flood of fresh keys costs the tracker at
/// most this many requests at once).
pub const MAX_LOOKUPS: usize = 16;

/// How long a key waits for a lookup place before it is refused as "busy" (a passing
/// refusal: its endpoint asks again).
pub const LOOKUP_QUEUE_WAIT: Duration = Duration::from_secs(1);

/// Carries only the keys a tracker vouches for (`GET /v1/relay-access/{node}`), and always
/// the tracker's own key (`GET /v1/info`, learnt at start). Admissions are remembered for
/// at most `capacity` keys (the oldest forgotten first), fresh for [`ADMITTED_FOR`];
/// refusals for [`REFUSED_FOR`], at most [`MAX_REMEMBERED_REFUSALS`]. A key the tracker
/// cannot answer for (busy, unreachable, an unreadable answer) is carried if it was
/// admitted before, else refused with a passing reason.
#[derive(Debug)]
pub struct TrackerAccess {
    tracker: OracleClient,
    capacity: usize,
    oracle: std::sync::OnceLock<NodeId>,
    answers: Mutex<Answers>,
    lookups: tokio::sync::Semaphore,
}

/// What a [`TrackerAccess`] remembers.
#[derive(Debug, Default)]
struct Answers {
    admitted: HashMap<NodeId, Instant>,
    /// Admissions in the order they were made (entries whose key was admitted again later
    /// are skipped when forgetting).
    order: std::collections::VecDeque<(NodeId, Instant)>,
    refused: HashMap<NodeId, Instant>,
}

/// What a [`TrackerAccess`] decided about a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Carried.
    Admitted,
    /// The tracker does not vouch for it.
    NotAdmitted,
    /// The tracker did not answer in time, and the key was never admitted.
    TrackerUnavailable,
}

impl TrackerAccess {
    /// Asks `tracker` (an `http://` or `https://` URL) about each key, remembering at most
    /// `capacity` admissions.
    pub fn new(tracker: &str, capacity: usize) -> anyhow::Result<Self> {
        let tracker = OracleClient::with_timeout(tracker, LOOKUP_TIMEOUT)
            .map_err(|e| anyhow::anyhow!("--admit-from: {e}"))?;
        Ok(Self {
            tracker,
            capacity: capacity.max(1),
            oracle: std::sync::OnceLock::new(),
            answers: Mutex::default(),
            lookups: tokio::sync::Semaphore::new(MAX_LOOKUPS),
        })
    }

    /// Learns the tracker's own key (`GET /v1/info`), asking every 5 s until it answers:
    /// the oracle is then carried whatever the tracker's load.
    pub async fn learn_oracle(&self) {
        loop {
            match self.tracker.info().await {
                Ok(info) => {
                    tracing::info!(oracle = %info.oracle.short(), "carrying the network's oracle");
                    let _ = self.oracle.set(info.oracle);
                    return;
                }
                Err(e) => {
                    tracing::warn!("the tracker's key is not known yet: {e}");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    }

    /// Whether `node` may use the relay.
    pub async fn decide(&self, node: NodeId) -> Decision {
        if self.oracle.get() == Some(&node) {
            return Decision::Admitted;
        }
        let now = Instant::now();
        let (fresh, admitted_before) = self.remembered(&node, now);
        if let Some(decision) = fresh {
            return decision;
        }
        let unavailable = || {
            if admitted_before {
                Decision::Admitted
            } else {
                Decision::TrackerUnavailable
            }
        };
        let Ok(Ok(_lookup)) = tokio::time::timeout(LOOKUP_QUEUE_WAIT, self.lookups.acquire()).await
        else {
            tracing::debug!(node = %node.short(), "tracker lookups all busy");
            return unavailable();
        };
        match self.tracker.relay_access(&node).await {
            Ok(answer) if answer.node != node => {
                tracing::warn!(node = %node.short(), "the tracker answered for another key");
                unavailable()
            }
            Ok(answer) => {
                tracing::debug!(node = %node.short(), allowed = answer.allowed, reason = %answer.reason, "relay access");
                self.remember(node, answer.allowed, Instant::now());
                if answer.allowed {
                    Decision::Admitted
                } else {
                    Decision::NotAdmitted
                }
            }
            Err(e) => {
                tracing::warn!(node = %node.short(), "no answer from the tracker: {e}");
                unavailable()
            }
        }
    }

    /// The remembered decision about `node` if still fresh, and whether it was ever
    /// admitted (and not forgotten or refused since).
    fn remembered(&self, node: &NodeId, now: Instant) -> (Option<Decision>, bool) {
        let answers = self
            .answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(at) = answers.refused.get(node)
            && now.saturating_duration_since(*at) < REFUSED_FOR
        {
            return (Some(Decision::NotAdmitted), false);
        }
        match answers.admitted.get(node) {
            Some(at) if now.saturating_duration_since(*at) < ADMITTED_FOR => {
                (Some(Decision::Admitted), true)
            }
            Some(_) => (None, true),
            None => (None, false),
        }
    }

    fn remember(&self, node: NodeId, allowed: bool, now: Instant) {
        let mut answers = self
            .answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if allowed {
            answers.refused.remove(&node);
            answers.admitted.insert(node, now);
            answers.order.push_back((node, now));
            // Forget the oldest admissions past the capacity (and order entries made stale
            // by a later admission of the same key).
            while answers.admitted.len() > self.capacity
                || answers.order.len() > self.capacity.saturating_mul(2)
            {
                let Some((old, at)) = answers.order.pop_front() else {
                    break;
                };
                if answers.admitted.get(&old) == Some(&at) {
                    answers.admitted.remove(&old);
                }
            }
        } else {
            answers.admitted.remove(&node);
            if answers.refused.len() >= MAX_REMEMBERED_REFUSALS {
                answers
                    .refused
                    .retain(|_, at| now.saturating_duration_since(*at) < REFUSED_FOR);
            }
            if answers.refused.len() < MAX_REMEMBERED_REFUSALS {
                answers.refused.insert(node, now);
            }
        }
    }
}

impl AccessControl for TrackerAccess {
    async fn on_connect(&self, request: &ClientRequest) -> Access {
        match self.decide(NodeId(*request.endpoint_id().as_bytes())).await {
            Decision::Admitted => Access::Allow,
            Decision::NotAdmitted => Access::Deny {
                reason: Some(dsi_api::RELAY_NOT_ADMITTED.into()),
            },
            Decision::TrackerUnavailable => Access::Deny {
                reason: Some("the network's tracker did not answer in time; try again".into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn admissions_outlive_refusals_and_stay_within_the_cache() {
        let access = TrackerAccess::new("http://127.0.0.1:9/", 2).unwrap();
        let (a, b, c) = (NodeId([1; 32]), NodeId([2; 32]), NodeId([3; 32]));
        let start = Instant::now();
        access.remember(a, true, start);
        access.remember(b, false, start);
        assert_eq!(
            access.remembered(&a, start),
            (Some(Decision::Admitted), true)
        );
        assert_eq!(
            access.remembered(&b, start),
            (Some(Decision::NotAdmitted), false)
        );
        // A refusal is asked again sooner than an admission; a stale admission is still
        // known (it stands in while the tracker cannot answer).
        let later = start + REFUSED_FOR;
        assert_eq!(access.remembered(&b, later), (None, false));
        assert_eq!(
            access.remembered(&a, later),
            (Some(Decision::Admitted), true)
        );
        assert_eq!(access.remembered(&a, start + ADMITTED_FOR), (None, true));
        // Refusals never push admissions out; past the capacity the oldest admission goes.
        for n in 0..100u8 {
            access.remember(NodeId([100 + n; 32]), false, later);
        }
        assert!(access.remembered(&a, later).1);
        access.remember(c, true, later);
        access.remember(b, true, later + Duration::from_secs(1));
        assert_eq!(
            access.remembered(&a, later),
            (None, false),
            "the oldest was kept"
        );
        assert!(access.remembered(&c, later).1);
        assert_eq!(access.answers.lock().unwrap().admitted.len(), 2);
        // A key admitted again is not forgotten for its older admission.
        access.remember(c, true, later + Duration::from_secs(2));
        access.remember(a, true, later + Duration::from_secs(3));
        assert!(access.remembered(&c, later).1, "readmitted key forgotten");
        assert!(!access.remembered(&b, later).1);
    }

    #[tokio::test]
    async fn an_unreachable_tracker_refuses_newcomers_for_now_and_keeps_known_keys() {
        // Port 9 (discard) on loopback: nothing listens.
        let access = TrackerAccess::new("http://127.0.0.1:9/", 16).unwrap();
        let (known, newcomer) = (NodeId([7; 32]), NodeId([8; 32]));
        access.remember(known, true, Instant::now() - ADMITTED_FOR);
        assert_eq!(access.decide(known).await, Decision::Admitted);
        assert_eq!(access.decide(newcomer).await, Decision::TrackerUnavailable);
        assert_eq!(access.remembered(&newcomer, Instant::now()), (None, false));
    }

    #[tokio::test]
    async fn busy_lookups_refuse_newcomers_for_now_and_keep_known_keys() {
        let access = TrackerAccess::new("http://127.0.0.1:9/", 16).unwrap();
        let _all = access
            .lookups
            .acquire_many(MAX_LOOKUPS as u32)
            .await
            .unwrap();
        let (known, newcomer) = (NodeId([7; 32]), NodeId([8; 32]));
        access.remember(known, true, Instant::now() - ADMITTED_FOR);
        assert_eq!(access.decide(known).await, Decision::Admitted);
        assert_eq!(access.decide(newcomer).await, Decision::TrackerUnavailable);
    }

    #[test]
    fn a_tracker_that_is_not_an_http_url_is_refused_naming_the_flag() {
        let error = TrackerAccess::new("ftp://tracker", 16).unwrap_err();
        assert!(format!("{error:#}").contains("--admit-from"), "{error:#}");
    }
}
