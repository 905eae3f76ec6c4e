//! The bodies of the oracle's HTTP API (`oracle/API.md` lists the routes with examples).
//! `POST /v1/announce` takes a [`dsi_protocol::SignedAnnouncement`], `POST /v1/receipts`
//! a [`crate::ReceiptBatch`]; manifests and batch files travel as raw bytes.

use dsi_protocol::reputation::Standing;
use dsi_protocol::{ChunkId, ContentId, Epoch, EpochSchedule, NetworkId, NodeId, PayoutAccount};
use serde::{Deserialize, Serialize};

use crate::serde_as::{decimal, decimal_option, hex_32, hex_list};

/// `GET /v1/info`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// The network receipts and announcements must be signed for.
    pub network: NetworkId,
    /// The oracle's audit identity (the downloader id its audits name).
    pub oracle: NodeId,
    /// The epoch schedule.
    pub epochs: EpochSchedule,
    /// The current epoch.
    pub current_epoch: Epoch,
    /// Database backend: `sqlite` or `postgres`.
    pub database: String,
    /// Oracle version.
    pub version: String,
    /// The relays through which this oracle audits nodes over iroh (its `[iroh] relays`);
    /// empty: it reaches nodes over HTTP only, so they announce an http URL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relays: Vec<String>,
}

/// Answer to `POST /v1/announce`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceResponse {
    /// When the announcement expires unless renewed (Unix ms).
    pub expires_at_ms: u64,
    /// Announced contents whose manifest the oracle lacks: `POST /v1/manifests` them.
    pub unknown_contents: Vec<ContentId>,
    /// False if a newer announcement from this node was already held (this one is ignored).
    pub stored: bool,
}

/// An estimate of a seeder's pay for the open epoch (`GET /v1/seeders/{node}`): its
/// receipts accepted so far priced at the market, less the fee, and the per-replica pay of
/// each funded content the newest close counted it for, both times its reputation factor.
/// An upper bound: an unvetted key earns its share only, a downloader pays only what its
/// credit covers, and the close may count other replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenEstimate {
    /// The open epoch.
    pub epoch: Epoch,
    /// Receipts accepted for it so far.
    pub receipts: u64,
    /// Bytes they attest.
    pub bytes: u64,
    /// Bandwidth pay, native units.
    #[serde(with = "decimal")]
    pub bandwidth: u128,
    /// Storage pay, native units.
    #[serde(with = "decimal")]
    pub storage: u128,
}

/// A seeder's claims (`GET /v1/seeders/{node}`), over its newest 50 leaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Paid out on chain so far (`reward_pool.claimed`, read at most every 10 s); `None`
    /// without a chain, or when the chain could not be read just now.
    #[serde(default, with = "decimal_option")]
    pub claimed: Option<u128>,
    /// Leaves of claimable epochs (final and funded) not claimed yet (`reward_pool.claimed_in`
    /// read for each): `oracle claim --seeder NODE` pays them (anyone may; the money goes
    /// to the payout account). When `claimed` is unknown this is every claimable leaf.
    #[serde(with = "decimal")]
    pub claimable: u128,
    /// Leaves of epochs closed but not claimable yet (submitted, in their challenge window,
    /// or waiting for funds).
    #[serde(with = "decimal")]
    pub waiting: u128,
}

/// Where a node stands with the tracker (`POST /v1/availability`, `GET /v1/seeders/{node}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum NodeAvailability {
    /// Listed and audited as usual.
    #[default]
    Active,
    /// Paused for the epochs `from` (inclusive) to `until` (exclusive): not listed (from the
    /// notice on), not audited at those epochs' closes, its reputation and seniority kept.
    Paused {
        /// The first paused epoch.
        from: Epoch,
        /// The first epoch after the pause.
        until: Epoch,
    },
    /// Exited in `epoch`: not listed, not audited, its announcements refused for good.
    Exited {
        /// The epoch the node exited in.
        epoch: Epoch,
    },
}

/// Answer to `POST /v1/availability`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilityResponse {
    /// The node's availability after the notice.
    pub availability: NodeAvailability,
    /// The epoch now. A pause starts after it: its close still audits the node.
    pub current_epoch: Epoch,
    /// When the current epoch's close starts at the earliest (its end plus
    /// `close.delay_ms`, Unix ms). A pausing node keeps serving until that close is done
    /// (`GET /v1/epochs/{current_epoch}` answers a closed epoch), or fails its audits there.
    pub close_starts_ms: u64,
}

/// Answer to `POST /v1/manifests`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestResponse {
    /// The manifest's content id.
    pub content_id: ContentId,
    /// False if it was already registered.
    pub new: bool,
}

