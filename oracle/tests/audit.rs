//! Storage audits cannot be cheated or turned against the oracle, tried for real on
//! loopback: an endless answer is cut off, a redirect is not followed, an answer signed by
//! another key (a node announcing someone else's URL) fails, private addresses are not
//! contacted unless configured, and a node that holds 2 of the 3 contents it announces
//! earns less storage credit than one announcing only what it holds. A sponsorship sent
//! while a close runs is paid by it or refused, never accepted and left out. An unreachable
//! epoch keeps a holder's seniority; a wrong answer ends it. A node over iroh that never
//! finishes its answer is cut off at the challenge's deadline.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::routing::{any, post};
use dsi_api::oracle::{AuditOutcome, NodeAnnouncement};
use dsi_protocol::{ChunkId, ContentId, Epoch, NetworkId, NodeId, PayoutAccount, SecretKey};
use oracle::audit::{Auditor, challenge_node, client, is_public};
use support::*;

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Counts requests at every path and answers with an endless stream of 64 KiB pieces.
async fn endless_server(served: Arc<AtomicU64>, hits: Arc<AtomicU64>) -> String {
    serve(axum::Router::new().fallback(any(move || {
        let served = served.clone();
        hits.fetch_add(1, Ordering::SeqCst);
        async move {
            let piece = bytes::Bytes::from(vec![0u8; 64 * 1024]);
            let pieces = futures_util::stream::repeat_with(move || {
                served.fetch_add(piece.len() as u64, Ordering::Relaxed);
                Ok::<_, std::io::Error>(piece.clone())
            });
            Body::from_stream(pieces)
        }
    })))
    .await
}

fn node(key: &SecretKey, url: &str) -> NodeAnnouncement {
    NodeAnnouncement {
        node: key.node_id(),
        url: url.to_string(),
        payout: PayoutAccount([2; 20]),
        issued_at_ms: 0,
        expires_at_ms: u64::MAX,
        first_seen_ms: 0,
        contents: vec![ContentId([3; 32])],
        endpoint: None,
    }
}

async fn challenge(
    target: &NodeAnnouncement,
    chunks: &[(ChunkId, u32)],
    allow_private: bool,
) -> Vec<dsi_api::oracle::Audit> {
    challenge_at(target, None, chunks, allow_private).await
}

async fn challenge_at(
    target: &NodeAnnouncement,
    location: Option<dsi_protocol::reward::Location>,
    chunks: &[(ChunkId, u32)],
    allow_private: bool,
) -> Vec<dsi_api::oracle::Audit> {
    let http = client(Duration::from_secs(10), allow_private);
    let oracle_key = key(42);
    let network = NetworkId::default();
    let auditor = Auditor {
        dialer: None,
        client: &http,
        key: &oracle_key,
        network: &network,
        allow_private,
        timeout: Duration::from_secs(5),
    };
    challenge_node(&auditor, target, location, chunks, Epoch(1)).await
}

#[tokio::test]
async fn an_endless_audit_answer_is_cut_off_and_fails() {
    let (served, hits) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let url = endless_server(served.clone(), hits).await;
    let audits = challenge(&node(&key(1), &url), &[(ChunkId([4; 32]), 1 << 20)], true).await;
    assert_eq!(audits.len(), 1);
    assert_eq!(audits[0].outcome, AuditOutcome::WrongBytes, "{audits:?}");
    assert!(
        audits[0].detail.contains("longer than"),
        "{}",
        audits[0].detail
    );
    // Reading stopped past the 1 MiB asked for; what the server produced beyond is socket
    // buffers.
    let served = served.load(Ordering::Relaxed);
    assert!(served < 64 << 20, "the oracle pulled {served} bytes");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (served, hits) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let honest = endless_server(served, hits.clone()).await;
    let target = format!("{honest}/v1/audit");
    let redirecting = serve(axum::Router::new().route(
        "/v1/audit",
        post(move || {
            let target = target.clone();
            async move { axum::response::Redirect::temporary(&target) }
        }),
    ))
    .await;
    let audits = challenge(
        &node(&key(1), &redirecting),
        &[(ChunkId([4; 32]), 10)],
        true,
    )
    .await;
    assert_eq!(audits[0].outcome, AuditOutcome::Missing, "{audits:?}");
    assert!(audits[0].detail.contains("307"), "{}", audits[0].detail);
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect was followed");
}

