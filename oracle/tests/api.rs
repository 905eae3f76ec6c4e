//! Handler tests through `router(state).oneshot(...)`: every endpoint and every rejection
//! rule, on SQLite and (when configured) a real PostgreSQL server.

mod support;

use axum::http::StatusCode;
use dsi_protocol::merkle::{Keccak256, verify};
use dsi_protocol::{ContentId, Epoch, NetworkId, RewardLeaf, SignedReceipt};
use oracle::batch::{decode_batch, verify_batch};
use support::*;

/// Free keys announcing from one network (to make every close audit them all, or to hold
/// many replica places) are bounded per network location, which is the network the
/// announcement's connection came from, whatever the URL says.
#[tokio::test]
async fn a_network_holds_a_bounded_number_of_live_keys_located_by_source_address() {
    use dsi_protocol::reward::Location;
    use std::net::{IpAddr, SocketAddr};
    let dir = tempfile::tempdir().expect("tempdir");
    for url in backends(dir.path()).await {
        let mut config = test_config();
        config.tracker.max_nodes_per_location = 3;
        let state = oracle_at(&url, dir.path(), config).await;
        let network = state.config.network.clone();
        let from = |c: u8| SocketAddr::from(([127, 0, c, 9], 50_000));
        let announce_url = |n: u8, peer: SocketAddr, url: String| {
            let state = state.clone();
            let network = network.clone();
            async move {
                let body = serde_json::to_vec(&announcement(&key(n), &url, n, vec![], &network))
                    .expect("json");
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                call_from(&state, peer, "POST", "/v1/announce", body, &[]).await
            }
        };
        // Each URL names host .1 of the sender's /24.
        let announce = |n: u8, peer: SocketAddr| {
            let [a, b, c, _] = match peer.ip() {
                IpAddr::V4(v4) => v4.octets(),
                IpAddr::V6(_) => unreachable!("IPv4 peers only"),
            };
            announce_url(n, peer, format!("http://{a}.{b}.{c}.1:9"))
        };
        // A URL outside the network the announcement comes from is refused: audits go only
        // inside it, so announcing through a proxy in another network takes no place there.
        let outside = announce_url(9, from(5), "http://127.0.77.1:9".into()).await;
        assert_eq!(outside.status, StatusCode::BAD_REQUEST, "{url}");
        assert_eq!(outside.code(), "url_outside_source");
        let message = outside.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            message.contains("127.0.77.1") && message.contains("127.0.5.0/24"),
            "{message}"
        );
        // A name resolving into the network is fine (localhost: 127.0.0.1, from 127.0.0.9).
        let named = announce_url(9, from(0), "http://localhost:9".into()).await;
        assert_eq!(named.status, StatusCode::OK, "{url}: {:?}", named.json());
        for n in 1..=3 {
            assert_eq!(announce(n, from(5)).await.status, StatusCode::OK, "{url}");
        }
        // A fourth key from the same /24 (another host in it) is refused, with a JSON
        // error naming the network and the setting.
        let refused = announce(4, SocketAddr::from(([127, 0, 5, 200], 1))).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{url}");
        assert_eq!(refused.code(), "location_full");
        let message = refused.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            message.contains("127.0.5.0/24") && message.contains("max_nodes_per_location"),
            "{message}"
        );
        // Keys already live there renew; the refused key is stored nowhere.
        assert_eq!(announce(1, from(5)).await.status, StatusCode::OK);
        let live = state.store.live_nodes(now_ms()).await.expect("live");
        assert_eq!(
            live.len(),
            4,
            "{url}: three keys at 127.0.5.0/24 and key 9; the refused key is not live"
        );
        // Another network takes it; a key moving away frees its place.
        assert_eq!(announce(4, from(6)).await.status, StatusCode::OK);
        assert_eq!(announce(3, from(6)).await.status, StatusCode::OK);
        assert_eq!(announce(5, from(5)).await.status, StatusCode::OK);
        assert_eq!(announce(6, from(5)).await.code(), "location_full");

        // The close counts replicas by where each key announced from.
        let locations = state
            .store
            .live_locations(now_ms())
            .await
            .expect("locations");
        let at = |c: u8| Location::of(IpAddr::from([127, 0, c, 1]));
        assert_eq!(locations.get(&key(1).node_id()), Some(&at(5)));
        assert_eq!(locations.get(&key(3).node_id()), Some(&at(6)));
        assert_eq!(locations.get(&key(4).node_id()), Some(&at(6)));
        assert_eq!(locations.get(&key(5).node_id()), Some(&at(5)));
        assert_eq!(
            locations.len(),
            6,
            "keys 1 to 5 and key 9 (at 127.0.0.0/24)"
        );

        // In a full network a key takes the place of one the newest close did not prove
        // (it failed an audit there, or was not audited) with no more vetting credit than
        // its own, the newest among equals. A key that passed every audit of that close,
        // or awaits its first audit, keeps its place whatever the newcomer's credit: a
        // holder is never pushed out, a newcomer gets its first audit, squatters that
        // fail give way. Credit counts passed audits of funded content, at most
        // `audit.chunks_per_node` (3) an epoch.
        let funded_chunk = dsi_protocol::ChunkId([0xf0; 32]);
        let audit = |n: u8, epoch: u64, chunk: dsi_protocol::ChunkId, passed: bool| {
            dsi_api::oracle::Audit {
                epoch: Epoch(epoch),
                seeder: key(n).node_id(),
                chunk,
                outcome: if passed {
                    dsi_api::oracle::AuditOutcome::Passed
                } else {
                    dsi_api::oracle::AuditOutcome::Missing
                },
                detail: String::new(),
                at_ms: 1,
            }
        };
        let close = |epoch: u64,
                     audits: Vec<dsi_api::oracle::Audit>,
                     leaves: Vec<dsi_api::oracle::Leaf>| {
            let state = state.clone();
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                state
                    .store
                    .record_close(&oracle::store::EpochClose {
                        record: dsi_api::oracle::ClosedEpoch {
                            epoch: Epoch(epoch),
                            status: dsi_api::oracle::EpochStatus::Closed,
                            root: [1; 32],
                            total: 0,
                            seeders: 0,
                            receipts: 0,
                            batch_content_id: ContentId([1; 32]),
                            batch_file: format!("epoch-{epoch:08}.batch"),
                            closed_at_ms: now_ms(),
                            close_duration_ms: 1,
                        },
                        leaves,
                        seeders: Vec::new(),
                        scores: Vec::new(),
                        audits,
                        funded_chunks: [funded_chunk].into(),
                        debits: Vec::new(),
                        draws: Vec::new(),
                        held: Vec::new(),
                    })
                    .await
                    .expect("record close");
            }
        };
        let other_chunk = dsi_protocol::ChunkId([0x0f; 32]);
        // Close 1: at 127.0.5.0/24 key 1 passed, key 2 failed, key 5 was not audited; keys
        // 7 and 12 (elsewhere) passed five funded audits in each of epochs 1 and 2.
        let mut audits = vec![
            audit(1, 1, other_chunk, true),
            audit(2, 1, other_chunk, false),
        ];
        for n in [7, 12] {
            audits.extend((0..10).map(|i| audit(n, 1 + i / 5, funded_chunk, true)));
        }
        close(1, audits, Vec::new()).await;
        let credit = state
            .store
            .funded_audits_passed(&key(7).node_id(), 3)
            .await
            .expect("credit");
        assert_eq!(
            credit, 6,
            "{url}: five passed audits in each of two epochs, three count"
        );
        let live_set = || {
            let state = state.clone();
            async move {
                state
                    .store
                    .live_nodes(now_ms())
                    .await
                    .expect("live")
                    .iter()
                    .map(|n| n.node)
                    .collect::<std::collections::HashSet<_>>()
            }
        };
        // A fresh key takes the place of the newest unproven key (5, not 2).
        assert_eq!(announce(8, from(5)).await.status, StatusCode::OK, "{url}");
        let live = live_set().await;
        assert!(
            live.contains(&key(8).node_id()) && !live.contains(&key(5).node_id()),
            "{url}"
        );
        // A key with credit takes the failed key's place, not the fresh key's (its first
        // audit is still to come) nor the proven key's (its credit is 0).
        assert_eq!(announce(7, from(5)).await.status, StatusCode::OK, "{url}");
        let live = live_set().await;
        for n in [1, 8, 7] {
            assert!(live.contains(&key(n).node_id()), "{url}: key {n}");
        }
        assert!(
            !live.contains(&key(2).node_id()),
            "{url}: key 2 failed its audit"
        );
        // Now every key there is proven or new: another key with credit is refused.
        let refused = announce(12, from(5)).await;
        assert_eq!(refused.code(), "location_full", "{url}");
        assert!(
            refused.json()["message"]
                .as_str()
                .is_some_and(|m| m.contains("first audit")),
            "{url}"
        );
        // Close 2 proves keys 8 and 7; key 1 was not audited and gives way to the key that
        // failed before (same credit, 0), which in turn, unproven since, gives way to key
        // 12. Then every key there is proven or new, and a fresh key is refused.
        // Key 1 earned in epoch 2 (a leaf): its record outlives its announcement, so
        // receipts that arrive late still find its payout account.
        let leaf = dsi_api::oracle::Leaf {
            epoch: Epoch(2),
            seeder: key(1).node_id(),
            payout: dsi_protocol::PayoutAccount([1; 20]),
            amount: 5,
            cumulative: 5,
            bandwidth_amount: 5,
            storage_amount: 0,
            bytes_served: 1,
            receipts: 1,
            reputation: 1_000_000,
            proof: Vec::new(),
        };
        close(
            2,
            vec![
                audit(8, 2, other_chunk, true),
                audit(7, 2, funded_chunk, true),
            ],
            vec![leaf],
        )
        .await;
        assert_eq!(announce(2, from(5)).await.status, StatusCode::OK, "{url}");
        assert!(
            !live_set().await.contains(&key(1).node_id()),
            "{url}: key 1 went unproven"
        );
        assert_eq!(announce(12, from(5)).await.status, StatusCode::OK, "{url}");
        let live = live_set().await;
        assert!(
            !live.contains(&key(2).node_id()),
            "{url}: key 2 is still unproven"
        );
        for n in [8, 7, 12] {
            assert!(live.contains(&key(n).node_id()), "{url}: key {n}");
        }
        assert_eq!(announce(13, from(5)).await.code(), "location_full", "{url}");

        // Expired announcements are forgotten at a close (abandoned keys do not grow the
        // database); live ones stay.
        let live_before = state.store.live_nodes(now_ms()).await.expect("live").len();
        let pruned = state
            .store
            .prune_expired_nodes(now_ms(), Epoch(2))
            .await
            .expect("prune");
        assert_eq!(
            pruned, 2,
            "{url}: keys 5 and 2, which gave way (key 1 earned)"
        );
        assert!(
            state
                .store
                .node(&key(1).node_id())
                .await
                .expect("node")
                .is_some(),
            "{url}: a key that earned keeps its record"
        );
        assert!(
            state
                .store
                .node(&key(5).node_id())
                .await
                .expect("node")
                .is_none(),
            "{url}"
        );
        let live_after = state.store.live_nodes(now_ms()).await.expect("live").len();
        assert_eq!(live_before, live_after, "{url}");
    }

    // On a network that does not allow private addresses, a loopback source has no
    // location (it holds no replica place), and such nodes share one bound.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config();
    config.audit.allow_private_addresses = false;
    config.tracker.max_nodes_per_location = 2;
    let state = oracle_at(
        &format!("sqlite://{}", dir.path().join("oracle.db").display()),
        dir.path(),
        config,
    )
    .await;
    let network = state.config.network.clone();
    for n in 1..=3u8 {
        let body = serde_json::to_vec(&announcement(
            &key(n),
            "http://198.51.100.7:9",
            n,
            vec![],
            &network,
        ))
        .expect("json");
        let reply = call_from(
            &state,
            SocketAddr::from(([10, 0, n, 1], 1)),
            "POST",
            "/v1/announce",
            body,
            &[],
        )
        .await;
        if n <= 2 {
            assert_eq!(reply.status, StatusCode::OK);
        } else {
            assert_eq!(reply.code(), "location_full");
        }
    }
    assert!(
        state
            .store
            .live_locations(now_ms())
            .await
            .expect("locations")
            .is_empty()
    );
}