/// Most chunk ids in one `POST /v1/chunk-lengths` (else `batch_too_large`).
pub const MAX_CHUNK_LENGTH_QUERY: usize = 4096;

/// Body of `POST /v1/chunk-lengths`: the chunks whose registered lengths are asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkLengthsRequest {
    /// At most [`MAX_CHUNK_LENGTH_QUERY`] chunk ids.
    pub chunks: Vec<ChunkId>,
}

/// Answer to `POST /v1/chunk-lengths`: one entry per asked chunk, in order, `null` for a
/// chunk no registered manifest names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkLengthsResponse {
    /// The registered lengths.
    pub lengths: Vec<Option<u32>>,
}

/// Answer to `POST /v1/chunks/{id}` (the chunk's bytes, which prove its length).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkProofResponse {
    /// The chunk.
    pub chunk: ChunkId,
    /// Its length, proven by its bytes; registered now.
    pub length: u32,
    /// The length registered before (equal to `length` when it was right).
    pub previous: u32,
    /// Manifests dropped because they gave the chunk a false length. (Receipts judged
    /// against the false length are left out of their epoch's batch at close.)
    pub dropped_manifests: Vec<ContentId>,
}

/// One peer of `GET /v1/content/{id}/peers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Its node id.
    pub node: NodeId,
    /// Its base URL.
    pub url: String,
    /// Where it is reached over iroh, as it announced (signed) it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<dsi_protocol::NodeEndpoint>,
}

/// `GET /v1/content/{id}/peers`: live nodes announcing the content.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeersResponse {
    /// The peers, by node id.
    pub peers: Vec<Peer>,
}

/// `GET /v1/epochs/current`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentEpoch {
    /// The open epoch.
    pub epoch: Epoch,
    /// Its start, Unix ms.
    pub start_ms: u64,
    /// Its end (exclusive), Unix ms.
    pub end_ms: u64,
    /// The newest closed epoch.
    pub last_closed: Option<Epoch>,
}

named_enum! {
    /// Where an epoch stands. Stored as its name.
    pub enum EpochStatus {
        /// Receipts are still accepted.
        Open = "open",
        /// Closed at the oracle, not yet on chain.
        Closed = "closed",
        /// This oracle's vote for the root is on chain.
        Submitted = "submitted",
        /// The committee's threshold is reached; the challenge window runs.
        Final = "final",
        /// The challenge window is over: seeders can claim.
        Claimable = "claimable",
        /// Governance vetoed the root.
        Vetoed = "vetoed",
        /// The chain finalized a different root: an operator must look.
        Mismatch = "mismatch",
    }
}

impl EpochStatus {
    /// Statuses that still need the chain's attention.
    pub fn awaits_chain(self) -> bool {
        matches!(self, Self::Closed | Self::Submitted | Self::Final)
    }
}

/// A closed epoch (`GET /v1/epochs/{n}` once closed; the entries of
/// [`CloseResponse::closed`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedEpoch {
    /// The epoch.
    pub epoch: Epoch,
    /// Where it stands (never `open`).
    pub status: EpochStatus,
    /// Merkle root of the reward leaves (all zeros when nobody earned).
    #[serde(with = "hex_32")]
    pub root: [u8; 32],
    /// Sum of the epoch's amounts, native units.
    #[serde(with = "decimal")]
    pub total: u128,
    /// Leaves (seeders that earned).
    pub seeders: u64,
    /// Receipts aggregated.
    pub receipts: u64,
    /// Content id of the published batch (BLAKE3 over `dsi/batch/v1` ‖ file bytes).
    pub batch_content_id: ContentId,
    /// The batch file's name in the oracle's `batches/` (`epoch-NNNNNNNN.batch`).
    pub batch_file: String,
    /// When it closed, Unix ms.
    pub closed_at_ms: u64,
    /// How long closing took.
    pub close_duration_ms: u64,
}

/// An epoch that is still open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenEpoch {
    /// The epoch.
    pub epoch: Epoch,
    /// Always [`EpochStatus::Open`].
    pub status: EpochStatus,
    /// Receipts accepted so far.
    pub receipts: u64,
}

/// `GET /v1/epochs/{n}`: a closed epoch's record, or an open one's receipt count. Tell
/// them apart by `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EpochInfo {
    /// Closed (or later).
    Closed(ClosedEpoch),
    /// Still open.
    Open(OpenEpoch),
}

impl EpochInfo {
    /// The epoch.
    pub fn epoch(&self) -> Epoch {
        match self {
            Self::Closed(c) => c.epoch,
            Self::Open(o) => o.epoch,
        }
    }