#[tokio::test]
async fn an_answer_from_another_key_fails() {
    // The honest node (key 7) holds the chunk; a cheater (key 8) announces the honest
    // node's URL. The answer is signed by the key that holds the bytes, not the announcer.
    let (manifest, data) = content(3, 1);
    let chunk = manifest.chunks[0];
    let honest = chunk_server(key(7), data).await;
    let chunks = [(chunk, manifest.chunk_len(0))];
    let audits = challenge(&node(&key(8), &honest.url), &chunks, true).await;
    assert_eq!(audits[0].outcome, AuditOutcome::BadSignature, "{audits:?}");
    // The same server audited as itself passes.
    let audits = challenge(&node(&key(7), &honest.url), &chunks, true).await;
    assert_eq!(audits[0].outcome, AuditOutcome::Passed, "{audits:?}");
}

#[tokio::test]
async fn an_audit_goes_only_to_the_network_the_node_announced_from() {
    // The node announced from 127.0.5.0/24 (through a proxy there, say) but its URL names a
    // server elsewhere that answers for it: the audit does not go there, so one server
    // cannot hold a replica place in every network it can send an announcement from.
    use dsi_protocol::reward::Location;
    let (manifest, data) = content(3, 1);
    let chunk = manifest.chunks[0];
    let server = chunk_server(key(7), data).await;
    let chunks = [(chunk, manifest.chunk_len(0))];
    let elsewhere = Location::of([127, 0, 5, 1].into());
    let audits = challenge_at(&node(&key(7), &server.url), Some(elsewhere), &chunks, true).await;
    assert_eq!(audits[0].outcome, AuditOutcome::Unreachable, "{audits:?}");
    assert!(
        audits[0].detail.contains("outside 127.0.5.0/24"),
        "{}",
        audits[0].detail
    );
    // A name is resolved and the audit goes to its address in the network, with the
    // URL's own `Host` (a name-based virtual host in front of a node still routes it).
    let port = server.url.rsplit(':').next().expect("port");
    let named = format!("http://localhost:{port}");
    let home = Location::of([127, 0, 0, 1].into());
    for url in [server.url.as_str(), named.as_str()] {
        let audits = challenge_at(&node(&key(7), url), Some(home), &chunks, true).await;
        assert_eq!(audits[0].outcome, AuditOutcome::Passed, "{url}: {audits:?}");
    }
    assert_eq!(
        *server.hosts.lock().expect("hosts"),
        [format!("127.0.0.1:{port}"), format!("localhost:{port}")],
        "the audit outside the network reached nobody; the pinned ones kept their Host"
    );
}

#[tokio::test]
async fn private_addresses_are_not_contacted_unless_allowed() {
    let (served, hits) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let url = endless_server(served, hits.clone()).await;
    let port = url.rsplit(':').next().expect("port").to_string();
    for target in [
        url.clone(),
        format!("http://localhost:{port}"),
        format!("http://[::ffff:127.0.0.1]:{port}"),
        "http://169.254.169.254".to_string(),
        "http://10.0.0.1".to_string(),
    ] {
        let audits = challenge(&node(&key(1), &target), &[(ChunkId([4; 32]), 10)], false).await;
        assert_eq!(
            audits[0].outcome,
            AuditOutcome::Unreachable,
            "{target}: {audits:?}"
        );
        assert!(
            audits[0].detail.contains("public address"),
            "{target}: {}",
            audits[0].detail
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a private address was contacted"
    );
    for ip in ["8.8.8.8", "2606:4700::1111", "1.1.1.1"] {
        assert!(is_public(ip.parse().expect("ip")), "{ip}");
    }
    for ip in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:10.0.0.1",
        "224.0.0.1",
    ] {
        assert!(!is_public(ip.parse().expect("ip")), "{ip}");
    }
}