#[tokio::test]
async fn announced_urls_are_plain_http_and_names_resolve_a_bounded_number_at_once() {
    use std::net::SocketAddr;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config();
    // No slot at all: every name is refused, an address needs none.
    config.tracker.max_concurrent_resolutions = 0;
    let state = oracle_at(
        &format!("sqlite://{}", dir.path().join("oracle.db").display()),
        dir.path(),
        config,
    )
    .await;
    let network = state.config.network.clone();
    let announce = |n: u8, url: &str| {
        let state = state.clone();
        let body =
            serde_json::to_vec(&announcement(&key(n), url, n, vec![], &network)).expect("json");
        async move {
            call_from(
                &state,
                SocketAddr::from(([127, 0, 0, 9], 1)),
                "POST",
                "/v1/announce",
                body,
                &[],
            )
            .await
        }
    };
    let busy = announce(1, "http://localhost:9").await;
    assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(busy.code(), "resolver_busy");
    assert!(
        busy.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_concurrent_resolutions")),
        "{:?}",
        busy.json()
    );
    assert_eq!(
        announce(1, "http://127.0.0.1:9").await.status,
        StatusCode::OK
    );
    // https is refused at once: audits and downloads do not speak TLS.
    let tls = announce(2, "https://127.0.0.1:9").await;
    assert_eq!(tls.code(), "bad_url");
    assert!(
        tls.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("plain http")),
        "{:?}",
        tls.json()
    );
}

#[tokio::test]
async fn tracker_announce_manifests_and_peers() {
    let dir = tempfile::tempdir().expect("tempdir");
    for url in backends(dir.path()).await {
        let state = oracle_at(&url, dir.path(), test_config()).await;
        let network = state.config.network.clone();
        let (manifest, _) = content(1, 3);
        let cid = manifest.content_id();
        let node = key(1);

        // Unknown content: the tracker asks for the manifest.
        let reply = post_json(
            &state,
            "/v1/announce",
            announcement(&node, "http://127.0.0.1:9", 1, vec![cid], &network),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{url}");
        assert_eq!(reply.json()["unknown_contents"][0], cid.to_string());
        assert_eq!(
            get(&state, &format!("/v1/content/{cid}/peers"))
                .await
                .code(),
            "unknown_content"
        );

        register(&state, &manifest).await;
        let again = post_manifest(&state, manifest.to_bytes(), &registrant()).await;
        assert_eq!(
            again.json()["new"],
            false,
            "registering twice stores nothing twice"
        );
        let bytes = get(&state, &format!("/v1/content/{cid}/manifest")).await;
        assert_eq!(bytes.body, manifest.to_bytes());
        let bad = post_manifest(&state, b"not a manifest".to_vec(), &registrant()).await;
        assert_eq!(
            (bad.status, bad.code().as_str()),
            (StatusCode::BAD_REQUEST, "bad_manifest")
        );

        // Renewed: now known, and listed as a peer.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let reply = post_json(
            &state,
            "/v1/announce",
            announcement(&node, "http://127.0.0.1:9", 1, vec![cid], &network),
        )
        .await;
        assert_eq!(
            reply.json()["unknown_contents"].as_array().map(Vec::len),
            Some(0)
        );
        let peers = get(&state, &format!("/v1/content/{cid}/peers"))
            .await
            .json();
        assert_eq!(peers["peers"][0]["node"], node.node_id().to_string());
        assert_eq!(peers["peers"][0]["url"], "http://127.0.0.1:9");

        // A replayed older announcement does not overwrite the newer one.
        let mut old = announcement(&node, "http://127.0.0.1:1", 1, vec![], &network);
        old.announcement.issued_at_ms -= 10_000;
        let old = dsi_protocol::SignedAnnouncement::sign(old.announcement, &network, &node);
        let reply = post_json(&state, "/v1/announce", &old).await;
        assert_eq!(reply.json()["stored"], false);
        let peers = get(&state, &format!("/v1/content/{cid}/peers"))
            .await
            .json();
        assert_eq!(peers["peers"].as_array().map(Vec::len), Some(1));

        // Refusals, each with its code.
        let other = NetworkId::new("dsi-other").expect("name");
        let wrong_network = announcement(&key(2), "http://127.0.0.1:9", 2, vec![], &other);
        let reply = post_json(&state, "/v1/announce", &wrong_network).await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (StatusCode::UNAUTHORIZED, "bad_signature")
        );
        let mut tampered = announcement(&key(2), "http://127.0.0.1:9", 2, vec![], &network);
        tampered.announcement.payout.0[0] ^= 1;
        assert_eq!(
            post_json(&state, "/v1/announce", &tampered).await.code(),
            "bad_signature"
        );
        let bad_url = announcement(&key(2), "ftp://x", 2, vec![], &network);
        assert_eq!(
            post_json(&state, "/v1/announce", &bad_url).await.code(),
            "bad_url"
        );
        let mut skewed = announcement(&key(2), "http://127.0.0.1:9", 2, vec![], &network);
        skewed.announcement.issued_at_ms += 3_600_000;
        let skewed = dsi_protocol::SignedAnnouncement::sign(skewed.announcement, &network, &key(2));
        assert_eq!(
            post_json(&state, "/v1/announce", &skewed).await.code(),
            "clock_skew"
        );
        let reply = call(&state, "POST", "/v1/announce", b"{".to_vec(), None).await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (StatusCode::BAD_REQUEST, "bad_json")
        );
        assert_eq!(get(&state, "/v1/content/zz/peers").await.code(), "bad_id");
    }
}

