//! The node connection: dry-runs through the runtime API (`ReviveApi_call`,
//! `ReviveApi_instantiate`), `Revive::call` / `instantiate_with_code` / `map_account`
//! extrinsics signed in this process and followed to inclusion, and balance reads.
//!
//! **Reconnecting.** Every read goes through [`Node::read`], which reconnects (with backoff,
//! up to [`Node::reconnect_for`]) when the connection dropped, for example because the node
//! restarted.
//!
//! **A write is never sent twice.** Each extrinsic is signed once with an explicit nonce
//! (the account's next index, pool included). If the answer is lost (the connection drops
//! after sending), the client reconnects and compares the account's nonce on chain: moved
//! past ours means the extrinsic is in a block, which the client then finds by hash to read
//! its outcome; not moved means it is resent, byte for byte: the same nonce can be included
//! at most once, whatever happens.

use std::sync::Arc;
use std::time::Duration;

use parity_scale_codec::{Decode, Encode};
use subxt::backend::legacy::LegacyRpcMethods;
use subxt::backend::rpc::RpcClient;
use subxt::config::DefaultExtrinsicParamsBuilder;
use subxt::tx::{Payload, TxStatus};
use subxt::utils::AccountId32;
use subxt::{OnlineClient, PolkadotConfig};
use tokio::sync::RwLock;

use crate::ChainError;
use crate::accounts::Signer;

type Config = PolkadotConfig;
type Hash = <Config as subxt::Config>::Hash;

/// `Timestamp::Now`'s storage key: `twox128("Timestamp") ++ twox128("Now")`.
const TIMESTAMP_NOW: [u8; 32] = [
    0xf0, 0xc3, 0x65, 0xc3, 0xcf, 0x59, 0xd6, 0x71, 0xeb, 0x72, 0xda, 0x0e, 0x7a, 0x41, 0x13, 0xc4,
    0x9f, 0x1f, 0x05, 0x15, 0xf4, 0x62, 0xcd, 0xcf, 0x84, 0xe0, 0xf1, 0xd6, 0x04, 0x5d, 0xfc, 0xbb,
];

/// A block of the chain: its number and hash (SCALE: the number as `u32`, then the hash;
/// an epoch's batch records the block its close read the chain at).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct BlockRef {
    /// Its number.
    pub number: u32,
    /// Its hash.
    pub hash: [u8; 32],
}

/// Computation and proof size (pallet-revive's `Weight`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode, scale_encode::EncodeAsType,
)]
pub struct Weight {
    /// Computation.
    #[codec(compact)]
    pub ref_time: u64,
    /// Proof size.
    #[codec(compact)]
    pub proof_size: u64,
}

impl Weight {
    /// This weight plus `percent` per cent, saturating.
    fn with_margin(self, percent: u64) -> Self {
        Self {
            ref_time: self
                .ref_time
                .saturating_add(self.ref_time.saturating_mul(percent) / 100),
            proof_size: self
                .proof_size
                .saturating_add(self.proof_size.saturating_mul(percent) / 100),
        }
    }
}

#[derive(Encode)]
struct CallRequest {
    origin: [u8; 32],
    dest: [u8; 20],
    value: u128,
    gas_limit: Option<Weight>,
    storage_deposit_limit: Option<u128>,
    input: Vec<u8>,
}

#[derive(Encode)]
enum Code {
    Upload(Vec<u8>),
}

#[derive(Encode)]
struct InstantiateRequest {
    origin: [u8; 32],
    value: u128,
    gas_limit: Option<Weight>,
    storage_deposit_limit: Option<u128>,
    code: Code,
    data: Vec<u8>,
    salt: Option<[u8; 32]>,
}

