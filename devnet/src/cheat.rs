//! The cheating epoch: what one person with a script tries, on the real network.
//!
//! - A **ring** ([`Ring`]): one seeder on its own network holding its own junk content,
//!   which the ring sponsors itself, and fresh downloader keys that sign receipts for that
//!   content without downloading a byte; some of the keys have credit the ring paid for.
//! - A **replica farm** ([`Network::start_farm`]): several node keys on one /24, each
//!   holding and announcing a funded content that is below its target replication, so
//!   that every key would take a replica's place if each counted.
//!
//! [`Network::cheat_report`] reads the epoch's published batch (verified) and reports what
//! the ring was paid against what it spent (the sponsorship drawn and its keys' debits),
//! what the farm was paid and how many of its keys counted, and what every honest seeder
//! was paid against a baseline: the same batch, for the same receipts, recomputed by
//! `protocol::reward` with the ring taken out (its seeder, its keys' receipts and credit)
//! and the farm reduced to one key (the one that counted): what one honest node on the
//! farm's network would have changed. [`CheatReport::check`] holds the economics to its
//! promise: the ring's net is at most zero and its bandwidth pay at most its keys' debits,
//! at most one farm key counts, and the honest seeders are paid exactly as in the baseline
//! (a second counted farm key would take part of their share, and fail it).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use dsi_protocol::reward::aggregate;
use dsi_protocol::{
    ChunkId, Epoch, Manifest, NetworkId, NodeId, PayoutAccount, Receipt, SecretKey, SignedReceipt,
};
use dsi_service::OracleClient;

use crate::{Network, SPONSOR_PER_EPOCH, random_file, tokens};

/// The manifest of `content` as the oracle has it.
pub async fn manifest(oracle: &OracleClient, content: &str) -> Result<Manifest> {
    let content = content.parse().context("a content id")?;
    let bytes = oracle.manifest(&content).await?;
    Manifest::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("manifest of {content}: {e}"))
}

/// Every chunk of a manifest with its length.
pub fn chunks_of(manifest: &Manifest) -> Vec<(ChunkId, u32)> {
    manifest
        .chunks
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, manifest.chunk_len(i)))
        .collect()
}

/// Signs one receipt per `(seeder, chunk, bytes)` as `downloader` (nothing is downloaded)
/// and posts them to the oracle in one batch; returns the verdicts in order ("accepted" or
/// the rule code).
pub async fn post_receipts(
    oracle: &OracleClient,
    epoch: u64,
    downloader: &SecretKey,
    served: &[(NodeId, ChunkId, u32)],
) -> Result<Vec<String>> {
    let network = NetworkId::default();
    let receipts: Vec<SignedReceipt> = served
        .iter()
        .enumerate()
        .map(|(i, (seeder, chunk, bytes))| {
            let receipt = Receipt {
                epoch: Epoch(epoch),
                seeder: *seeder,
                downloader: downloader.node_id(),
                chunk: *chunk,
                bytes: *bytes,
                issued_at_ms: dsi_protocol::now_ms(),
                nonce: 1000 + i as u64,
            };
            SignedReceipt::sign(receipt, &network, downloader)
        })
        .collect();
    let answer = oracle.submit_receipts(&receipts).await?;
    Ok(answer
        .results
        .iter()
        .map(|r| {
            r.rejection()
                .map_or("accepted", |code| code.as_str())
                .to_string()
        })
        .collect())
}

/// A ring of keys one person controls (see the module docs).
#[derive(Debug)]
pub struct Ring {
    /// The ring's seeder (a peer of the network).
    pub seeder: String,
    /// Its node id.
    pub seeder_id: NodeId,
    /// The ring's own content.
    pub content: String,
    /// What the ring's sponsorship of its own content offers per epoch.
    pub sponsorship: u128,
    /// The ring's downloader keys (fresh, never used to download).
    pub keys: Vec<SecretKey>,
    /// How many of `keys` (the first ones) the ring gave credit.
    pub funded: usize,
}