#[tokio::test]
async fn availability_notices_pause_resume_and_exit_a_node() {
    use dsi_protocol::{Availability, SignedAvailability};
    let dir = tempfile::tempdir().expect("tempdir");
    for url in backends(dir.path()).await {
        let state = oracle_at(&url, dir.path(), test_config()).await;
        let network = state.config.network.clone();
        let (manifest, _) = content(1, 2);
        register(&state, &manifest).await;
        let cid = manifest.content_id();
        let node = key(1);
        let id = node.node_id();
        let peers = async || {
            get(&state, &format!("/v1/content/{cid}/peers"))
                .await
                .json()["peers"]
                .as_array()
                .map_or(0, Vec::len)
        };
        let mut clock = now_ms();
        let mut notice = |change| {
            clock += 1;
            SignedAvailability::sign(change, clock, &network, &node)
        };
        // A key the tracker never saw.
        let reply = post_json(&state, "/v1/availability", notice(Availability::Resume)).await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (StatusCode::NOT_FOUND, "unknown_node"),
            "{url}"
        );
        let announced = post_json(
            &state,
            "/v1/announce",
            announcement(&node, "http://127.0.0.1:9", 1, vec![cid], &network),
        )
        .await;
        assert_eq!(announced.status, StatusCode::OK);
        assert_eq!(peers().await, 1);

        let max = state.config.tracker.max_paused_epochs;
        for epochs in [0, max + 1] {
            let reply = post_json(
                &state,
                "/v1/availability",
                notice(Availability::Pause { epochs }),
            )
            .await;
            assert_eq!(
                (reply.status, reply.code().as_str()),
                (StatusCode::BAD_REQUEST, "pause_too_long")
            );
        }
        let pause = notice(Availability::Pause { epochs: 3 });
        let reply = post_json(&state, "/v1/availability", pause).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json());
        let current = Epoch(reply.json()["current_epoch"].as_u64().expect("epoch"));
        assert_eq!(reply.json()["availability"]["state"], "paused");
        assert_eq!(reply.json()["availability"]["from"], current.0 + 1);
        assert_eq!(reply.json()["availability"]["until"], current.0 + 4);
        assert_eq!(peers().await, 0, "not listed from the notice on");
        // The notice's epoch is audited; the next three are not.
        for (epoch, paused) in [(0, false), (1, true), (3, true), (4, false)] {
            let set = state
                .store
                .paused_in(Epoch(current.0 + epoch))
                .await
                .expect("paused");
            assert_eq!(set.contains(&id), paused, "epoch +{epoch}");
        }
        let replay = post_json(&state, "/v1/availability", pause).await;
        assert_eq!(
            (replay.status, replay.code().as_str()),
            (StatusCode::CONFLICT, "stale_notice")
        );
        let again = post_json(
            &state,
            "/v1/availability",
            notice(Availability::Pause { epochs: 1 }),
        )
        .await;
        assert_eq!(again.code(), "already_paused");
        let mut forged = notice(Availability::Resume);
        forged.notice.change = Availability::Exit;
        assert_eq!(
            post_json(&state, "/v1/availability", forged).await.code(),
            "bad_signature"
        );
        let mut skewed = notice(Availability::Resume);
        skewed.notice.issued_at_ms += 3_600_000;
        let skewed = SignedAvailability::sign(
            skewed.notice.change,
            skewed.notice.issued_at_ms,
            &network,
            &node,
        );
        assert_eq!(
            post_json(&state, "/v1/availability", skewed).await.code(),
            "clock_skew"
        );
        let page = get(&state, &format!("/v1/seeders/{id}")).await.json();
        assert_eq!(page["availability"]["state"], "paused");

        // A resume before the pause starts cancels it.
        let reply = post_json(&state, "/v1/availability", notice(Availability::Resume)).await;
        assert_eq!(reply.json()["availability"]["state"], "active");
        assert_eq!(peers().await, 1);
        assert!(
            !state
                .store
                .paused_in(Epoch(current.0 + 1))
                .await
                .expect("paused")
                .contains(&id)
        );
        let reply = post_json(&state, "/v1/availability", notice(Availability::Resume)).await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (StatusCode::CONFLICT, "not_paused")
        );

        // An exit is final: off the lists, the key's announcements and notices refused.
        let reply = post_json(&state, "/v1/availability", notice(Availability::Exit)).await;
        assert_eq!(reply.json()["availability"]["state"], "exited");
        assert_eq!(peers().await, 0);
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let back = post_json(
            &state,
            "/v1/announce",
            announcement(&node, "http://127.0.0.1:9", 1, vec![cid], &network),
        )
        .await;
        assert_eq!(
            (back.status, back.code().as_str()),
            (StatusCode::GONE, "node_exited")
        );
        let reply = post_json(&state, "/v1/availability", notice(Availability::Resume)).await;
        assert_eq!(reply.code(), "node_exited");
        let page = get(&state, &format!("/v1/seeders/{id}")).await.json();
        assert_eq!(page["availability"]["state"], "exited");
        // The prune forgets a key that never earned, with its notices.
        let pruned = state
            .store
            .prune_expired_nodes(now_ms() + 1, current)
            .await
            .expect("prune");
        assert_eq!(pruned, 1);
    }
}