#[derive(Decode)]
enum StorageDeposit {
    Refund(#[allow(dead_code)] u128),
    Charge(u128),
}

#[derive(Decode)]
struct ExecReturnValue {
    flags: u32,
    data: Vec<u8>,
}

/// What a dry-run of a call or instantiation found.
#[derive(Clone, Debug)]
pub struct DryRun {
    /// Whether the contract reverted (`data` is then its error).
    pub reverted: bool,
    /// What the contract returned.
    pub data: Vec<u8>,
    /// The address of the new contract (instantiation only).
    pub address: Option<[u8; 20]>,
    /// The gas the extrinsic needs.
    pub gas_required: Weight,
    /// The storage deposit it charges (0 when it refunds).
    pub deposit: u128,
}

/// `Revive::call`.
#[derive(scale_encode::EncodeAsType)]
struct CallArgs {
    dest: [u8; 20],
    value: u128,
    gas_limit: Weight,
    storage_deposit_limit: u128,
    data: Vec<u8>,
}

/// `Revive::instantiate_with_code`.
#[derive(scale_encode::EncodeAsType)]
struct InstantiateArgs {
    value: u128,
    gas_limit: Weight,
    storage_deposit_limit: u128,
    code: Vec<u8>,
    data: Vec<u8>,
    salt: Option<[u8; 32]>,
}

/// `Revive::map_account`.
#[derive(scale_encode::EncodeAsType)]
struct MapAccount {}

/// `Balances::transfer_keep_alive`.
#[derive(scale_encode::EncodeAsType)]
struct Transfer {
    dest: subxt::utils::MultiAddress<AccountId32, ()>,
    value: u128,
}

/// `Revive::ContractEmitted`.
#[derive(Debug, scale_decode::DecodeAsType)]
struct ContractEmitted {
    contract: [u8; 20],
    data: Vec<u8>,
    topics: Vec<[u8; 32]>,
}

impl subxt::events::StaticEvent for ContractEmitted {
    const PALLET: &'static str = "Revive";
    const EVENT: &'static str = "ContractEmitted";
}

/// An event a contract emitted in an extrinsic: the contract, its data and topics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emitted {
    /// The emitting contract.
    pub contract: [u8; 20],
    /// SCALE-encoded fields.
    pub data: Vec<u8>,
    /// Topics.
    pub topics: Vec<[u8; 32]>,
}

/// An extrinsic in a block.
#[derive(Clone, Debug)]
pub struct Included {
    /// The block.
    pub block: Hash,
    /// The contract events it emitted.
    pub emitted: Vec<Emitted>,
}

struct Conn {
    api: OnlineClient<Config>,
    rpc: LegacyRpcMethods<Config>,
}

/// A connection to a node, shared by every clone.
#[derive(Clone)]
pub struct Node {
    url: String,
    conn: Arc<RwLock<Option<Arc<Conn>>>>,
    /// How long to keep trying to reconnect before giving up.
    pub reconnect_for: Duration,
    calls: Arc<std::sync::atomic::AtomicU64>,
    lost_answers: Arc<std::sync::atomic::AtomicU64>,
    lose_next_answer: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({})", self.url)
    }
}

/// Words of the errors a lost connection gives (jsonrpsee, subxt, the OS).
const DISCONNECT_WORDS: [&str; 9] = [
    "restart",
    "closed",
    "connect",
    "networking",
    "transport",
    "timed out",
    "timeout",
    "broken pipe",
    "reset",
];

/// Whether an error means the connection is gone (reconnecting may help), as opposed to
/// an answer of the node.
fn is_disconnect(error: &subxt::Error) -> bool {
    match error {
        subxt::Error::Io(_) => true,
        subxt::Error::Rpc(subxt::error::RpcError::SubscriptionDropped) => true,
        other => is_connection_loss(&other.to_string()),
    }
}