#[tokio::test]
async fn holding_two_of_three_announced_contents_earns_less_than_announcing_two() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("o.db").display());
    let state = oracle_at(&url, dir.path(), test_config()).await;
    let network = state.config.network.clone();
    let contents: Vec<_> = [40u8, 60, 80].map(|seed| content(seed, 4)).to_vec();
    for (manifest, _) in &contents {
        register(&state, manifest).await;
    }
    let held: HashMap<ChunkId, Vec<u8>> = contents[..2]
        .iter()
        .flat_map(|(_, data)| data.clone())
        .collect();
    let (cheater, honest) = (key(31), key(32));
    let cheater_server = chunk_server(cheater.clone(), held.clone()).await;
    let honest_server = chunk_server(honest.clone(), held).await;
    let ids: Vec<ContentId> = contents.iter().map(|(m, _)| m.content_id()).collect();
    for (node, server, contents) in [
        (&cheater, &cheater_server, ids.clone()),
        (&honest, &honest_server, ids[..2].to_vec()),
    ] {
        let reply = post_json(
            &state,
            "/v1/announce",
            announcement(node, &server.url, 1, contents, &network),
        )
        .await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    let live = state.store.live_nodes(now_ms()).await.expect("live");
    let locations = state
        .store
        .live_locations(now_ms())
        .await
        .expect("locations");
    let content_chunks = oracle::close::content_chunks(&state, &live)
        .await
        .expect("content chunks");
    let rounds = 40u64;
    let mut passes: HashMap<NodeId, u64> = HashMap::new();
    for _ in 0..rounds {
        let unfunded = std::collections::HashSet::new();
        let audits = oracle::audit::audit_nodes(
            &state,
            &live,
            &locations,
            &content_chunks,
            &unfunded,
            Epoch(1),
        )
        .await
        .expect("audits");
        for node in [cheater.node_id(), honest.node_id()] {
            let mine: Vec<_> = audits.iter().filter(|a| a.seeder == node).collect();
            assert_eq!(mine.len(), 3, "three chunks per audit");
            if mine.iter().all(|a| a.passed()) {
                *passes.entry(node).or_default() += 1;
            }
        }
    }
    // Storage credit of an epoch: every announced chunk if all audited chunks passed
    // (close.rs), else nothing.
    let honest_credit = passes[&honest.node_id()] * 8;
    let cheater_credit = passes.get(&cheater.node_id()).copied().unwrap_or(0) * 12;
    assert_eq!(honest_credit, rounds * 8, "the honest node always passes");
    // Expected: 12 * C(8,3)/C(12,3) = 3.05 chunks per epoch against the honest 8 (the chance that
    // 40 rounds give the cheater 27 or more passes, i.e. parity, is below 1e-6).
    assert!(
        cheater_credit < honest_credit,
        "cheater {cheater_credit} vs honest {honest_credit} over {rounds} epochs"
    );
    println!(
        "summary: over {rounds} audits the node holding 2 of 3 contents passed {} times \
         (storage credit {cheater_credit}), the honest node {} times (credit {honest_credit})",
        passes.get(&cheater.node_id()).copied().unwrap_or(0),
        passes[&honest.node_id()]
    );
}