/// Pauses are kept one interval each until their epochs are closed: a later pause (or a
/// resume) never makes an earlier paused epoch audited when its close runs late. The prune
/// keeps a paused key that has proven funded storage, an exit during a running close gets
/// no runs back, and an exited key's receipts of later epochs are refused.
#[tokio::test]
async fn pauses_stay_per_interval_until_closed_and_exits_end_runs_and_pay() {
    use dsi_protocol::{Availability, AvailabilityNotice};
    use oracle::store::{EpochClose, Held, NoticeOutcome};
    let dir = tempfile::tempdir().expect("tempdir");
    for url in backends(dir.path()).await {
        let state = oracle_at(&url, dir.path(), test_config()).await;
        let network = state.config.network.clone();
        let (manifest, chunks) = content(1, 2);
        register(&state, &manifest).await;
        let cid = manifest.content_id();
        for n in [1, 2, 3] {
            let reply = post_json(
                &state,
                "/v1/announce",
                announcement(&key(n), "http://127.0.0.1:9", n, vec![cid], &network),
            )
            .await;
            assert_eq!(reply.status, StatusCode::OK, "{url}");
        }
        let mut clock = now_ms();
        let mut apply = async |n: u8, change, current: u64| {
            clock += 1;
            let notice = AvailabilityNotice {
                node: key(n).node_id(),
                change,
                issued_at_ms: clock,
            };
            state
                .store
                .apply_notice(&notice, Epoch(current), clock)
                .await
                .expect("notice")
        };
        let paused = async |epoch: u64| {
            let set = state.store.paused_in(Epoch(epoch)).await.expect("paused");
            [1, 2, 3].map(|n| set.contains(&key(n).node_id()))
        };
        // Key 1 pauses epochs 11 and 12 in epoch 10, then (their closes late) epoch 16 in
        // epoch 15: 11 and 12 stay paused.
        let c = 10;
        assert!(matches!(
            apply(1, Availability::Pause { epochs: 2 }, c).await,
            NoticeOutcome::Applied(_)
        ));
        assert!(matches!(
            apply(1, Availability::Pause { epochs: 1 }, c + 5).await,
            NoticeOutcome::Applied(_)
        ));
        for (epoch, was) in [(c, false), (c + 1, true), (c + 2, true), (c + 3, false)] {
            assert_eq!(paused(epoch).await[0], was, "{url}: epoch {epoch}");
        }
        assert!(paused(c + 6).await[0]);
        // A pause of 21..25 resumed in 23: 21 and 22 stay paused, 23 is audited.
        apply(1, Availability::Pause { epochs: 5 }, c + 10).await;
        apply(1, Availability::Resume, c + 13).await;
        assert!(paused(c + 11).await[0] && paused(c + 12).await[0]);
        assert!(!paused(c + 13).await[0]);
        assert_eq!(
            state
                .store
                .availability(&key(1).node_id(), Epoch(c + 13))
                .await
                .expect("availability"),
            dsi_api::oracle::NodeAvailability::Active
        );
        // Keys 1 and 2 pause 31..33 in epoch 30; key 3 exits in 29.
        apply(1, Availability::Pause { epochs: 3 }, c + 20).await;
        apply(2, Availability::Pause { epochs: 3 }, c + 20).await;
        apply(3, Availability::Exit, c + 19).await;

        // Key 3's receipts of the exit's epoch count; later ones are refused.
        let chunk = manifest.chunks[0];
        let bytes = u32::try_from(chunks[&chunk].len()).expect("length");
        let current = epoch_of(&state);
        let exit_at = Epoch(current.0 - 1);
        post_json(
            &state,
            "/v1/announce",
            announcement(&key(4), "http://127.0.0.1:9", 4, vec![cid], &network),
        )
        .await;
        let exited = state
            .store
            .apply_notice(
                &AvailabilityNotice {
                    node: key(4).node_id(),
                    change: Availability::Exit,
                    issued_at_ms: now_ms(),
                },
                exit_at,
                now_ms(),
            )
            .await
            .expect("exit");
        assert!(matches!(exited, NoticeOutcome::Applied(_)), "{exited:?}");
        let verdicts = send_receipts(
            &state,
            &[
                receipt(&state, &key(4), &key(9), chunk, bytes, 1),
                receipt(&state, &key(5), &key(9), chunk, bytes, 2),
            ],
        )
        .await;
        assert_eq!(verdicts, ["seeder_exited", "accepted"], "{url}");

        // A close that read key 3's runs before its exit records none for it; key 1 passed
        // an audit of funded content there.
        let held = |n: u8| Held {
            node: key(n).node_id(),
            content: cid,
            since: Epoch(1),
            proven: Epoch(c + 19),
        };
        state
            .store
            .record_close(&EpochClose {
                record: dsi_api::oracle::ClosedEpoch {
                    epoch: Epoch(c + 19),
                    status: dsi_api::oracle::EpochStatus::Closed,
                    root: [1; 32],
                    total: 0,
                    seeders: 0,
                    receipts: 0,
                    batch_content_id: ContentId([1; 32]),
                    batch_file: "epoch.batch".into(),
                    closed_at_ms: now_ms(),
                    close_duration_ms: 1,
                },
                leaves: vec![dsi_api::oracle::Leaf {
                    epoch: Epoch(c + 19),
                    seeder: key(4).node_id(),
                    payout: dsi_protocol::PayoutAccount([4; 20]),
                    amount: 7,
                    cumulative: 7,
                    bandwidth_amount: 7,
                    storage_amount: 0,
                    bytes_served: u64::from(bytes),
                    receipts: 1,
                    reputation: 800_000,
                    proof: vec![[9; 32]],
                }],
                seeders: Vec::new(),
                scores: Vec::new(),
                audits: vec![dsi_api::oracle::Audit {
                    epoch: Epoch(c + 19),
                    seeder: key(1).node_id(),
                    chunk,
                    outcome: dsi_api::oracle::AuditOutcome::Passed,
                    detail: String::new(),
                    at_ms: 1,
                }],
                funded_chunks: [chunk].into(),
                debits: Vec::new(),
                draws: Vec::new(),
                held: vec![held(1), held(3)],
            })
            .await
            .expect("close");
        let runs: Vec<_> = state
            .store
            .held_since()
            .await
            .expect("runs")
            .iter()
            .map(|h| h.node)
            .collect();
        assert_eq!(runs, [key(1).node_id()], "{url}");
        // Once the epoch is claimable, the exited key 4's leaf is due for the oracle to
        // claim for it, once.
        assert!(
            state
                .store
                .exit_claims_due(16)
                .await
                .expect("due")
                .is_empty()
        );
        state
            .store
            .set_epoch_status(Epoch(c + 19), dsi_api::oracle::EpochStatus::Claimable)
            .await
            .expect("status");
        let due = state.store.exit_claims_due(16).await.expect("due");
        assert_eq!(
            due.iter()
                .map(|l| (l.epoch, l.seeder, l.amount))
                .collect::<Vec<_>>(),
            [(Epoch(c + 19), key(4).node_id(), 7)],
            "{url}"
        );
        state
            .store
            .record_exit_claim(Epoch(c + 19), &key(4).node_id(), "paid", now_ms())
            .await
            .expect("record");
        assert!(
            state
                .store
                .exit_claims_due(16)
                .await
                .expect("due")
                .is_empty()
        );

        // Two days on, with epoch 30 closed: key 1 (paused, proven storage) is kept with
        // its pause, key 4 (exited, paid) with its leaf; key 2 (paused, never proven
        // anything) and key 3 (exited, never paid) are forgotten like any abandoned key;
        // the closed pauses go.
        let pruned = state
            .store
            .prune_expired_nodes(now_ms() + 2 * 86_400_000, Epoch(c + 20))
            .await
            .expect("prune");
        assert_eq!(pruned, 2, "{url}: keys 2 and 3");
        assert_eq!(paused(c + 21).await, [true, false, false], "{url}");
        assert_eq!(paused(c + 11).await, [false; 3], "{url}");
        assert!(
            state
                .store
                .node(&key(1).node_id())
                .await
                .expect("node")
                .is_some()
        );
    }
}

#[tokio::test]
async fn the_replication_answer_lists_funded_content_and_is_reused_for_a_moment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = oracle_at(
        &format!("sqlite://{}", dir.path().join("oracle.db").display()),
        dir.path(),
        test_config(),
    )
    .await;
    let sponsor = async |manifest: &dsi_protocol::Manifest, per_epoch: &str| {
        register(&state, manifest).await;
        let reply = call_with_headers(
            &state,
            "POST",
            "/v1/sponsors",
            serde_json::json!({
                "content": manifest.content_id().to_string(),
                "per_epoch": per_epoch,
                "epochs": 10,
                "replicas": 2,
            })
            .to_string()
            .into_bytes(),
            &[
                ("content-type", "application/json".to_string()),
                ("authorization", format!("Bearer {TOKEN}")),
            ],
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json());
    };
    let listed = async || {
        get(&state, "/v1/replication").await.json()["contents"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["content"].as_str().unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let (small, _) = content(1, 1);
    let (large, _) = content(2, 4);
    // Unfunded content is never listed.
    let (unfunded, _) = content(3, 2);
    register(&state, &unfunded).await;
    sponsor(&small, "1000").await;
    let first = get(&state, "/v1/replication").await.json();
    assert_eq!(first["closed_epoch"], serde_json::Value::Null);
    assert_eq!(first["contents"][0]["target"], 2);
    assert_eq!(first["contents"][0]["holder_count"], 0);
    assert_eq!(first["contents"][0]["per_replica_per_epoch"], "500");
    // A sponsorship made now shows once the answer is older than its 2 s.
    sponsor(&large, "1000000").await;
    assert_eq!(
        listed().await,
        vec![small.content_id().to_string()],
        "reused"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    assert_eq!(
        listed().await,
        vec![
            large.content_id().to_string(),
            small.content_id().to_string()
        ],
        "made afresh, best paid per byte first"
    );
}

#[tokio::test]
async fn the_open_epoch_totals_count_each_stored_receipt_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    for url in backends(dir.path()).await {
        let state = oracle_at(&url, dir.path(), test_config()).await;
        let (manifest, _) = content(1, 4);
        let seeder = key(1);
        let make = |downloader: u8, chunk: usize| {
            receipt(
                &state,
                &seeder,
                &key(downloader),
                manifest.chunks[chunk],
                1000 + chunk as u32,
                1,
            )
        };
        let epoch = epoch_of(&state);
        let first = vec![make(2, 0), make(2, 1)];
        assert_eq!(
            state.store.insert_receipts(&first).await.expect("insert"),
            2
        );
        // A batch overlapping what is held: only the new one counts.
        let second = vec![make(2, 1), make(3, 2)];
        assert_eq!(
            state.store.insert_receipts(&second).await.expect("insert"),
            1
        );
        let total = state
            .store
            .seeder_epoch_total(&seeder.node_id(), epoch)
            .await
            .expect("total");
        assert_eq!(total, (3, 1000 + 1001 + 1002), "{url}");
        assert_eq!(
            state
                .store
                .seeder_epoch_total(&key(9).node_id(), epoch)
                .await
                .expect("total"),
            (0, 0)
        );
    }
}

#[tokio::test]
async fn announcements_expire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config();
    config.tracker.announce_ttl_secs = 0;
    let state = oracle_at(
        &format!("sqlite://{}/o.db", dir.path().display()),
        dir.path(),
        config,
    )
    .await;
    let (manifest, _) = content(1, 1);
    register(&state, &manifest).await;
    let cid = manifest.content_id();
    let signed = announcement(
        &key(1),
        "http://127.0.0.1:9",
        1,
        vec![cid],
        &state.config.network,
    );
    assert_eq!(
        post_json(&state, "/v1/announce", &signed).await.status,
        StatusCode::OK
    );
    let peers = get(&state, &format!("/v1/content/{cid}/peers"))
        .await
        .json();
    assert_eq!(
        peers["peers"].as_array().map(Vec::len),
        Some(0),
        "expired at once"
    );
}