/// One honest seeder's pay in the cheating epoch against the baseline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HonestPay {
    /// Peer name.
    pub name: String,
    /// Paid in the epoch.
    pub paid: u128,
    /// Paid by the same epoch without the ring and the farm.
    pub baseline: u128,
}

/// What the cheating epoch paid whom (see the module docs).
#[derive(Clone, Debug)]
pub struct CheatReport {
    /// The epoch.
    pub epoch: u64,
    /// The ring's downloader keys, and how many had credit.
    pub ring_keys: (usize, usize),
    /// Receipts of the ring's keys the oracle accepted.
    pub ring_receipts: u64,
    /// Paid to the ring's seeder.
    pub ring_paid: u128,
    /// Of that, for storage (its own sponsorship).
    pub ring_storage: u128,
    /// Of that, for bandwidth (its own keys' credit).
    pub ring_bandwidth: u128,
    /// Drawn from the ring's sponsorship of its own content this epoch (what the ring
    /// spent on it; what reputation and vetting withhold is not drawn).
    pub ring_sponsorship: u128,
    /// Debited from the ring's keys' credit.
    pub ring_debited: u128,
    /// Node keys in the farm.
    pub farm_keys: usize,
    /// Farm keys among the farmed content's counted replicas.
    pub farm_counted: usize,
    /// Paid to the farm's keys in total.
    pub farm_paid: u128,
    /// Of that, for storage (the rest is bandwidth it really served, paid by downloaders).
    pub farm_storage: u128,
    /// Every honest seeder paid in the epoch or the baseline.
    pub honest: Vec<HonestPay>,
}

impl CheatReport {
    /// The ring's net: paid minus spent (sponsorship drawn and credit debited).
    pub fn ring_net(&self) -> i128 {
        let paid = i128::try_from(self.ring_paid).unwrap_or(i128::MAX);
        let spent = i128::try_from(self.ring_sponsorship.saturating_add(self.ring_debited))
            .unwrap_or(i128::MAX);
        paid.saturating_sub(spent)
    }

    /// The promise: the ring's net ≤ 0 and its bandwidth pay ≤ its debits, at most one
    /// farm key counted, the honest seeders paid exactly as in the baseline.
    pub fn check(&self) -> Result<()> {
        ensure!(
            self.ring_net() <= 0,
            "the ring gained {} units (paid {}, spent {} + {})",
            self.ring_net(),
            self.ring_paid,
            self.ring_sponsorship,
            self.ring_debited
        );
        ensure!(
            self.ring_bandwidth <= self.ring_debited,
            "the ring's seeder was paid {} for bandwidth its own keys paid {} for",
            self.ring_bandwidth,
            self.ring_debited
        );
        ensure!(
            self.farm_counted <= 1,
            "{} of the farm's {} keys on one network counted as replicas",
            self.farm_counted,
            self.farm_keys
        );
        for pay in &self.honest {
            ensure!(
                pay.paid == pay.baseline,
                "{} was paid {} with the cheaters and {} without them",
                pay.name,
                pay.paid,
                pay.baseline
            );
        }
        Ok(())
    }
}

fn signed(units: i128) -> String {
    let sign = if units < 0 { "-" } else { "" };
    format!("{sign}{}", tokens(units.unsigned_abs()))
}

impl fmt::Display for CheatReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  the ring ({} fresh keys, {} with credit; {} receipts accepted): paid {} ({} storage, {} bandwidth), spent {} of its sponsorship + {} credit: net {} tokens",
            self.ring_keys.0,
            self.ring_keys.1,
            self.ring_receipts,
            tokens(self.ring_paid),
            tokens(self.ring_storage),
            tokens(self.ring_bandwidth),
            tokens(self.ring_sponsorship),
            tokens(self.ring_debited),
            signed(self.ring_net())
        )?;
        writeln!(
            f,
            "  the farm ({} keys on one network): {} counted as a replica, paid {} tokens for storage and {} for bytes it served",
            self.farm_keys,
            self.farm_counted,
            tokens(self.farm_storage),
            tokens(self.farm_paid.saturating_sub(self.farm_storage))
        )?;
        write!(
            f,
            "  honest seeders, paid / baseline (same receipts, no ring, the farm as one node):"
        )?;
        for pay in &self.honest {
            write!(
                f,
                " {} {} / {}{}",
                pay.name,
                tokens(pay.paid),
                tokens(pay.baseline),
                if pay.paid == pay.baseline { "" } else { " (!)" }
            )?;
        }
        writeln!(f)
    }
}

