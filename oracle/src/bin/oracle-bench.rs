//! `oracle-bench`: receipt ingest throughput against raw ed25519 batch verification, and
//! epoch close time, measured in one run on this machine.
//!
//! 1. Raw rate: `ed25519_dalek::verify_batch` over pre-built signing bytes, on one core
//!    and on every core.
//! 2. End to end: pre-signed receipts sent as JSON batches over loopback HTTP to an oracle
//!    with a SQLite file, through the rules, verification and the durable commit.
//! 3. Epoch close for each size in `--close-sizes` (receipts inserted directly), so the
//!    figures show whether closing grows linearly.
//!
//! `cargo run --release -p oracle --bin oracle-bench [-- --receipts 100000]`

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use dsi_protocol::{
    Announcement, ChunkId, Manifest, NetworkId, NodeId, PayoutAccount, Receipt, SecretKey,
    Signature, SignedReceipt,
};
use oracle::{Config, OracleState, Store};

/// Oracle benchmark.
#[derive(Parser, Debug)]
struct Args {
    /// Receipts sent end to end (and verified raw).
    #[arg(long, default_value_t = 100_000)]
    receipts: usize,
    /// Receipts per HTTP batch.
    #[arg(long, default_value_t = 5_000)]
    batch: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Epoch sizes (receipts) to time closing for.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    close_sizes: Vec<usize>,
}

const CHUNK: u32 = 16 * 1024;

fn manifest(chunks: usize) -> Manifest {
    let ids: Vec<ChunkId> = (0..chunks)
        .map(|i| ChunkId::of(&(i as u64).to_le_bytes()))
        .collect();
    Manifest::new("bench", CHUNK as u64 * chunks as u64, CHUNK, ids).expect("valid manifest")
}

async fn oracle(dir: &std::path::Path) -> anyhow::Result<Arc<OracleState>> {
    let mut config = Config::default();
    config.close.auto = false;
    config.audit.enabled = false;
    config.ingest.max_batch = 20_000;
    let store = Store::connect(&format!("sqlite://{}", dir.join("oracle.db").display())).await?;
    Ok(OracleState::new(
        config,
        store,
        SecretKey::from_seed(&[1; 32]),
        "token".into(),
        dir.join("batches"),
    )
    .await?)
}

/// `count` distinct receipt keys over seeders × downloaders × chunks.
fn receipt_plan(count: usize, chunks: &[ChunkId], epoch: dsi_protocol::Epoch) -> Vec<Receipt> {
    let seeders = 10usize;
    let per_pair = chunks.len();
    let downloaders = count.div_ceil(seeders * per_pair).max(1);
    let now = dsi_protocol::now_ms();
    let mut out = Vec::with_capacity(count);
    'outer: for d in 0..downloaders {
        for s in 0..seeders {
            for chunk in chunks {
                if out.len() == count {
                    break 'outer;
                }
                out.push(Receipt {
                    epoch,
                    seeder: SecretKey::from_seed(&[100 + s as u8; 32]).node_id(),
                    downloader: NodeId([0; 32]),
                    chunk: *chunk,
                    bytes: CHUNK,
                    issued_at_ms: now,
                    nonce: d as u64,
                });
            }
        }
    }
    out
}

fn downloader_key(index: u64) -> SecretKey {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&index.to_le_bytes());
    SecretKey::from_seed(&seed)
}