#[tokio::test]
async fn every_receipt_rule_has_a_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    for url in backends(dir.path()).await {
        let mut config = test_config();
        config.ingest.downloader_cap_bytes = 3 * 16 * 1024;
        config.ingest.max_batch = 100;
        let state = oracle_at(&url, dir.path(), config).await;
        let (manifest, _) = content(3, 3);
        register(&state, &manifest).await;
        let [c0, c1, c2] = [manifest.chunks[0], manifest.chunks[1], manifest.chunks[2]];
        let full = 16 * 1024;
        let last = full - 100;
        let (seeder, downloader) = (key(1), key(2));

        let good = receipt(&state, &seeder, &downloader, c0, full, 1);
        let self_receipt = receipt(&state, &seeder, &seeder, c0, full, 2);
        let mut future = good.receipt;
        future.epoch = epoch_of(&state).next();
        let future = SignedReceipt::sign(future, &state.config.network, &downloader);
        let mut stale = good.receipt;
        stale.issued_at_ms -= 3 * 3_600_000;
        stale.chunk = c1;
        let stale = SignedReceipt::sign(stale, &state.config.network, &downloader);
        let unknown = receipt(
            &state,
            &seeder,
            &downloader,
            dsi_protocol::ChunkId([7; 32]),
            full,
            3,
        );
        let mismatch = receipt(&state, &seeder, &downloader, c2, full, 4);
        let mut tampered = receipt(&state, &seeder, &downloader, c1, full, 5);
        tampered.receipt.nonce += 1;
        let other = NetworkId::new("dsi-other").expect("name");
        let mut foreign = receipt(&state, &seeder, &downloader, c1, full, 6).receipt;
        foreign.downloader = dsi_protocol::NodeId([0; 32]);
        let foreign = SignedReceipt::sign(foreign, &other, &downloader);
        let duplicate = receipt(&state, &seeder, &downloader, c0, full, 99);

        let verdicts = send_receipts(
            &state,
            &[
                good,
                self_receipt,
                future,
                stale,
                unknown,
                mismatch,
                tampered,
                foreign,
                duplicate,
                good,
            ],
        )
        .await;
        assert_eq!(
            verdicts,
            [
                "accepted",
                "self_receipt",
                "epoch_out_of_window",
                "epoch_out_of_window",
                "unknown_chunk",
                "chunk_size_mismatch",
                "bad_signature",
                "bad_signature",
                "duplicate",
                "accepted",
            ],
            "{url}"
        );

        // Resubmitting is harmless: accepted again, stored once.
        assert_eq!(send_receipts(&state, &[good]).await, ["accepted"]);
        assert_eq!(send_receipts(&state, &[duplicate]).await, ["duplicate"]);
        let info = get(&state, &format!("/v1/epochs/{}", epoch_of(&state)))
            .await
            .json();
        assert_eq!(info["status"], "open");
        assert_eq!(info["receipts"], 1);

        // The cap: 3 chunks' worth per downloader per epoch (one full chunk used).
        let from_other_seeder = [
            receipt(&state, &key(3), &downloader, c1, full, 10),
            receipt(&state, &key(3), &downloader, c2, last, 11),
            receipt(&state, &key(4), &downloader, c1, full, 12),
        ];
        assert_eq!(
            send_receipts(&state, &from_other_seeder).await,
            ["accepted", "accepted", "downloader_cap"]
        );

        // Batch limits and malformed bodies.
        let too_many: Vec<SignedReceipt> = (0..101)
            .map(|i| receipt(&state, &seeder, &key(9), c0, full, i))
            .collect();
        let reply = post_json(
            &state,
            "/v1/receipts",
            serde_json::json!({ "receipts": too_many }),
        )
        .await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large")
        );
        let reply = call(&state, "POST", "/v1/receipts", b"[]".to_vec(), None).await;
        assert_eq!(reply.code(), "bad_json");

        // Metrics count rejections by rule.
        let metrics = String::from_utf8(get(&state, "/metrics").await.body).expect("utf8");
        assert!(
            metrics.contains("dsi_oracle_receipts_rejected_total{rule=\"bad_signature\"} 2"),
            "{metrics}"
        );
        assert!(metrics.contains("dsi_oracle_receipts_rejected_total{rule=\"downloader_cap\"} 1"));
        assert!(metrics.contains("dsi_oracle_receipts_held 3"));

        // After close, the epoch's receipts are refused.
        close_current(&state).await;
        let late = receipt(&state, &key(5), &downloader, c1, full, 20);
        assert_eq!(
            send_receipts(&state, &[late]).await,
            ["epoch_out_of_window"]
        );
    }
}