    /// Its status.
    pub fn status(&self) -> EpochStatus {
        match self {
            Self::Closed(c) => c.status,
            Self::Open(o) => o.status,
        }
    }

    /// Receipts accepted (open) or aggregated (closed).
    pub fn receipts(&self) -> u64 {
        match self {
            Self::Closed(c) => c.receipts,
            Self::Open(o) => o.receipts,
        }
    }
}

/// One seeder's leaf in a closed epoch, with its Merkle proof
/// (`GET /v1/epochs/{n}/seeders/{node}`, `GET /v1/epochs/{n}/leaves`).
///
/// The leaf that the root commits to is `RewardLeaf { epoch, seeder, payout, amount }`;
/// `proof` verifies it (`dsi_protocol::merkle::verify`), as `reward_pool.claim` does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leaf {
    /// The epoch.
    pub epoch: Epoch,
    /// The seeder.
    pub seeder: NodeId,
    /// Where its rewards go.
    pub payout: PayoutAccount,
    /// Earned in this epoch, native units (what the leaf commits to and the claim pays).
    #[serde(with = "decimal")]
    pub amount: u128,
    /// Earned up to and including this epoch (the oracle's record; not in the leaf).
    #[serde(with = "decimal")]
    pub cumulative: u128,
    /// Of `amount`, paid for bandwidth.
    #[serde(with = "decimal")]
    pub bandwidth_amount: u128,
    /// Of `amount`, paid for storage.
    #[serde(with = "decimal")]
    pub storage_amount: u128,
    /// Bytes served in the epoch.
    pub bytes_served: u64,
    /// Receipts counted.
    pub receipts: u64,
    /// Reputation factor applied, ppm.
    pub reputation: u32,
    /// Sibling hashes from the leaf up to the root.
    #[serde(with = "hex_list")]
    pub proof: Vec<[u8; 32]>,
}

impl Leaf {
    /// The Merkle leaf the root commits to.
    pub fn reward_leaf(&self) -> dsi_protocol::RewardLeaf {
        dsi_protocol::RewardLeaf {
            epoch: self.epoch,
            seeder: self.seeder,
            payout: self.payout,
            amount: self.amount,
        }
    }
}

/// Body of `POST /v1/epochs/close` (admin); may be empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    /// Close every epoch through this one; default: the current epoch.
    #[serde(default)]
    pub through: Option<Epoch>,
}

/// Answer to `POST /v1/epochs/close`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseResponse {
    /// Epochs closed by this call, in order.
    pub closed: Vec<ClosedEpoch>,
}

/// A node's current announcement as the tracker keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAnnouncement {
    /// The node.
    pub node: NodeId,
    /// Where it serves.
    pub url: String,
    /// Its payout account.
    pub payout: PayoutAccount,
    /// Issue time of the announcement held, Unix ms.
    pub issued_at_ms: u64,
    /// When it expires unless renewed.
    pub expires_at_ms: u64,
    /// First announcement ever seen from this node.
    pub first_seen_ms: u64,
    /// Content it holds completely.
    pub contents: Vec<ContentId>,
    /// Where it is reached over iroh, if it announced that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<dsi_protocol::NodeEndpoint>,
}

named_enum! {
    /// How an audit went.
    pub enum AuditOutcome {
        /// The node served the chunk and its bytes hash to the chunk id.
        Passed = "passed",
        /// The node served bytes that hash to something else.
        WrongBytes = "wrong_bytes",
        /// The node answered but did not serve the chunk.
        Missing = "missing",
        /// The node could not be reached or stopped sending.
        Unreachable = "unreachable",
        /// The answer is not signed by the announced node key for this challenge (another
        /// node answered for this URL, or the answer was forged or replayed).
        BadSignature = "bad_signature",
    }
}

impl AuditOutcome {
    /// Whether the outcome shows the node does not hold what it announced (it answered,
    /// wrongly), as opposed to passing or being unreachable.
    pub fn disproves(self) -> bool {
        matches!(
            self,
            AuditOutcome::WrongBytes | AuditOutcome::Missing | AuditOutcome::BadSignature
        )
    }
}

/// One audit: a chunk the oracle fetched from a node and checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audit {
    /// The epoch it counted for.
    pub epoch: Epoch,
    /// The node audited.
    pub seeder: NodeId,
    /// The chunk asked for.
    pub chunk: ChunkId,
    /// How it went.
    pub outcome: AuditOutcome,
    /// Detail for humans.
    pub detail: String,
    /// When, Unix ms.
    pub at_ms: u64,
}