/// A node that holds a large funded content and announces a one-chunk funded content it
/// does not hold (each funded content pays a replica the same, whatever its size) is caught
/// at every close: each funded content it announces gets a chunk of its challenge. With
/// three chunks drawn uniformly from all 201 it announces, it would pass 98.5 % of closes
/// and take the small content's replica share.
#[tokio::test]
async fn a_small_funded_content_announced_without_holding_it_fails_every_audit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("o.db").display());
    let state = oracle_at(&url, dir.path(), test_config()).await;
    let network = state.config.network.clone();
    let (large, large_data) = content(70, 200);
    let (small, small_data) = content(71, 1);
    for manifest in [&large, &small] {
        register(&state, manifest).await;
        fund(&state, &manifest.content_id(), []).await;
    }
    let (cheater, honest) = (key(33), key(34));
    let cheater_server = chunk_server(cheater.clone(), large_data.clone()).await;
    let mut both = large_data;
    both.extend(small_data);
    let honest_server = chunk_server(honest.clone(), both).await;
    let ids = vec![large.content_id(), small.content_id()];
    for (node, server) in [(&cheater, &cheater_server), (&honest, &honest_server)] {
        let reply = post_json(
            &state,
            "/v1/announce",
            announcement(node, &server.url, 1, ids.clone(), &network),
        )
        .await;
        assert_eq!(reply.status, 200);
    }
    let live = state.store.live_nodes(now_ms()).await.expect("live");
    let locations = state
        .store
        .live_locations(now_ms())
        .await
        .expect("locations");
    let content_chunks = oracle::close::content_chunks(&state, &live)
        .await
        .expect("content chunks");
    let funded: std::collections::HashSet<ContentId> = ids.iter().copied().collect();
    let small_chunk = small.chunks[0];
    for round in 0..20 {
        let audits = oracle::audit::audit_nodes(
            &state,
            &live,
            &locations,
            &content_chunks,
            &funded,
            Epoch(1),
        )
        .await
        .expect("audits");
        for node in [&cheater, &honest] {
            let mine: Vec<_> = audits
                .iter()
                .filter(|a| a.seeder == node.node_id())
                .collect();
            assert_eq!(
                mine.len(),
                3,
                "one chunk of each funded content, one more at random"
            );
            assert!(mine.iter().any(|a| a.chunk == small_chunk), "round {round}");
        }
        assert!(
            audits
                .iter()
                .filter(|a| a.seeder == cheater.node_id())
                .any(|a| !a.passed()),
            "round {round}: the cheater is caught"
        );
        assert!(
            audits
                .iter()
                .filter(|a| a.seeder == honest.node_id())
                .all(|a| a.passed()),
            "round {round}: the honest node passes"
        );
    }

    // Through a close: the cheater holds neither content's place.
    close_current(&state).await;
    let last = state
        .store
        .last_closed_epoch()
        .await
        .expect("store")
        .expect("closed");
    let file = state.batches_dir.join(oracle::close::batch_file_name(last));
    let batch = oracle::batch::decode_batch(&std::fs::read(file).expect("batch")).expect("decodes");
    for funded in &batch.inputs.contents {
        let holders: Vec<NodeId> = funded.holders.iter().map(|h| h.node).collect();
        assert_eq!(holders, vec![honest.node_id()], "{}", funded.content);
    }
}

/// Vetting counts only audits of funded content: a fresh key holding a little junk passes
/// its audits but is not vetted by them (that would make a stock of vetted keys free, and
/// throwing away a key with a bad reputation free again); a key holding funded content is.
#[tokio::test]
async fn only_audits_of_funded_content_vet_a_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("o.db").display());
    let state = oracle_at(&url, dir.path(), test_config()).await;
    let network = state.config.network.clone();
    let (junk, junk_data) = content(72, 4);
    // Seeds apart by 0x80: no chunk in common (a chunk of funded content vets, whatever
    // else names it).
    let (funded, funded_data) = content(72 ^ 0x80, 4);
    register(&state, &junk).await;
    register(&state, &funded).await;
    fund(&state, &funded.content_id(), []).await;
    let (junk_holder, funded_holder) = (key(35), key(36));
    let junk_server = chunk_server(junk_holder.clone(), junk_data).await;
    let funded_server = chunk_server(funded_holder.clone(), funded_data).await;
    for (node, server, content) in [
        (&junk_holder, &junk_server, junk.content_id()),
        (&funded_holder, &funded_server, funded.content_id()),
    ] {
        let reply = post_json(
            &state,
            "/v1/announce",
            announcement(node, &server.url, 1, vec![content], &network),
        )
        .await;
        assert_eq!(reply.status, 200);
    }
    close_current(&state).await;
    let last = state
        .store
        .last_closed_epoch()
        .await
        .expect("store")
        .expect("closed");
    let file = state.batches_dir.join(oracle::close::batch_file_name(last));
    let batch = oracle::batch::decode_batch(&std::fs::read(file).expect("batch")).expect("decodes");
    let vetted = |node: &SecretKey| {
        batch
            .inputs
            .seeders
            .iter()
            .find(|s| s.seeder == node.node_id())
            .map(|s| s.audits_passed)
    };
    let audits = state
        .store
        .audits(&junk_holder.node_id(), 10)
        .await
        .expect("audits");
    assert!(
        audits.len() == 3 && audits.iter().all(|a| a.passed()),
        "the junk holder passed its audits: {audits:?}"
    );
    assert_eq!(vetted(&junk_holder), Some(0), "junk vets nothing");
    assert_eq!(
        vetted(&funded_holder),
        Some(3),
        "three funded chunks passed"
    );
}