#[tokio::test]
async fn an_epoch_closes_into_leaves_proofs_and_a_verifiable_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    for url in backends(dir.path()).await {
        let state = oracle_at(&url, dir.path(), test_config()).await;
        let network = state.config.network.clone();
        // Two contents: `common` on both seeders, `rare` only on the honest one.
        let (common, mut data) = content(5, 4);
        let (rare, rare_data) = content(6, 2);
        data.extend(rare_data);
        register(&state, &common).await;
        register(&state, &rare).await;
        let honest_server = chunk_server(key(11), data.clone()).await;
        let corrupt_server = chunk_server(key(12), data.clone()).await;
        corrupt_server
            .corrupt
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let (honest, corrupt, downloader) = (key(11), key(12), key(13));
        // Both contents are sponsored (one token per epoch each); the downloader has credit.
        fund(&state, &common.content_id(), [key(13)]).await;
        fund(&state, &rare.content_id(), []).await;
        for (node, server, payout, contents) in [
            (
                &honest,
                &honest_server,
                11,
                vec![common.content_id(), rare.content_id()],
            ),
            (&corrupt, &corrupt_server, 12, vec![common.content_id()]),
        ] {
            let reply = post_json(
                &state,
                "/v1/announce",
                announcement(node, &server.url, payout, contents, &network),
            )
            .await;
            assert_eq!(reply.status, StatusCode::OK);
        }
        let mut receipts = Vec::new();
        for (i, chunk) in common.chunks.iter().enumerate() {
            let len = common.chunk_len(i);
            receipts.push(receipt(&state, &honest, &downloader, *chunk, len, i as u64));
            receipts.push(receipt(
                &state,
                &corrupt,
                &downloader,
                *chunk,
                len,
                100 + i as u64,
            ));
        }
        for (i, chunk) in rare.chunks.iter().enumerate() {
            receipts.push(receipt(
                &state,
                &honest,
                &downloader,
                *chunk,
                rare.chunk_len(i),
                200 + i as u64,
            ));
        }
        assert!(
            send_receipts(&state, &receipts)
                .await
                .iter()
                .all(|v| v == "accepted")
        );

        // Closing needs the admin token.
        let reply = call(
            &state,
            "POST",
            "/v1/epochs/close",
            Vec::new(),
            Some("wrong"),
        )
        .await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (StatusCode::UNAUTHORIZED, "unauthorized")
        );
        let epoch = epoch_of(&state);
        let closed = close_current(&state).await;
        let record = &closed["closed"][0];
        assert_eq!(record["epoch"], epoch.0);
        assert_eq!(record["status"], "closed");
        assert_eq!(record["receipts"], receipts.len());
        // Paid: the downloader's debit (every byte served, at the price) less the fee plus
        // the bonus, and the two sponsorships; nobody earns the subsidy (nothing is on the
        // subsidized list). Both seeders are new keys: half shares.
        let total: u128 = record["total"]
            .as_str()
            .expect("total")
            .parse()
            .expect("u128");
        let bytes: u64 = common.size * 2 + rare.size;
        let debited = u128::from(bytes) * u128::from(state.config.market.price_per_byte);
        let credit = get(&state, &format!("/v1/credits/{}", downloader.node_id()))
            .await
            .json();
        assert_eq!(credit["spent"], debited.to_string(), "{credit}");
        assert!(total > 0 && total <= debited + 2_000_000_000_000, "{total}");
        let info = get(&state, &format!("/v1/epochs/{epoch}")).await.json();
        assert_eq!(info, *record);
        let current = get(&state, "/v1/epochs/current").await.json();
        assert_eq!(current["last_closed"], epoch.0);
        let reply = call(
            &state,
            "POST",
            "/v1/epochs/close",
            serde_json::to_vec(&serde_json::json!({"through": epoch.0 + 5})).expect("json"),
            Some(TOKEN),
        )
        .await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (StatusCode::CONFLICT, "cannot_close")
        );

        // Every leaf's proof verifies against the root.
        let root_hex = record["root"]
            .as_str()
            .expect("root")
            .trim_start_matches("0x")
            .to_string();
        let mut root = [0u8; 32];
        hex::decode_to_slice(&root_hex, &mut root).expect("hex");
        let leaves = get(&state, &format!("/v1/epochs/{epoch}/leaves"))
            .await
            .json();
        let leaves = leaves.as_array().expect("leaves").clone();
        assert_eq!(leaves.len(), 2);
        for leaf in &leaves {
            let seeder = leaf["seeder"].as_str().expect("seeder");
            let one = get(&state, &format!("/v1/epochs/{epoch}/seeders/{seeder}"))
                .await
                .json();
            assert_eq!(one, *leaf);
            let reward = RewardLeaf {
                epoch,
                seeder: seeder.parse().expect("node id"),
                payout: leaf["payout"]
                    .as_str()
                    .expect("payout")
                    .parse()
                    .expect("payout"),
                amount: leaf["amount"]
                    .as_str()
                    .expect("amount")
                    .parse()
                    .expect("u128"),
            };
            let proof: Vec<[u8; 32]> = leaf["proof"]
                .as_array()
                .expect("proof")
                .iter()
                .map(|h| {
                    let mut out = [0; 32];
                    hex::decode_to_slice(
                        h.as_str().expect("hex").trim_start_matches("0x"),
                        &mut out,
                    )
                    .expect("hex");
                    out
                })
                .collect();
            assert!(verify::<Keccak256>(
                &root,
                &reward.hash::<Keccak256>(),
                &proof
            ));
        }
        let by_seeder = |node: &dsi_protocol::SecretKey| {
            leaves
                .iter()
                .find(|l| l["seeder"] == node.node_id().to_string())
                .cloned()
                .expect("leaf")
        };
        let (h, c) = (by_seeder(&honest), by_seeder(&corrupt));
        // The corrupt seeder failed its audits: no storage share, reduced bandwidth share.
        assert_eq!(c["storage_amount"], "0");
        assert_ne!(h["storage_amount"], "0");
        let amount = |v: &serde_json::Value| {
            v["bandwidth_amount"]
                .as_str()
                .expect("amount")
                .parse::<u128>()
                .expect("u128")
        };
        assert!(
            amount(&h) > amount(&c),
            "rare chunks and reputation pay the honest seeder more"
        );
        assert_eq!(
            get(
                &state,
                &format!("/v1/epochs/{epoch}/seeders/{}", downloader.node_id())
            )
            .await
            .code(),
            "no_leaf"
        );

        // Seeder pages show audits and reputation.
        let page = get(&state, &format!("/v1/seeders/{}", corrupt.node_id()))
            .await
            .json();
        assert!(
            page["audits"]
                .as_array()
                .expect("audits")
                .iter()
                .all(|a| a["outcome"] == "wrong_bytes"),
            "{page}"
        );
        assert_eq!(page["standing"], "reduced");
        let page = get(&state, &format!("/v1/seeders/{}", honest.node_id()))
            .await
            .json();
        assert!(
            page["audits"]
                .as_array()
                .expect("audits")
                .iter()
                .all(|a| a["outcome"] == "passed")
        );
        assert_eq!(page["standing"], "good");
        assert_eq!(page["epochs"][0]["epoch"], epoch.0);
        assert_eq!(
            get(&state, &format!("/v1/seeders/{}", key(99).node_id()))
                .await
                .code(),
            "unknown_seeder"
        );

        // The published batch recomputes bit for bit; a tampered one does not.
        let batch = get(&state, &format!("/v1/epochs/{epoch}/batch")).await;
        assert_eq!(batch.status, StatusCode::OK);
        let decoded = decode_batch(&batch.body).expect("decodes");
        let verified = verify_batch(&decoded).expect("verifies");
        assert_eq!(hex::encode(verified.root), root_hex);
        let mut forged = decoded.clone();
        let halved = forged.inputs.seeders[0].reputation.0 / 2;
        forged.inputs.seeders[0].reputation = dsi_protocol::fixed::Ppm(halved);
        assert!(matches!(
            verify_batch(&forged),
            Err(oracle::batch::VerifyError::Mismatch { .. })
        ));
        let mut forged = decoded.clone();
        forged.inputs.market.price_per_byte += 1;
        assert!(matches!(
            verify_batch(&forged),
            Err(oracle::batch::VerifyError::Mismatch { .. })
        ));
        let mut forged = decoded.clone();
        forged.receipts[0].receipt.bytes += 1;
        assert!(matches!(
            verify_batch(&forged),
            Err(oracle::batch::VerifyError::Rule { .. })
        ));
        let mut forged = decoded;
        forged.receipts[0].signature.0[0] ^= 1;
        assert!(matches!(
            verify_batch(&forged),
            Err(oracle::batch::VerifyError::Rule {
                rule: oracle::rules::Rule::BadSignature,
                ..
            })
        ));

        let unknown = get(&state, &format!("/v1/epochs/{}", epoch.0 + 3)).await;
        assert_eq!(
            (unknown.status, unknown.code().as_str()),
            (StatusCode::NOT_FOUND, "unknown_epoch")
        );
        assert_eq!(
            get(&state, &format!("/v1/epochs/{}/leaves", epoch.0 + 3))
                .await
                .code(),
            "epoch_not_closed"
        );
        let info = get(&state, "/v1/info").await.json();
        assert_eq!(info["current_epoch"], epoch.0);
        assert_eq!(get(&state, "/health").await.body, b"ok");
        let metrics = String::from_utf8(get(&state, "/metrics").await.body).expect("utf8");
        assert!(metrics.contains("dsi_oracle_epochs{status=\"closed\"} 1"));
        assert!(metrics.contains("dsi_oracle_audits_total{outcome=\"wrong_bytes\"}"));
        let _ = Epoch(0);
    }
}