impl Node {
    /// A node at `url` (`ws://` or `wss://`); connects on first use.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            conn: Arc::new(RwLock::new(None)),
            reconnect_for: Duration::from_secs(60),
            calls: Arc::default(),
            lost_answers: Arc::default(),
            lose_next_answer: Arc::default(),
        }
    }

    /// The node's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn connect_once(&self) -> Result<Arc<Conn>, subxt::Error> {
        let rpc = RpcClient::from_insecure_url(&self.url).await?;
        let api = OnlineClient::<Config>::from_rpc_client(rpc.clone()).await?;
        Ok(Arc::new(Conn {
            api,
            rpc: LegacyRpcMethods::new(rpc),
        }))
    }

    /// The current connection, connecting (with retries) if there is none.
    async fn conn(&self) -> Result<Arc<Conn>, ChainError> {
        if let Some(conn) = self.conn.read().await.as_ref() {
            return Ok(conn.clone());
        }
        self.reconnect(None).await
    }

    /// Drops `stale` (if it is still the current connection) and connects again, trying
    /// for up to [`Self::reconnect_for`].
    async fn reconnect(&self, stale: Option<&Arc<Conn>>) -> Result<Arc<Conn>, ChainError> {
        let mut slot = self.conn.write().await;
        match (slot.as_ref(), stale) {
            (Some(current), Some(stale)) if !Arc::ptr_eq(current, stale) => {
                return Ok(current.clone());
            }
            (Some(current), None) => return Ok(current.clone()),
            _ => {}
        }
        *slot = None;
        // A node never reached (a wrong URL, say) fails soon; a dropped connection gets the
        // full `reconnect_for` (a node restarting).
        let limit = if stale.is_some() {
            self.reconnect_for
        } else {
            self.reconnect_for.min(Duration::from_secs(10))
        };
        let started = std::time::Instant::now();
        let mut wait = Duration::from_millis(200);
        loop {
            match self.connect_once().await {
                Ok(conn) => {
                    if stale.is_some() {
                        tracing::info!(url = %self.url, "reconnected to the node");
                    }
                    *slot = Some(conn.clone());
                    return Ok(conn);
                }
                Err(e) if started.elapsed() < limit => {
                    tracing::warn!(url = %self.url, "cannot reach the node, trying again: {e}");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    return Err(ChainError::Rpc(format!(
                        "cannot reach the node at {} for {} s: {e}",
                        self.url,
                        started.elapsed().as_secs()
                    )));
                }
            }
        }
    }

    /// Runs a read, reconnecting and trying again while the connection is what failed.
    async fn read<T, F, Fut>(&self, what: &str, f: F) -> Result<T, ChainError>
    where
        F: Fn(Arc<Conn>) -> Fut,
        Fut: std::future::Future<Output = Result<T, subxt::Error>>,
    {
        let mut conn = self.conn().await?;
        let started = std::time::Instant::now();
        loop {
            match f(conn.clone()).await {
                Ok(value) => return Ok(value),
                Err(e) if is_disconnect(&e) && started.elapsed() < self.reconnect_for => {
                    tracing::warn!(read = what, "connection lost, reconnecting: {e}");
                    conn = self.reconnect(Some(&conn)).await?;
                }
                Err(e) => return Err(ChainError::Rpc(format!("{what}: {e}"))),
            }
        }
    }

    /// Extrinsics whose answer was lost (or late) and that were then looked for on chain.
    pub fn lost_answers(&self) -> u64 {
        self.lost_answers.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Test hook: the next extrinsic is sent, but its answer is thrown away as if the
    /// connection had dropped, so the lost-answer path runs for sure.
    #[doc(hidden)]
    pub fn lose_next_answer(&self) {
        self.lose_next_answer
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Runtime API calls (dry-runs, balance and nonce reads) made so far by this node
    /// handle and its clones: what a bounded number of round trips is measured in.
    pub fn runtime_calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn state_call(
        &self,
        method: &'static str,
        params: Vec<u8>,
    ) -> Result<Vec<u8>, ChainError> {
        self.state_call_at(method, params, None).await
    }

    /// A runtime API call on the state of block `at` (the best block when `None`).
    async fn state_call_at(
        &self,
        method: &'static str,
        params: Vec<u8>,
        at: Option<[u8; 32]>,
    ) -> Result<Vec<u8>, ChainError> {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.read(method, |conn| {
            let params = params.clone();
            async move {
                conn.rpc
                    .state_call(method, Some(&params), at.map(Hash::from))
                    .await
            }
        })
        .await
    }

    /// The newest finalized block.
    pub async fn finalized(&self) -> Result<BlockRef, ChainError> {
        self.read("chain_getFinalizedHead", |conn| async move {
            let hash = conn.rpc.chain_get_finalized_head().await?;
            let header = conn.rpc.chain_get_header(Some(hash)).await?;
            Ok(BlockRef {
                number: header.map(|h| h.number).unwrap_or(0),
                hash: hash.0,
            })
        })
        .await
    }

    /// The hash of block `number` of the canonical chain, if there is one.
    pub async fn block_hash(&self, number: u32) -> Result<Option<[u8; 32]>, ChainError> {
        self.read("chain_getBlockHash", |conn| async move {
            let hash = conn
                .rpc
                .chain_get_block_hash(Some(u64::from(number).into()))
                .await?;
            Ok(hash.map(|h| h.0))
        })
        .await
    }

    /// When block `hash` was made (`Timestamp::Now`, ms; 0 for the genesis block).
    pub async fn timestamp(&self, hash: [u8; 32]) -> Result<u64, ChainError> {
        let data = self
            .read("state_getStorage(Timestamp::Now)", |conn| async move {
                conn.rpc
                    .state_get_storage(&TIMESTAMP_NOW, Some(Hash::from(hash)))
                    .await
            })
            .await?;
        match data {
            None => Ok(0),
            Some(bytes) => u64::decode(&mut &bytes[..])
                .map_err(|e| ChainError::Rpc(format!("unreadable Timestamp::Now: {e}"))),
        }
    }

    /// The newest block made at or before `ms`, on the finalized chain, once every block
    /// made by then is final: so every reader asking later gets the same block, whatever
    /// was added since. Waits up to `wait` for the finality of blocks made before `ms`,
    /// then fails (the caller tries again later), unless `ms` is still to come (then the
    /// newest final block). Probes backwards from the
    /// finalized head in growing steps, then bisects: a few reads of recent state.
    pub async fn block_at(&self, ms: u64, wait: Duration) -> Result<BlockRef, ChainError> {
        let started = std::time::Instant::now();
        let (head, head_made) = loop {
            let head = self.finalized().await?;
            let made = self.timestamp(head.hash).await?;
            if made > ms || self.best_number().await? <= head.number {
                break (head, made);
            }
            if started.elapsed() >= wait {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                if ms >= now {
                    // `ms` has not come yet (an epoch closed before its end): nothing
                    // later can be agreed on; the newest final block is the best there is.
                    break (head, made);
                }
                // Reading at whatever is final now would give each reader another block.
                return Err(ChainError::Rpc(format!(
                    "the blocks made before {ms} ms are not final after {} s (finalized head {})",
                    wait.as_secs(),
                    head.number
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let made = async |number: u32| -> Result<(u64, [u8; 32]), ChainError> {
            let hash = self.block_hash(number).await?.ok_or_else(|| {
                ChainError::Rpc(format!("no block {number} below the finalized head"))
            })?;
            Ok((self.timestamp(hash).await?, hash))
        };
        if head_made <= ms {
            return Ok(head);
        }
        // `after`: a block made after `ms`; `before`: one made at or before it.
        let mut after = head.number;
        let mut step = 1u32;
        let mut before = loop {
            let probe = after.saturating_sub(step);
            if made(probe).await?.0 <= ms {
                break probe;
            }
            if probe == 0 {
                return Err(ChainError::Rpc(format!("the genesis block is after {ms}")));
            }
            after = probe;
            step = step.saturating_mul(2);
        };
        while after - before > 1 {
            let mid = before + (after - before) / 2;
            if made(mid).await?.0 <= ms {
                before = mid;
            } else {
                after = mid;
            }
        }
        let (_, hash) = made(before).await?;
        Ok(BlockRef {
            number: before,
            hash,
        })
    }

    /// The best block's number.
    pub async fn best_number(&self) -> Result<u32, ChainError> {
        self.read("chain_getHeader", |conn| async move {
            let header = conn.rpc.chain_get_header(None).await?;
            Ok(header.map(|h| h.number).unwrap_or(0))
        })
        .await
    }

    /// Dry-runs a call of `dest` by the account `origin` through `ReviveApi_call` (no
    /// signature: any account can be named, [`crate::READER_ORIGIN`] for reads), on the
    /// state of block `at` (the best block when `None`). `Err` is a dispatch error of the
    /// runtime (the contract did not run to completion), decoded.
    pub async fn dry_run_call(
        &self,
        origin: [u8; 32],
        dest: [u8; 20],
        value: u128,
        input: Vec<u8>,
        at: Option<[u8; 32]>,
    ) -> Result<Result<DryRun, String>, ChainError> {
        let request = CallRequest {
            origin,
            dest,
            value,
            gas_limit: None,
            storage_deposit_limit: None,
            input,
        };
        let bytes = self
            .state_call_at("ReviveApi_call", request.encode(), at)
            .await?;
        self.contract_result(&bytes, false).await
    }

    /// Dry-runs an instantiation through `ReviveApi_instantiate`.
    pub async fn dry_run_instantiate(
        &self,
        origin: &Signer,
        code: Vec<u8>,
        data: Vec<u8>,
        salt: Option<[u8; 32]>,
    ) -> Result<Result<DryRun, String>, ChainError> {
        let request = InstantiateRequest {
            origin: origin.account().0,
            value: 0,
            gas_limit: None,
            storage_deposit_limit: None,
            code: Code::Upload(code),
            data,
            salt,
        };
        let bytes = self
            .state_call("ReviveApi_instantiate", request.encode())
            .await?;
        self.contract_result(&bytes, true).await
    }

    async fn contract_result(
        &self,
        bytes: &[u8],
        instantiate: bool,
    ) -> Result<Result<DryRun, String>, ChainError> {
        let bad = |e: parity_scale_codec::Error| {
            ChainError::Rpc(format!("unreadable dry-run result: {e}"))
        };
        let mut cursor = bytes;
        let _consumed = Weight::decode(&mut cursor).map_err(bad)?;
        let gas_required = Weight::decode(&mut cursor).map_err(bad)?;
        let deposit = match StorageDeposit::decode(&mut cursor).map_err(bad)? {
            StorageDeposit::Charge(amount) => amount,
            StorageDeposit::Refund(_) => 0,
        };
        match u8::decode(&mut cursor).map_err(bad)? {
            0 => {
                let value = ExecReturnValue::decode(&mut cursor).map_err(bad)?;
                let address = if instantiate {
                    Some(<[u8; 20]>::decode(&mut cursor).map_err(bad)?)
                } else {
                    None
                };
                Ok(Ok(DryRun {
                    reverted: value.flags & 1 != 0,
                    data: value.data,
                    address,
                    gas_required,
                    deposit,
                }))
            }
            _ => {
                let conn = self.conn().await?;
                let error = subxt::error::DispatchError::decode_from(cursor, conn.api.metadata())
                    .map(|e| dispatch_name(&e))
                    .unwrap_or_else(|e| format!("undecodable dispatch error: {e}"));
                Ok(Err(error))
            }
        }
    }

    /// An account's free balance in native units, read with `ReviveApi_balance` (EVM
    /// units of 10^-18; native = value / 10^6).
    pub async fn balance(&self, address: [u8; 20]) -> Result<u128, ChainError> {
        let bytes = self
            .state_call("ReviveApi_balance", address.encode())
            .await?;
        if bytes.len() != 32 {
            return Err(ChainError::Rpc(format!("U256 of {} bytes", bytes.len())));
        }
        if bytes[16..].iter().any(|b| *b != 0) {
            return Err(ChainError::Rpc("balance beyond u128".into()));
        }
        let mut low = [0u8; 16];
        low.copy_from_slice(&bytes[..16]);
        Ok(u128::from_le_bytes(low) / 1_000_000)
    }

    /// The account's nonce in the best block (not counting the transaction pool, nor
    /// waiting for finality), through the runtime API.
    async fn nonce_on_chain(&self, account: &AccountId32) -> Result<u64, ChainError> {
        let bytes = self
            .state_call("AccountNonceApi_account_nonce", account.0.encode())
            .await?;
        u32::decode(&mut bytes.as_slice())
            .map(u64::from)
            .map_err(|e| ChainError::Rpc(format!("unreadable account nonce: {e}")))
    }

    /// Submits `Revive::call` to `dest` with `input`, after the dry-run `dry` (its gas and
    /// deposit, with a margin), and waits until it is in a block. `Err` names the
    /// runtime's dispatch error.
    pub async fn call(
        &self,
        signer: &Signer,
        dest: [u8; 20],
        value: u128,
        input: Vec<u8>,
        dry: &DryRun,
    ) -> Result<Result<Included, String>, ChainError> {
        let payload = subxt::tx::DefaultPayload::new(
            "Revive",
            "call",
            CallArgs {
                dest,
                value,
                gas_limit: dry.gas_required.with_margin(20),
                storage_deposit_limit: deposit_limit(dry.deposit),
                data: input,
            },
        )
        .unvalidated();
        self.submit(signer, &payload).await
    }

    /// Submits `Revive::instantiate_with_code`.
    pub async fn instantiate(
        &self,
        signer: &Signer,
        code: Vec<u8>,
        data: Vec<u8>,
        salt: Option<[u8; 32]>,
        dry: &DryRun,
    ) -> Result<Result<Included, String>, ChainError> {
        let payload = subxt::tx::DefaultPayload::new(
            "Revive",
            "instantiate_with_code",
            InstantiateArgs {
                value: 0,
                gas_limit: dry.gas_required.with_margin(20),
                storage_deposit_limit: deposit_limit(dry.deposit),
                code,
                data,
                salt,
            },
        )
        .unvalidated();
        self.submit(signer, &payload).await
    }

    /// Maps the signer's account to its H160 (`Revive::map_account`), which pallet-revive
    /// requires of every caller; a no-op answer (`AccountAlreadyMapped`) is fine.
    pub async fn map_account(&self, signer: &Signer) -> Result<(), ChainError> {
        let payload =
            subxt::tx::DefaultPayload::new("Revive", "map_account", MapAccount {}).unvalidated();
        match self.submit(signer, &payload).await? {
            Ok(_) => Ok(()),
            Err(e) if e.contains("AccountAlreadyMapped") => Ok(()),
            Err(e) => Err(ChainError::Dispatch {
                contract: "Revive".into(),
                message: "map_account".into(),
                error: e,
            }),
        }
    }

    /// Transfers `value` native units to `dest` (keeping the sender alive).
    pub async fn transfer(
        &self,
        signer: &Signer,
        dest: &AccountId32,
        value: u128,
    ) -> Result<(), ChainError> {
        let payload = subxt::tx::DefaultPayload::new(
            "Balances",
            "transfer_keep_alive",
            Transfer {
                dest: subxt::utils::MultiAddress::Id(dest.clone()),
                value,
            },
        )
        .unvalidated();
        match self.submit(signer, &payload).await? {
            Ok(_) => Ok(()),
            Err(e) => Err(ChainError::Dispatch {
                contract: "Balances".into(),
                message: "transfer_keep_alive".into(),
                error: e,
            }),
        }
    }

    /// Signs `payload` with the account's next nonce, submits it and follows it into a
    /// block; see the module docs for what happens when the answer is lost. Writes of one
    /// account from this process go one at a time (one nonce each).
    async fn submit<P: Payload>(
        &self,
        signer: &Signer,
        payload: &P,
    ) -> Result<Result<Included, String>, ChainError> {
        let account = signer.account();
        let lock = account_lock(&account.0);
        let _turn = lock.lock().await;
        // Another process with the same key may take our nonce first; our extrinsic can
        // then never be included, so signing again with the next nonce is safe.
        for _ in 0..4 {
            match self.submit_once(signer, payload).await? {
                Submitted::Done(outcome) => return Ok(outcome),
                Submitted::Superseded(nonce) => {
                    tracing::warn!(
                        nonce,
                        "another extrinsic of this account took our nonce; signing again"
                    );
                }
            }
        }
        Err(ChainError::Rpc(
            "another sender with the same key keeps taking this account's nonces".into(),
        ))
    }

    async fn submit_once<P: Payload>(
        &self,
        signer: &Signer,
        payload: &P,
    ) -> Result<Submitted, ChainError> {
        let account = signer.account();
        let mut conn = self.conn().await?;
        // The nonce in the best block: what the runtime accepts next from this account
        // (an extrinsic of ours still in the pool would have been waited for, above).
        let nonce = self.nonce_on_chain(&account).await?;
        let from_block = self.best_number().await?;
        let header = self
            .read("chain_getHeader", |conn| async move {
                conn.rpc.chain_get_header(None).await
            })
            .await?
            .ok_or_else(|| ChainError::Rpc("the node has no best block".into()))?;
        // Mortal: an extrinsic that was lost for good stops being valid after these blocks.
        let params = DefaultExtrinsicParamsBuilder::<Config>::new()
            .nonce(nonce)
            .mortal(&header, MORTAL_BLOCKS)
            .build();
        let signed = conn
            .api
            .tx()
            .create_signed_offline(payload, signer.pair(), params)
            .map_err(|e| ChainError::Rpc(format!("cannot build the extrinsic: {e}")))?;
        let bytes = signed.encoded().to_vec();
        let hash = signed.hash();
        let started = std::time::Instant::now();
        let mut drop_answer = self
            .lose_next_answer
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        loop {
            let watched = watch(&conn, &bytes, WATCH_FOR).await;
            let watched = match watched {
                Ok(outcome) if drop_answer => {
                    // Test hook: the extrinsic went in, its answer is dropped.
                    drop_answer = false;
                    let _ = outcome;
                    Err(Watch::Lost("answer dropped (test hook)".into()))
                }
                other => other,
            };
            let detail = match watched {
                Ok(outcome) => return Ok(Submitted::Done(outcome)),
                Err(Watch::Refused(message)) => {
                    // Refused now (outdated, priority too low) may still mean ours is in:
                    // the nonce and the blocks tell.
                    if self.nonce_on_chain(&account).await? > nonce {
                        return self.find(hash, from_block, nonce).await;
                    }
                    return Err(ChainError::Rpc(format!(
                        "the node refused the extrinsic: {message}"
                    )));
                }
                Err(Watch::Pending(detail)) | Err(Watch::Lost(detail)) => detail,
            };
            self.lost_answers
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                nonce,
                "no answer for an extrinsic ({detail}); checking the chain"
            );
            if started.elapsed() > self.reconnect_for.saturating_mul(5) {
                return Err(ChainError::Rpc(format!(
                    "extrinsic with nonce {nonce} not seen in a block after {} s ({detail}); it stays valid for {MORTAL_BLOCKS} blocks",
                    started.elapsed().as_secs()
                )));
            }
            if is_connection_loss(&detail) {
                conn = self.reconnect(Some(&conn)).await?;
            }
            if self.nonce_on_chain(&account).await? > nonce {
                // In a block (ours, or another sender's with this nonce): find it.
                return self.find(hash, from_block, nonce).await;
            }
            // Not in a block: send the very same bytes again (same nonce: at most once).
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Finds the extrinsic `hash` in the blocks after `from_block` and reads its outcome;
    /// [`Submitted::Superseded`] when the account's nonce `nonce` went to another extrinsic.
    async fn find(&self, hash: Hash, from_block: u32, nonce: u64) -> Result<Submitted, ChainError> {
        let best = self.best_number().await?;
        for number in from_block..=best {
            let found = self
                .read("find the extrinsic", |conn| async move {
                    let Some(block_hash) =
                        conn.rpc.chain_get_block_hash(Some(number.into())).await?
                    else {
                        return Ok(None);
                    };
                    let block = conn.api.blocks().at(block_hash).await?;
                    let extrinsics = block.extrinsics().await?;
                    for extrinsic in extrinsics.iter() {
                        if extrinsic.hash() == hash {
                            let events = extrinsic.events().await?;
                            return Ok(Some(outcome(&conn.api, block_hash, &events)));
                        }
                    }
                    Ok(None)
                })
                .await?;
            if let Some(outcome) = found {
                return Ok(Submitted::Done(outcome));
            }
        }
        Ok(Submitted::Superseded(nonce))
    }
}

/// Blocks a signed extrinsic stays valid for.
const MORTAL_BLOCKS: u64 = 64;

/// How long to follow one submission before checking the chain.
const WATCH_FOR: Duration = Duration::from_secs(60);

/// What one signed extrinsic came to.
enum Submitted {
    /// In a block, with its outcome.
    Done(Result<Included, String>),
    /// Its nonce went to another extrinsic of the account: it can never be included.
    Superseded(u64),
}

/// The write lock of each account of this process.
type AccountLocks =
    std::sync::Mutex<std::collections::HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>;

/// One lock per account in this process: its writes take nonces one at a time.
fn account_lock(account: &[u8; 32]) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: std::sync::OnceLock<AccountLocks> = std::sync::OnceLock::new();
    let locks = LOCKS.get_or_init(Default::default);
    let mut map = match locks.lock() {
        Ok(map) => map,
        Err(poisoned) => poisoned.into_inner(),
    };
    map.entry(*account).or_default().clone()
}

fn is_connection_loss(detail: &str) -> bool {
    let text = detail.to_lowercase();
    DISCONNECT_WORDS.iter().any(|needle| text.contains(needle))
}

/// A storage deposit limit with a margin over what the dry-run charged.
fn deposit_limit(charged: u128) -> u128 {
    charged
        .saturating_add(charged / 5)
        .saturating_add(1_000_000_000)
}

fn dispatch_name(error: &subxt::error::DispatchError) -> String {
    match error {
        subxt::error::DispatchError::Module(module) => match module.details() {
            Ok(details) => format!("{}::{}", details.pallet.name(), details.variant.name),
            Err(_) => module.to_string(),
        },
        other => other.to_string(),
    }
}

enum Watch {
    /// The connection went away: the extrinsic may or may not be in a block.
    Lost(String),
    /// The node has it (in its pool) but no block yet within the time allowed.
    Pending(String),
    /// The node refused it (invalid, dropped): it is in no block.
    Refused(String),
}

fn outcome(
    api: &OnlineClient<Config>,
    block: Hash,
    events: &subxt::blocks::ExtrinsicEvents<Config>,
) -> Result<Included, String> {
    let mut emitted = Vec::new();
    let mut success = false;
    for event in events.iter() {
        // An event that does not decode could hide the failure after it.
        let event = event.map_err(|e| format!("undecodable event of the extrinsic: {e}"))?;
        match (event.pallet_name(), event.variant_name()) {
            ("System", "ExtrinsicFailed") => {
                // `ExtrinsicFailed { dispatch_error, dispatch_info }`: the error first.
                return Err(subxt::error::DispatchError::decode_from(
                    event.field_bytes(),
                    api.metadata(),
                )
                .map(|e| dispatch_name(&e))
                .unwrap_or_else(|e| format!("extrinsic failed (undecodable error: {e})")));
            }
            ("System", "ExtrinsicSuccess") => success = true,
            _ => {}
        }
        if let Ok(Some(e)) = event.as_event::<ContractEmitted>() {
            emitted.push(Emitted {
                contract: e.contract,
                data: e.data,
                topics: e.topics,
            });
        }
    }
    if !success {
        return Err("no ExtrinsicSuccess event for the extrinsic".into());
    }
    Ok(Included { block, emitted })
}

/// Submits `bytes` and follows them into a block, for at most `limit`.
async fn watch(
    conn: &Conn,
    bytes: &[u8],
    limit: Duration,
) -> Result<Result<Included, String>, Watch> {
    let tx = subxt::tx::SubmittableExtrinsic::from_bytes(conn.api.clone(), bytes.to_vec());
    let mut progress = match tx.submit_and_watch().await {
        Ok(progress) => progress,
        Err(e) if is_disconnect(&e) => return Err(Watch::Lost(e.to_string())),
        Err(e) => {
            let text = e.to_string();
            // Already in the pool (sent before the answer was lost): pending.
            // Or another sender's extrinsic with this nonce is (priority too low): pending
            // until the nonce moves.
            let lower = text.to_lowercase();
            if lower.contains("already imported") || lower.contains("priority is too low") {
                return Err(Watch::Pending(text));
            }
            return Err(Watch::Refused(text));
        }
    };
    let follow = async {
        while let Some(status) = progress.next().await {
            match status {
                Ok(TxStatus::InBestBlock(in_block) | TxStatus::InFinalizedBlock(in_block)) => {
                    let events = in_block
                        .fetch_events()
                        .await
                        .map_err(|e| Watch::Lost(e.to_string()))?;
                    return Ok(outcome(&conn.api, in_block.block_hash(), &events));
                }
                Ok(TxStatus::Invalid { message } | TxStatus::Dropped { message }) => {
                    return Err(Watch::Refused(message));
                }
                Ok(TxStatus::Error { message }) => return Err(Watch::Lost(message)),
                Ok(_) => continue,
                Err(e) => return Err(Watch::Lost(e.to_string())),
            }
        }
        Err(Watch::Lost("the node closed the subscription".into()))
    };
    match tokio::time::timeout(limit, follow).await {
        Ok(result) => result,
        Err(_) => Err(Watch::Pending(format!(
            "not in a block after {} s",
            limit.as_secs()
        ))),
    }
}