/// Announcements that fail their audits are not holders: fake keys announcing someone's
/// funded content cannot make it look common, take a replica's share or move rarity pay
/// away from it.
#[tokio::test]
async fn nodes_that_fail_audits_do_not_count_as_holders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/o.db", dir.path().display());
    let state = oracle_at(&url, dir.path(), test_config()).await;
    let network = state.config.network.clone();
    let (manifest, data) = content(90, 3);
    register(&state, &manifest).await;
    fund(&state, &manifest.content_id(), []).await;
    let honest = key(41);
    let server = chunk_server(honest.clone(), data).await;
    let announce = |node: &SecretKey, url: &str, payout: u8| {
        announcement(node, url, payout, vec![manifest.content_id()], &network)
    };
    post_json(&state, "/v1/announce", announce(&honest, &server.url, 41)).await;
    for n in 0..5u8 {
        // Fake announcers: nothing listens at these URLs.
        post_json(
            &state,
            "/v1/announce",
            announce(&key(100 + n), "http://127.0.0.1:9", n),
        )
        .await;
    }
    close_current(&state).await;
    let last = state
        .store
        .last_closed_epoch()
        .await
        .expect("store")
        .expect("closed");
    let file = state.batches_dir.join(oracle::close::batch_file_name(last));
    let batch = oracle::batch::decode_batch(&std::fs::read(file).expect("batch")).expect("decodes");
    let [funded] = &batch.inputs.contents[..] else {
        panic!("one funded content: {:?}", batch.inputs.contents);
    };
    let holders: Vec<NodeId> = funded.holders.iter().map(|h| h.node).collect();
    assert_eq!(
        holders,
        vec![honest.node_id()],
        "only the audited holder counts"
    );
}