/// Every error answer is JSON `{code, message}` with the code of `dsi_api::ErrorCode`,
/// including an unknown route, a wrong method, a body over the limit and malformed JSON; the
/// status is the one the code names.
#[tokio::test]
async fn every_error_is_json_with_a_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config();
    config.ingest.max_batch = 10;
    let state = oracle_at(
        &format!("sqlite://{}", dir.path().join("o.db").display()),
        dir.path(),
        config,
    )
    .await;
    // The body limit is the larger of the receipt batch's and a manifest's.
    let limit = dsi_api::MAX_MANIFEST_BYTES;
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        ("GET", "/v1/nothing-here", Vec::new(), "not_found"),
        ("DELETE", "/v1/info", Vec::new(), "method_not_allowed"),
        ("GET", "/v1/receipts", Vec::new(), "method_not_allowed"),
        (
            "POST",
            "/v1/receipts",
            b"{\"receipts\": [".to_vec(),
            "bad_json",
        ),
        ("POST", "/v1/receipts", b"[]".to_vec(), "bad_json"),
        (
            "POST",
            "/v1/announce",
            b"{\"node\": 1}".to_vec(),
            "bad_json",
        ),
        (
            "POST",
            "/v1/manifests",
            vec![0u8; limit + 1],
            "body_too_large",
        ),
        (
            "POST",
            "/v1/manifests",
            b"not a manifest".to_vec(),
            "bad_registrant",
        ),
        ("GET", "/v1/epochs/x", Vec::new(), "bad_id"),
        ("POST", "/v1/epochs/close", Vec::new(), "unauthorized"),
    ];
    for (method, uri, body, expected) in cases {
        let reply = call(&state, method, uri, body, None).await;
        let error: dsi_api::ErrorBody = serde_json::from_slice(&reply.body).unwrap_or_else(|e| {
            panic!(
                "{method} {uri}: not an error body ({e}): {}",
                String::from_utf8_lossy(&reply.body)
            )
        });
        assert_eq!(
            error.code.as_str(),
            expected,
            "{method} {uri}: {}",
            error.message
        );
        assert_eq!(reply.status.as_u16(), error.code.status(), "{method} {uri}");
        assert!(!error.message.is_empty(), "{method} {uri}");
    }
}

/// A manifest larger than `MAX_MANIFEST_BYTES` is refused even when the oracle's body limit
/// (sized for its receipt batches) is larger.
#[tokio::test]
async fn oversized_manifests_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config();
    config.ingest.max_batch = 20_000;
    let state = oracle_at(
        &format!("sqlite://{}", dir.path().join("o.db").display()),
        dir.path(),
        config,
    )
    .await;
    let body = vec![1u8; dsi_api::MAX_MANIFEST_BYTES + 1];
    let reply = call(&state, "POST", "/v1/manifests", body, None).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.code(), "body_too_large");
}

/// Hole 5: an announcement of 4,096 junk content ids used to stall a close (one chain read
/// per content id, under the ingest lock). Junk ids cost one lookup each now, outside the
/// lock, and receipts posted meanwhile are answered.
#[tokio::test]
async fn junk_content_ids_do_not_stall_a_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/o.db", dir.path().display());
    let mut config = test_config();
    config.epochs.length_ms = 1_000;
    let state = oracle_at(&url, dir.path(), config).await;
    let network = state.config.network.clone();
    let (manifest, _) = content(14, 2);
    register(&state, &manifest).await;
    let baseline = {
        let started = std::time::Instant::now();
        close_current(&state).await;
        started.elapsed()
    };
    let junk: Vec<ContentId> = (0..dsi_protocol::announce::MAX_ANNOUNCED_CONTENTS)
        .map(|i| {
            let mut id = [7u8; 32];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            ContentId(id)
        })
        .collect();
    let reply = post_json(
        &state,
        "/v1/announce",
        announcement(&key(50), "http://127.0.0.1:9", 50, junk, &network),
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    // Wait for the next epoch, then close while receipts arrive.
    let first = epoch_of(&state);
    while epoch_of(&state) == first {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let closing = state.clone();
    let started = std::time::Instant::now();
    let close = tokio::spawn(async move { close_current(&closing).await });
    let receipt = receipt(
        &state,
        &key(1),
        &key(2),
        manifest.chunks[0],
        manifest.chunk_len(0),
        1,
    );
    let verdicts = send_receipts(&state, &[receipt]).await;
    assert_eq!(
        verdicts.len(),
        1,
        "the receipt was answered during the close"
    );
    let closed = close.await.expect("close task");
    let with_junk = started.elapsed();
    assert!(closed["closed"].as_array().is_some_and(|c| !c.is_empty()));
    println!("close without junk {baseline:?}, with 4096 junk content ids {with_junk:?}");
}

/// Issue 13 item 5: manifests are registered only under a node key's signature, and the
/// manifest bytes each key registers are bounded (`tracker.max_manifest_bytes_per_node`),
/// also after a restart. Refused registrations store nothing.
#[tokio::test]
async fn manifests_need_a_signed_registrant_and_each_key_has_a_quota() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifests: Vec<_> = (1..=3u8).map(|seed| content(seed, 3).0).collect();
    let one = manifests[0].to_bytes().len() as u64;
    let mut config = test_config();
    // Room for two of these manifests per key, not three.
    config.tracker.max_manifest_bytes_per_node = 2 * one + one / 2;
    for url in backends(dir.path()).await {
        let state = oracle_at(&url, dir.path(), config.clone()).await;
        let network = state.config.network.clone();
        let registered = |state: std::sync::Arc<oracle::OracleState>, m: dsi_protocol::Manifest| async move {
            get(&state, &format!("/v1/content/{}/manifest", m.content_id()))
                .await
                .status
                == StatusCode::OK
        };
        let bytes = manifests[0].to_bytes();
        let header =
            |key: &dsi_protocol::SecretKey, content: ContentId, at: u64, net: &NetworkId| {
                dsi_api::registrant::RegistrantHeader::sign(key, net, content, at).to_string()
            };
        let post = |headers: Vec<(&'static str, String)>| {
            let state = state.clone();
            let bytes = bytes.clone();
            async move { call_with_headers(&state, "POST", "/v1/manifests", bytes, &headers).await }
        };
        let name = dsi_api::REGISTRANT_HEADER;
        let cid = manifests[0].content_id();
        let mallory = key(66);
        for (headers, status, code) in [
            (vec![], 400, "bad_registrant"),
            (
                vec![(name, "not-a-header".to_string())],
                400,
                "bad_registrant",
            ),
            (
                vec![(name, header(&mallory, cid, now_ms() - 3_600_000, &network))],
                400,
                "clock_skew",
            ),
            (
                vec![(
                    name,
                    header(&mallory, manifests[1].content_id(), now_ms(), &network),
                )],
                401,
                "bad_signature",
            ),
            (
                vec![(
                    name,
                    header(
                        &mallory,
                        cid,
                        now_ms(),
                        &NetworkId::new("dsi-other").expect("net"),
                    ),
                )],
                401,
                "bad_signature",
            ),
        ] {
            let reply = post(headers.clone()).await;
            assert_eq!(
                (reply.status.as_u16(), reply.code().as_str()),
                (status, code),
                "{url} {headers:?}: {}",
                String::from_utf8_lossy(&reply.body)
            );
        }
        assert!(
            !registered(state.clone(), manifests[0].clone()).await,
            "nothing stored"
        );

        // Mallory registers two; the third passes her quota and stores nothing.
        for m in &manifests[..2] {
            let reply = post_manifest(&state, m.to_bytes(), &mallory).await;
            assert_eq!(reply.status, StatusCode::OK, "{url}");
        }
        let over = post_manifest(&state, manifests[2].to_bytes(), &mallory).await;
        assert_eq!(
            (over.status.as_u16(), over.code().as_str()),
            (403, "manifest_quota"),
            "{url}: {}",
            String::from_utf8_lossy(&over.body)
        );
        assert!(!registered(state.clone(), manifests[2].clone()).await);
        // A manifest already registered is answered without charging anyone.
        let again = post_manifest(&state, manifests[0].to_bytes(), &mallory).await;
        assert_eq!(
            (again.status, again.json()["new"].clone()),
            (StatusCode::OK, false.into())
        );

        // After a restart the quota still holds; another key registers the third.
        drop(state);
        let state = oracle_at(&url, dir.path(), config.clone()).await;
        let over = post_manifest(&state, manifests[2].to_bytes(), &mallory).await;
        assert_eq!(over.code(), "manifest_quota", "{url}");
        let honest = post_manifest(&state, manifests[2].to_bytes(), &key(7)).await;
        assert_eq!(honest.status, StatusCode::OK, "{url}");
        assert!(registered(state.clone(), manifests[2].clone()).await);
    }
}