impl Audit {
    /// Whether the node proved it holds the chunk.
    pub fn passed(&self) -> bool {
        self.outcome == AuditOutcome::Passed
    }
}

/// `GET /v1/seeders/{node}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeederResponse {
    /// The seeder.
    pub seeder: NodeId,
    /// Reputation score, ppm.
    pub score: u32,
    /// Standing.
    pub standing: Standing,
    /// Reward factor, ppm.
    pub factor: u32,
    /// Cumulative earnings, native units.
    #[serde(with = "decimal")]
    pub cumulative: u128,
    /// Its current announcement, if any.
    pub announcement: Option<NodeAnnouncement>,
    /// Whether it is paused or exited.
    #[serde(default)]
    pub availability: NodeAvailability,
    /// What the open (current) epoch may pay it, from what the oracle holds so far.
    #[serde(default)]
    pub open_epoch: Option<OpenEstimate>,
    /// What its leaves paid out on chain and what can be claimed now.
    #[serde(default)]
    pub claims: Claims,
    /// Newest audits first (at most 50).
    pub audits: Vec<Audit>,
    /// Its leaves, newest first (at most 50).
    pub epochs: Vec<Leaf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for &status in EpochStatus::ALL {
            assert_eq!(status.as_str().parse::<EpochStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_string(&status).unwrap_or_default(),
                format!("\"{status}\"")
            );
        }
        for &outcome in AuditOutcome::ALL {
            assert_eq!(outcome.as_str().parse::<AuditOutcome>(), Ok(outcome));
        }
        assert!("sealed".parse::<EpochStatus>().is_err());
    }

    #[test]
    fn epoch_info_is_told_apart_by_shape() {
        let open = r#"{"epoch": 7, "status": "open", "receipts": 3}"#;
        let info: EpochInfo = serde_json::from_str(open).expect("open epoch");
        assert_eq!(info.status(), EpochStatus::Open);
        assert_eq!(info.receipts(), 3);
        let closed = ClosedEpoch {
            epoch: Epoch(7),
            status: EpochStatus::Claimable,
            root: [1; 32],
            total: u128::MAX,
            seeders: 1,
            receipts: 2,
            batch_content_id: ContentId([3; 32]),
            batch_file: "epoch-00000007.batch".into(),
            closed_at_ms: 4,
            close_duration_ms: 5,
        };
        let json = serde_json::to_string(&EpochInfo::Closed(closed.clone())).expect("json");
        assert!(json.contains(&format!("\"total\":\"{}\"", u128::MAX)));
        let back: EpochInfo = serde_json::from_str(&json).expect("closed epoch");
        assert_eq!(back, EpochInfo::Closed(closed));
    }
}

/// `POST /v1/sponsors` (admin token): fund a content's storage in the oracle's off-chain
/// ledger, `per_epoch` native units for `epochs` epochs from `first_epoch` (default: the
/// current epoch), paid to at most `replicas` replicas, one per network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SponsorRequest {
    /// The content.
    pub content: ContentId,
    /// Native units per epoch.
    #[serde(with = "decimal")]
    pub per_epoch: u128,
    /// Number of epochs (1 to [`MAX_SPONSORED_EPOCHS`]).
    pub epochs: u64,
    /// Target replication (1 to [`MAX_SPONSORED_REPLICAS`]).
    pub replicas: u32,
    /// First epoch funded (default: the current one).
    #[serde(default)]
    pub first_epoch: Option<Epoch>,
}

/// Most epochs one sponsorship may cover.
pub const MAX_SPONSORED_EPOCHS: u64 = 100_000;
/// Highest target replication of a sponsorship.
pub const MAX_SPONSORED_REPLICAS: u32 = 64;

/// One sponsorship of a content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sponsorship {
    /// The content.
    pub content: ContentId,
    /// Native units per epoch.
    #[serde(with = "decimal")]
    pub per_epoch: u128,
    /// Target replication.
    pub replicas: u32,
    /// First epoch funded.
    pub first_epoch: Epoch,
    /// Last epoch funded (inclusive).
    pub last_epoch: Epoch,
    /// When it was recorded, Unix ms.
    pub funded_at_ms: u64,
    /// Its id in the `reward_pool` contract when the chain holds it (the oracle mirrors
    /// the chain's sponsorships); absent in an oracle without a chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<u32>,
}