/// A sponsorship of the epoch being closed, sent while the close runs, is either paid by
/// that close or refused as too late; never recorded and left out. The test holds the
/// ingest lock so that the close does everything it does before the lock (audits, name
/// lookups, reads), then sends the sponsorship, then lets go. (Before the fix, the close
/// read sponsorships before the lock and the handler took none: the sponsorship was
/// accepted and not paid.)
#[tokio::test]
async fn a_sponsorship_sent_during_a_close_is_paid_by_it_or_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/o.db", dir.path().display());
    let state = oracle_at(&url, dir.path(), test_config()).await;
    let network = state.config.network.clone();
    let (manifest, data) = content(91, 3);
    register(&state, &manifest).await;
    let holder = key(42);
    let server = chunk_server(holder.clone(), data).await;
    post_json(
        &state,
        "/v1/announce",
        announcement(
            &holder,
            &server.url,
            42,
            vec![manifest.content_id()],
            &network,
        ),
    )
    .await;

    let epoch = epoch_of(&state);
    let held = state.ingest_lock.lock().await;
    let closing = tokio::spawn({
        let state = state.clone();
        async move { close_current(&state).await }
    });
    // The close audits the holder, then waits for the lock.
    server.audited.notified().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sponsoring = tokio::spawn({
        let state = state.clone();
        let content = manifest.content_id();
        async move {
            call_with_headers(
                &state,
                "POST",
                "/v1/sponsors",
                serde_json::json!({
                    "content": content.to_string(),
                    "per_epoch": "777000000",
                    "epochs": 2,
                    "replicas": 1,
                    "first_epoch": epoch.0,
                })
                .to_string()
                .into_bytes(),
                &[
                    ("content-type", "application/json".to_string()),
                    ("authorization", format!("Bearer {TOKEN}")),
                ],
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(held);
    closing.await.expect("close");
    let reply = sponsoring.await.expect("sponsor");

    let file = state
        .batches_dir
        .join(oracle::close::batch_file_name(epoch));
    let batch = oracle::batch::decode_batch(&std::fs::read(file).expect("batch")).expect("decodes");
    let funded: Vec<_> = batch.inputs.contents.iter().map(|c| c.funding).collect();
    if reply.status == axum::http::StatusCode::OK {
        assert_eq!(
            funded,
            vec![dsi_protocol::reward::Funding::Sponsored {
                per_epoch: 777_000_000
            }],
            "an accepted sponsorship of the closing epoch is paid by it"
        );
    } else {
        assert_eq!(
            reply.code(),
            "bad_funding",
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert!(funded.is_empty(), "{funded:?}");
    }
}

/// One unreachable epoch (a restart, a flaky link, or a flood at close time) does not send
/// an honest holder to the back of the line for a network's replica place: its run keeps
/// its `since` through `audit.seniority_grace_epochs`, though it earns nothing that epoch.
/// An answer that disproves the holding (wrong bytes) ends the run at once.
#[tokio::test]
async fn an_unreachable_epoch_costs_only_its_own_seniority_and_a_wrong_answer_ends_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/o.db", dir.path().display());
    let mut config = test_config();
    config.epochs.length_ms = 3_000;
    config.audit.timeout_ms = 1_000;
    let state = oracle_at(&url, dir.path(), config).await;
    let network = state.config.network.clone();
    let (manifest, data) = content(92, 3);
    let cid = manifest.content_id();
    register(&state, &manifest).await;
    fund(&state, &cid, []).await;
    let holder = key(43);
    let server = chunk_server(holder.clone(), data).await;
    post_json(
        &state,
        "/v1/announce",
        announcement(&holder, &server.url, 43, vec![cid], &network),
    )
    .await;
    let run = |state: Arc<oracle::OracleState>| async move {
        let runs = state.store.held_since().await.expect("store");
        runs.iter()
            .find(|h| h.node == key(43).node_id() && h.content == content(92, 3).0.content_id())
            .map(|h| (h.since, h.proven))
    };
    let holders_in = |state: Arc<oracle::OracleState>, epoch: Epoch| async move {
        let file = state
            .batches_dir
            .join(oracle::close::batch_file_name(epoch));
        let batch =
            oracle::batch::decode_batch(&std::fs::read(file).expect("batch")).expect("decodes");
        batch
            .inputs
            .contents
            .iter()
            .flat_map(|c| c.holders.iter().map(|h| (h.node, h.since)))
            .collect::<Vec<_>>()
    };
    // Closes the current epoch (early: each close starts as its epoch does, and takes at
    // most the 1 s audit timeout of the 3 s epoch), then waits for the next one to start.
    let next_epoch = |state: Arc<oracle::OracleState>| async move {
        let epoch = epoch_of(&state);
        while epoch_of(&state) == epoch {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let close = |state: Arc<oracle::OracleState>| async move {
        let epoch = epoch_of(&state);
        close_current(&state).await;
        let closed = state.store.last_closed_epoch().await.expect("store");
        assert_eq!(closed, Some(epoch), "one epoch per close");
        next_epoch(state).await;
        epoch
    };

    next_epoch(state.clone()).await;
    let first = close(state.clone()).await;
    assert_eq!(run(state.clone()).await, Some((first, first)));

    // Unreachable for one epoch: the audit times out. No holder, the run goes on.
    let held = server.hold.write().await;
    let away = close(state.clone()).await;
    drop(held);
    assert_eq!(holders_in(state.clone(), away).await, vec![]);
    assert_eq!(run(state.clone()).await, Some((first, first)), "carried");

    // Back: a holder again, with its seniority less the epoch it missed (seniority counts
    // proven epochs: holding one epoch in four would otherwise keep the oldest `since`).
    let back = close(state.clone()).await;
    assert_eq!(back, Epoch(first.0 + 2), "consecutive epochs");
    let resumed = Epoch(first.0 + 1);
    assert_eq!(
        holders_in(state.clone(), back).await,
        vec![(holder.node_id(), resumed)]
    );
    assert_eq!(run(state.clone()).await, Some((resumed, back)));

    // Wrong bytes disprove the holding: the run ends, and the next proof starts a new one.
    server
        .corrupt
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let wrong = close(state.clone()).await;
    server
        .corrupt
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(holders_in(state.clone(), wrong).await, vec![]);
    assert_eq!(run(state.clone()).await, None, "disproven");
    let again = close(state.clone()).await;
    assert_eq!(
        holders_in(state.clone(), again).await,
        vec![(holder.node_id(), again)]
    );
}

/// A node over iroh that answers every stream with an error status and a body it never
/// finishes (QUIC keep-alives hold the connection open).
#[derive(Debug, Clone)]
struct StallingNode;

impl iroh::protocol::ProtocolHandler for StallingNode {
    async fn accept(
        &self,
        connection: iroh::endpoint::Connection,
    ) -> Result<(), iroh::protocol::AcceptError> {
        while let Ok((mut send, _recv)) = connection.accept_bi().await {
            tokio::spawn(async move {
                let head = b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 10000\r\n\r\n{";
                let _ = send.write_all(head).await;
                tokio::time::sleep(Duration::from_secs(3600)).await;
            });
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iroh_node_that_never_finishes_its_error_answer_is_cut_off_at_the_deadline() {
    // Left unbounded, one free key doing this would hold the audit round, and with it
    // every epoch close, for ever.
    let loopback = dsi_transport::EndpointConfig {
        relays: Vec::new(),
        bind: vec!["127.0.0.1:0".parse().expect("address")],
        ..dsi_transport::EndpointConfig::default()
    };
    let node_key = key(7);
    let endpoint = dsi_transport::bind(&node_key, &loopback, true)
        .await
        .expect("endpoint");
    let direct: Vec<String> = endpoint
        .addr()
        .ip_addrs()
        .map(ToString::to_string)
        .collect();
    let router = iroh::protocol::Router::builder(endpoint)
        .accept(dsi_transport::ALPN, StallingNode)
        .spawn();
    let mut target = node(
        &node_key,
        dsi_transport::peer_url(&node_key.node_id()).as_str(),
    );
    target.endpoint = Some(dsi_protocol::NodeEndpoint {
        relays: Vec::new(),
        direct,
    });
    let http = client(Duration::from_secs(10), true);
    let oracle_key = key(42);
    let dialer = dsi_transport::Dialer::new(oracle_key.clone(), &loopback).expect("dialer");
    let network = NetworkId::default();
    let auditor = Auditor {
        dialer: Some(&dialer),
        client: &http,
        key: &oracle_key,
        network: &network,
        allow_private: true,
        timeout: Duration::from_secs(2),
    };
    let chunks = [(ChunkId([4; 32]), 1024)];
    let audits = tokio::time::timeout(
        Duration::from_secs(60),
        challenge_node(&auditor, &target, None, &chunks, Epoch(1)),
    )
    .await
    .expect("the audit ended at its deadline");
    assert_eq!(audits.len(), 1);
    assert_eq!(audits[0].outcome, AuditOutcome::Unreachable, "{audits:?}");
    assert!(
        audits[0].detail.contains("audit.timeout_ms"),
        "{}",
        audits[0].detail
    );
    dialer.close().await;
    router.shutdown().await.expect("shutdown");
}