impl Network {
    /// Sets up a ring (see the module docs): a seeder `name` on its own network holding
    /// `size` bytes of junk (written to `file`), which the ring sponsors itself for
    /// [`SPONSOR_PER_EPOCH`] at one replica, and `keys` fresh downloader keys, the first
    /// `funded` with `credit` each. Waits until the tracker lists the seeder.
    pub async fn start_ring(
        &mut self,
        name: &str,
        file: &Path,
        size: usize,
        keys: usize,
        funded: usize,
        credit: u128,
    ) -> Result<Ring> {
        self.add_peer(name, PayoutAccount([0xee; 20]))?;
        random_file(file, size)?;
        let content = self.add_file(name, file)?;
        self.start_peer(name, &[])?;
        self.wait_for_peers(&content, 1).await?;
        self.sponsor(&content, SPONSOR_PER_EPOCH, 1_000, 1).await?;
        let keys: Vec<SecretKey> = (0..keys)
            .map(|_| SecretKey::generate(&mut rand::rngs::OsRng))
            .collect();
        let funded = funded.min(keys.len());
        for key in keys.iter().take(funded) {
            self.credit_key(&key.node_id(), credit).await?;
        }
        Ok(Ring {
            seeder: name.to_string(),
            seeder_id: self.peer(name)?.id,
            content,
            sponsorship: SPONSOR_PER_EPOCH,
            keys,
            funded,
        })
    }

    /// Every key of the ring signs a receipt for every chunk of the ring's content, served
    /// by the ring's seeder, in `epoch`, and posts it to the oracle. Returns the verdicts.
    pub async fn ring_receipts(&self, ring: &Ring, epoch: u64) -> Result<Vec<String>> {
        let chunks = chunks_of(&manifest(&self.client, &ring.content).await?);
        let served: Vec<_> = chunks
            .iter()
            .map(|(chunk, len)| (ring.seeder_id, *chunk, *len))
            .collect();
        let mut verdicts = Vec::new();
        for key in &ring.keys {
            verdicts.extend(post_receipts(&self.client, epoch, key, &served).await?);
        }
        Ok(verdicts)
    }