/// `GET /v1/content/{id}/funding`: a content's sponsorships and subsidy, and its replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentFunding {
    /// The content.
    pub content: ContentId,
    /// Every sponsorship recorded for it.
    pub sponsorships: Vec<Sponsorship>,
    /// Governance's boost if it is on the subsidized list.
    pub subsidy_boost: Option<u32>,
    /// Funding in force in the current epoch (sum of the active sponsorships).
    #[serde(with = "decimal")]
    pub per_epoch_now: u128,
    /// Nodes proven to hold it, with the epoch their current run started.
    pub holders: Vec<FundedHolder>,
}

/// `GET /v1/replication`: every funded content with its counted replicas and what one more
/// replica would earn, best paid per byte first. Replicators (`node-lite serve
/// --replicate`) fetch what is below its target and drop what is over it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replication {
    /// The newest closed epoch: its audits proved the holders listed (`None`: no close yet).
    pub closed_epoch: Option<Epoch>,
    /// The funded contents, at most [`MAX_REPLICATION_ENTRIES`].
    pub contents: Vec<ReplicationEntry>,
}

/// Most contents in a [`Replication`] answer.
pub const MAX_REPLICATION_ENTRIES: usize = 1000;

/// One funded content in [`Replication`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationEntry {
    /// The content.
    pub content: ContentId,
    /// Its size in bytes.
    pub length: u64,
    /// Replicas its funding pays (one per network).
    pub target: u32,
    /// The replicas counted (one node per /24 or /48 network, the longest-proven first,
    /// proven by the newest close), at most `target` of them: a holder not listed is
    /// surplus.
    pub holders: Vec<NodeId>,
    /// Networks holding it proven by the newest close, listed or not.
    pub holder_count: u32,
    /// Its funding per epoch, native units (for subsidized content an even share of the
    /// subsidy budget: an estimate, the close weighs by length, rarity and boost).
    #[serde(with = "decimal")]
    pub per_epoch: u128,
    /// What one replica earns per epoch at the target (`per_epoch / target`).
    #[serde(with = "decimal")]
    pub per_replica_per_epoch: u128,
}

impl ReplicationEntry {
    /// Replicas still wanted (0 at or above the target).
    pub fn wanted(&self) -> u32 {
        self.target.saturating_sub(self.holder_count)
    }

    /// Orders entries best paid per byte first (`per_replica_per_epoch / length`, compared
    /// by cross-multiplication; empty content last), then by content id.
    pub fn better_paid(a: &Self, b: &Self) -> std::cmp::Ordering {
        let left = a
            .per_replica_per_epoch
            .saturating_mul(u128::from(b.length.max(1)));
        let right = b
            .per_replica_per_epoch
            .saturating_mul(u128::from(a.length.max(1)));
        right.cmp(&left).then(a.content.cmp(&b.content))
    }
}

/// A proven holder of a funded content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundedHolder {
    /// The node.
    pub node: NodeId,
    /// First epoch of its current run of proven epochs.
    pub since: Epoch,
    /// The last epoch it was proven (older than the last closed epoch: within its grace,
    /// `audit.seniority_grace_epochs`, earning nothing until proven again).
    pub proven: Epoch,
}

/// `POST /v1/credits` (admin token): add to a downloader key's credit in the oracle's
/// off-chain ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditRequest {
    /// The downloader's node key.
    pub downloader: NodeId,
    /// Native units to add.
    #[serde(with = "decimal")]
    pub amount: u128,
}

/// `GET /v1/relay-access/{node}`: whether the network's relays carry a key's traffic
/// (`dsi-relay --admit-from`). Keys are free, so a relay that carries every key carries
/// anyone's traffic at the operator's cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayAccess {
    /// The key asked about.
    pub node: NodeId,
    /// Whether it is admitted: the oracle itself, a node that announced to this tracker
    /// (unless excluded for good), or a downloader with credit left.
    pub allowed: bool,
    /// Why, in words (for the relay's log).
    pub reason: String,
}

/// `GET /v1/credits/{node}`: a downloader key's credit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credit {
    /// The downloader.
    pub downloader: NodeId,
    /// Everything funded.
    #[serde(with = "decimal")]
    pub funded: u128,
    /// Debited by closed epochs that were not vetoed.
    #[serde(with = "decimal")]
    pub spent: u128,
    /// `funded − spent`.
    #[serde(with = "decimal")]
    pub available: u128,
    /// Native units per byte served at the price in force.
    pub price_per_byte: u64,
}

impl std::fmt::Display for Credit {
    /// One line: `credit of NODE: funded F, spent S, available A (price P per byte)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "credit of {}: funded {}, spent {}, available {} (price {} per byte)",
            self.downloader, self.funded, self.spent, self.available, self.price_per_byte
        )
    }
}