fn raw_rate(signed: &[SignedReceipt], network: &NetworkId, threads: usize) -> f64 {
    use ed25519_dalek::{Signature as DalekSignature, VerifyingKey};
    let messages: Vec<Vec<u8>> = signed
        .iter()
        .map(|r| r.receipt.signing_bytes(network))
        .collect();
    let signatures: Vec<DalekSignature> = signed
        .iter()
        .map(|r| DalekSignature::from_bytes(&r.signature.0))
        .collect();
    let keys: Vec<VerifyingKey> = signed
        .iter()
        .map(|r| VerifyingKey::from_bytes(r.receipt.downloader.as_bytes()).expect("key"))
        .collect();
    let per = signed.len().div_ceil(threads);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (messages, signatures, keys) = (&messages, &signatures, &keys);
            scope.spawn(move || {
                let range = t * per..((t + 1) * per).min(messages.len());
                for start in range.clone().step_by(1000) {
                    let end = (start + 1000).min(range.end);
                    let refs: Vec<&[u8]> = messages[start..end].iter().map(Vec::as_slice).collect();
                    ed25519_dalek::verify_batch(&refs, &signatures[start..end], &keys[start..end])
                        .expect("valid batch");
                }
            });
        }
    });
    signed.len() as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "oracle-bench: {} receipts end to end, {cores} cores",
        args.receipts
    );

    // Receipts, signed up front (signing is the downloaders' work, not the oracle's).
    let dir = tempfile::tempdir()?;
    let state = oracle(dir.path()).await?;
    let chunks = 1000;
    let manifest = manifest(chunks);
    state
        .store
        .put_manifest(
            &manifest,
            &dsi_protocol::NodeId([0; 32]),
            u64::MAX,
            dsi_protocol::now_ms(),
        )
        .await?;
    *state.chunk_lengths.write().await = state.store.chunk_lengths().await?;
    let epoch = state.config.epochs.epoch_at(dsi_protocol::now_ms());
    let network = state.config.network.clone();
    let plan = receipt_plan(args.receipts, &manifest.chunks, epoch);
    let started = Instant::now();
    let signed: Vec<SignedReceipt> = {
        let keys: Vec<SecretKey> = (0..=(args.receipts / (10 * chunks)) as u64)
            .map(downloader_key)
            .collect();
        plan.iter()
            .map(|r| SignedReceipt::sign(*r, &network, &keys[r.nonce as usize]))
            .collect()
    };
    println!(
        "signed {} receipts in {:.1} s (setup, not measured)",
        signed.len(),
        started.elapsed().as_secs_f64()
    );

    let raw_one = raw_rate(&signed, &network, 1);
    let raw_all = raw_rate(&signed, &network, cores);
    println!("raw ed25519 batch verify: {raw_one:.0}/s on 1 core, {raw_all:.0}/s on {cores} cores");

    // End to end over loopback HTTP.
    let (listener, addr) = oracle::bind("127.0.0.1:0".parse()?).await?;
    let cancel = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(oracle::serve(state.clone(), listener, cancel.clone()));
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v1/receipts");
    let bodies: Vec<Vec<u8>> = signed
        .chunks(args.batch)
        .map(|part| {
            serde_json::to_vec(&dsi_api::ReceiptBatch {
                receipts: part.to_vec(),
            })
            .expect("a receipt batch serializes")
        })
        .collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.clients {
        let (client, url, bodies, next) =
            (client.clone(), url.clone(), bodies.clone(), next.clone());
        tasks.spawn(async move {
            let mut accepted = 0usize;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(body) = bodies.get(i) else { break };
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?
                    .error_for_status()?;
                let answer: dsi_api::ReceiptBatchResponse = response.json().await?;
                accepted += answer.results.iter().filter(|v| v.is_accepted()).count();
            }
            anyhow::Ok(accepted)
        });
    }
    let mut accepted = 0;
    while let Some(result) = tasks.join_next().await {
        accepted += result??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ingest_rate = accepted as f64 / elapsed;
    anyhow::ensure!(
        accepted == signed.len(),
        "only {accepted} of {} accepted",
        signed.len()
    );
    let held = state.store.count_receipts(epoch).await?;
    anyhow::ensure!(held as usize == signed.len(), "{held} stored");
    println!(
        "end to end (HTTP batch -> rules -> verify -> SQLite commit): {ingest_rate:.0} receipts/s ({accepted} in {elapsed:.2} s, batches of {}, {} clients)",
        args.batch, args.clients
    );
    println!(
        "ratio to raw batch verify: {:.2} (1 core), {:.2} ({cores} cores)",
        ingest_rate / raw_one,
        ingest_rate / raw_all
    );
    cancel.cancel();
    server.await??;

    // Epoch close times.
    let mut close_figures = Vec::new();
    for &size in &args.close_sizes {
        let dir = tempfile::tempdir()?;
        let state = oracle(dir.path()).await?;
        state
            .store
            .put_manifest(
                &manifest,
                &dsi_protocol::NodeId([0; 32]),
                u64::MAX,
                dsi_protocol::now_ms(),
            )
            .await?;
        *state.chunk_lengths.write().await = state.store.chunk_lengths().await?;
        let now = dsi_protocol::now_ms();
        for s in 0..10u8 {
            let key = SecretKey::from_seed(&[100 + s; 32]);
            let announcement = Announcement {
                node: key.node_id(),
                url: format!("http://127.0.0.1:{}", 9000 + u16::from(s)),
                payout: PayoutAccount([s + 1; 20]),
                contents: vec![manifest.content_id()],
                issued_at_ms: now,
                endpoint: None,
            };
            state
                .store
                .put_announcement(
                    &announcement,
                    None,
                    oracle::store::LocationBound {
                        max: 0,
                        vetting_per_epoch: 3,
                        vetted_at: 9,
                    },
                    now,
                    now + 3_600_000,
                )
                .await?;
        }
        let plan = receipt_plan(size, &manifest.chunks, epoch);
        let started = Instant::now();
        for part in plan.chunks(20_000) {
            let rows: Vec<SignedReceipt> = part
                .iter()
                .map(|r| {
                    let mut r = *r;
                    r.downloader = NodeId(downloader_key(r.nonce).node_id().0);
                    SignedReceipt {
                        receipt: r,
                        signature: Signature([0; 64]),
                    }
                })
                .collect();
            state.store.insert_receipts(&rows).await?;
        }
        println!(
            "inserted {size} receipts for the close test in {:.1} s (setup)",
            started.elapsed().as_secs_f64()
        );
        let started = Instant::now();
        let record = oracle::close::close_epoch(&state, epoch)
            .await
            .context("close")?;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "close epoch of {size} receipts: {seconds:.2} s ({} seeders, batch file {} MiB)",
            record.seeders,
            std::fs::metadata(dir.path().join("batches").join(&record.batch_file))?.len() >> 20
        );
        close_figures.push((size, seconds));
    }
    let mut summary = format!(
        "summary: ingest_rps={ingest_rate:.0} raw_verify_rps_1core={raw_one:.0} raw_verify_rps_all={raw_all:.0} ratio_1core={:.2} ratio_all={:.2}",
        ingest_rate / raw_one,
        ingest_rate / raw_all
    );
    for (size, seconds) in &close_figures {
        summary.push_str(&format!(" close_{size}_s={seconds:.2}"));
    }
    if let [(small, t_small), .., (large, t_large)] = close_figures[..] {
        let linearity = (t_large / t_small) / (large as f64 / small as f64);
        summary.push_str(&format!(" close_scaling={linearity:.2}"));
    }
    println!("{summary}");
    Ok(())
}