/// A node's iroh endpoint (issue 17) is signed in its announcement, checked, and listed with
/// it by the tracker; direct addresses outside the network the announcement came from are
/// left out, so a node cannot aim downloaders' QUIC handshakes at someone else.
#[tokio::test]
async fn an_announced_iroh_endpoint_is_listed_without_addresses_outside_the_source() {
    use dsi_protocol::{NodeEndpoint, SignedAnnouncement};
    let dir = tempfile::tempdir().expect("tempdir");
    for url in backends(dir.path()).await {
        let state = oracle_at(&url, dir.path(), test_config()).await;
        let network = state.config.network.clone();
        let (manifest, _) = content(2, 2);
        let cid = manifest.content_id();
        register(&state, &manifest).await;
        let node = key(7);
        let from = std::net::SocketAddr::from(([127, 0, 5, 9], 50_000));
        let announce = |endpoint: NodeEndpoint| {
            let state = state.clone();
            let mut a =
                announcement(&node, "http://127.0.5.1:9", 7, vec![cid], &network).announcement;
            a.endpoint = Some(endpoint);
            let body =
                serde_json::to_vec(&SignedAnnouncement::sign(a, &network, &node)).expect("json");
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                call_from(&state, from, "POST", "/v1/announce", body, &[]).await
            }
        };

        let bad = announce(NodeEndpoint {
            relays: vec![],
            direct: vec!["relay.example:1".into()],
        })
        .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{url}");
        assert_eq!(bad.code(), "bad_url");
        let message = bad.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(message.contains("relay.example:1"), "{message}");

        let good = announce(NodeEndpoint {
            relays: vec!["http://relay.example:3340/".into()],
            direct: vec!["127.0.5.1:4000".into(), "127.0.99.1:4000".into()],
        })
        .await;
        assert_eq!(good.status, StatusCode::OK, "{url}: {:?}", good.json());
        let peers = get(&state, &format!("/v1/content/{cid}/peers"))
            .await
            .json();
        let endpoint = &peers["peers"][0]["endpoint"];
        assert_eq!(
            endpoint["relays"][0], "http://relay.example:3340/",
            "{peers}"
        );
        assert_eq!(
            endpoint["direct"],
            serde_json::json!(["127.0.5.1:4000"]),
            "the address in another network is left out: {peers}"
        );

        // Announced again without one: listed without one.
        let plain = announcement(&node, "http://127.0.5.1:9", 7, vec![cid], &network);
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let reply = call_from(
            &state,
            from,
            "POST",
            "/v1/announce",
            serde_json::to_vec(&plain).expect("json"),
            &[],
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        let peers = get(&state, &format!("/v1/content/{cid}/peers"))
            .await
            .json();
        assert!(peers["peers"][0].get("endpoint").is_none(), "{peers}");
    }
}

/// A node behind a home router has no URL anyone can reach: it announces `iroh://NODE_ID/`
/// (issue 17), which a tracker that audits over iroh accepts for the announcing key itself,
/// with an endpoint, and lists; anything else is `bad_url` with the reason.
#[tokio::test]
async fn an_iroh_url_names_the_announcing_node_and_needs_an_endpoint_and_an_iroh_oracle() {
    use dsi_protocol::{NodeEndpoint, SignedAnnouncement};
    let dir = tempfile::tempdir().expect("tempdir");
    for url in backends(dir.path()).await {
        let endpoint = NodeEndpoint {
            relays: vec!["http://relay.example:3340/".into()],
            direct: vec![],
        };
        let node = key(8);
        let own = format!("iroh://{}/", node.node_id());
        let (manifest, _) = content(3, 2);
        let cid = manifest.content_id();
        let try_announce = |state: std::sync::Arc<oracle::OracleState>,
                            url: String,
                            endpoint: Option<NodeEndpoint>| {
            let network = state.config.network.clone();
            let mut a = announcement(&node, &url, 8, vec![cid], &network).announcement;
            a.node = node.node_id();
            a.endpoint = endpoint;
            let body =
                serde_json::to_vec(&SignedAnnouncement::sign(a, &network, &node)).expect("json");
            let from = std::net::SocketAddr::from(([127, 0, 6, 9], 50_000));
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                call_from(&state, from, "POST", "/v1/announce", body, &[]).await
            }
        };
        let refused = |reply: &Reply, needle: &str| {
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{url}");
            assert_eq!(reply.code(), "bad_url");
            let message = reply.json()["message"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert!(message.contains(needle), "{message}");
        };

        // An oracle without [iroh] could not audit it.
        let plain = oracle_at(&url, dir.path(), test_config()).await;
        let reply = try_announce(plain.clone(), own.clone(), Some(endpoint.clone())).await;
        refused(&reply, "does not reach nodes over iroh");

        let mut config = test_config();
        config.iroh.relays = vec!["http://relay.example:3340/".into()];
        let state = oracle_at(&url, dir.path(), config).await;
        register(&state, &manifest).await;
        let other = format!("iroh://{}/", key(9).node_id());
        let reply = try_announce(state.clone(), other, Some(endpoint.clone())).await;
        refused(&reply, "names the announcing node itself");
        let reply = try_announce(state.clone(), own.clone(), None).await;
        refused(&reply, "announces its endpoint");

        let reply = try_announce(state.clone(), own.clone(), Some(endpoint.clone())).await;
        assert_eq!(reply.status, StatusCode::OK, "{url}: {:?}", reply.json());
        let peers = get(&state, &format!("/v1/content/{cid}/peers"))
            .await
            .json();
        assert_eq!(peers["peers"][0]["url"], serde_json::json!(own), "{peers}");
        assert_eq!(
            peers["peers"][0]["endpoint"]["relays"][0], "http://relay.example:3340/",
            "{peers}"
        );
    }
}

/// `GET /v1/relay-access/{node}` (what `dsi-relay --admit-from` asks): the oracle, announced
/// nodes and downloaders with credit are carried; a stranger is not; a malformed id is a
/// JSON error naming it.
#[tokio::test]
async fn relay_access_admits_the_oracle_announced_nodes_and_funded_downloaders_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    for url in backends(dir.path()).await {
        let state = oracle_at(&url, dir.path(), test_config()).await;
        let network = state.config.network.clone();
        let access = |node: String| {
            let state = state.clone();
            async move {
                let reply = get(&state, &format!("/v1/relay-access/{node}")).await;
                assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json());
                let body = reply.json();
                assert_eq!(body["node"], node, "{body}");
                body["allowed"].as_bool().expect("allowed")
            }
        };
        let (seeder, downloader, stranger) = (key(21), key(22), key(23));
        assert!(!access(stranger.node_id().to_string()).await, "{url}");
        assert!(!access(seeder.node_id().to_string()).await, "{url}");
        assert!(!access(downloader.node_id().to_string()).await, "{url}");
        assert!(access(state.key.node_id().to_string()).await, "{url}");

        let (manifest, _) = content(2, 2);
        register(&state, &manifest).await;
        let announced = announcement(
            &seeder,
            "http://127.0.0.1:9",
            7,
            vec![manifest.content_id()],
            &network,
        );
        let reply = post_json(&state, "/v1/announce", &announced).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json());
        assert!(access(seeder.node_id().to_string()).await, "{url}");

        fund(&state, &manifest.content_id(), [downloader.clone()]).await;
        assert!(access(downloader.node_id().to_string()).await, "{url}");
        assert!(!access(stranger.node_id().to_string()).await, "{url}");

        // An announcement that expired vouches for nothing.
        let mut config = test_config();
        config.tracker.announce_ttl_secs = 0;
        let expiring_dir = tempfile::tempdir().expect("tempdir");
        let expiring = oracle_at(
            &format!("sqlite://{}/o.db", expiring_dir.path().display()),
            expiring_dir.path(),
            config,
        )
        .await;
        register(&expiring, &manifest).await;
        let lapsed = announcement(
            &seeder,
            "http://127.0.0.1:9",
            7,
            vec![manifest.content_id()],
            &expiring.config.network,
        );
        let reply = post_json(&expiring, "/v1/announce", &lapsed).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json());
        let reply = get(&expiring, &format!("/v1/relay-access/{}", seeder.node_id())).await;
        assert_eq!(reply.json()["allowed"], false, "{:?}", reply.json());

        let bad = get(&state, "/v1/relay-access/not-a-key").await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(
            bad.json()["message"]
                .as_str()
                .unwrap_or_default()
                .contains("node id"),
            "{:?}",
            bad.json()
        );
    }
}