    /// A replica farm: `count` new peers (`{prefix}-1`, ...) all on `127.0.{network}.0/24`,
    /// each holding `file` and serving it. Waits until the tracker lists them all (besides
    /// `listed_before` peers already listed). Returns their names.
    pub async fn start_farm(
        &mut self,
        prefix: &str,
        count: usize,
        file: &Path,
        network: u8,
        listed_before: usize,
    ) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut content = String::new();
        for i in 1..=count {
            let name = format!("{prefix}-{i}");
            self.add_peer(&name, PayoutAccount([0xfa; 20]))?;
            content = self.add_file(&name, file)?;
            let host = u8::try_from(i).context("at most 254 farm keys")?;
            self.start_peer_on(&name, network, host, &[])?;
            names.push(name);
        }
        if count > 0 {
            self.wait_for_peers(&content, listed_before + count).await?;
        }
        Ok(names)
    }

    /// What the closed `epoch` paid the ring, the farm and everyone else, against the
    /// baseline without the ring and the farm (see the module docs). The batch is verified
    /// first; `farmed` is the content the farm announced.
    pub async fn cheat_report(
        &self,
        epoch: u64,
        ring: &Ring,
        farm: &[String],
        farmed: &str,
    ) -> Result<CheatReport> {
        let (batch, rewards) = self.rewards(epoch).await?;
        let farm_ids: BTreeSet<NodeId> = farm
            .iter()
            .map(|name| self.peer(name).map(|p| p.id))
            .collect::<Result<_>>()?;
        let ring_keys: BTreeSet<NodeId> = ring.keys.iter().map(SecretKey::node_id).collect();
        let content_pay = |content: &str| -> Result<Option<&dsi_protocol::reward::ContentPay>> {
            let id: dsi_protocol::ContentId = content.parse().context("a content id")?;
            Ok(rewards.contents.iter().find(|c| c.content == id))
        };
        // The farm's keys that counted, in the order chosen; the baseline keeps the first.
        let farm_counted: Vec<NodeId> = content_pay(farmed)?
            .map(|pay| {
                pay.counted
                    .iter()
                    .filter(|id| farm_ids.contains(id))
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        let mut left_out: BTreeSet<NodeId> = farm_ids
            .iter()
            .filter(|id| farm_counted.first() != Some(id))
            .copied()
            .collect();
        left_out.insert(ring.seeder_id);

        let mut baseline_inputs = batch.inputs.clone();
        baseline_inputs
            .seeders
            .retain(|s| !left_out.contains(&s.seeder));
        baseline_inputs
            .credits
            .retain(|c| !ring_keys.contains(&c.downloader));
        let baseline = aggregate(
            &baseline_inputs,
            batch
                .receipts
                .iter()
                .map(|r| &r.receipt)
                .filter(|r| !ring_keys.contains(&r.downloader)),
        )
        .map_err(|e| anyhow::anyhow!("the baseline of epoch {epoch}: {e}"))?;

        let paid_of = |rewards: &dsi_protocol::reward::EpochRewards| -> BTreeMap<NodeId, u128> {
            rewards
                .seeders
                .iter()
                .map(|s| (s.seeder, s.amount))
                .collect()
        };
        let (paid, base) = (paid_of(&rewards), paid_of(&baseline));
        let cheaters: BTreeSet<NodeId> = farm_ids.iter().copied().chain([ring.seeder_id]).collect();
        let mut honest: Vec<HonestPay> = paid
            .keys()
            .chain(base.keys())
            .filter(|id| !cheaters.contains(id))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|id| HonestPay {
                name: self.name_of(id),
                paid: paid.get(id).copied().unwrap_or(0),
                baseline: base.get(id).copied().unwrap_or(0),
            })
            .filter(|p| p.paid > 0 || p.baseline > 0)
            .collect();
        honest.sort_by(|a, b| a.name.cmp(&b.name));

        let ring_reward = rewards.seeders.iter().find(|s| s.seeder == ring.seeder_id);
        let (farm_paid, farm_storage) = rewards
            .seeders
            .iter()
            .filter(|s| farm_ids.contains(&s.seeder))
            .fold((0u128, 0u128), |(paid, storage), s| {
                (paid + s.amount, storage + s.storage_amount)
            });
        Ok(CheatReport {
            epoch,
            ring_keys: (ring.keys.len(), ring.funded),
            ring_receipts: batch
                .receipts
                .iter()
                .filter(|r| ring_keys.contains(&r.receipt.downloader))
                .count() as u64,
            ring_paid: ring_reward.map_or(0, |r| r.amount),
            ring_storage: ring_reward.map_or(0, |r| r.storage_amount),
            ring_bandwidth: ring_reward.map_or(0, |r| r.bandwidth_amount),
            ring_sponsorship: content_pay(&ring.content)?.map_or(0, |pay| pay.paid),
            ring_debited: ring_keys.iter().map(|k| rewards.debited(k)).sum(),
            farm_keys: farm.len(),
            farm_counted: farm_counted.len(),
            farm_paid,
            farm_storage,
            honest,
        })
    }

    /// A peer's name, or the node id's short form.
    pub fn name_of(&self, id: &NodeId) -> String {
        self.peers
            .iter()
            .find(|p| p.id == *id)
            .map_or_else(|| id.short().to_string(), |p| p.name.clone())
    }
}
