//! DSI's one chain client, in-process: every chain user (the oracle's submitter and its
//! reads at close, governance, funding, claims, deploy, the devnet and the tests) calls the
//! four ink! contracts through it.
//!
//! - [`client::Node`]: the node's JSON-RPC over WebSocket with [`subxt`] (pinned to the
//!   version that matches `ink-node 0.43.2`'s runtime, pallet-revive 0.5): dry-runs through
//!   the runtime API (`ReviveApi_call`), `Revive::call` / `instantiate_with_code`
//!   extrinsics signed here and followed into a block, reconnection after a node restart,
//!   and nonce-checked resends so that a write whose answer was lost is never sent twice.
//! - [`bundle::Bundle`]: the contracts' own metadata (the `.contract` bundles
//!   `cargo contract build` writes): selectors, argument and return types, events and the
//!   `Error` enums. Arguments are encoded and answers decoded against those types.
//! - [`accounts`]: sr25519 keys from 0600 files (never on a command line, in a child's
//!   environment or in a log) and the dev accounts' table.
//! - [`contracts::Chain`]: the typed calls (`submit_root`, `claim`, `propose_rarity`...).
//! - [`deploy`]: uploads and instantiates the four contracts and writes `deployment.json`.

pub mod accounts;
pub mod bundle;
pub mod client;
pub mod contracts;
pub mod deploy;

pub use accounts::{READER_ORIGIN, Signer};
pub use client::BlockRef;
pub use contracts::{
    BOOSTS_PART, Chain, ChainCredit, ChainEpoch, ChainSponsorship, Contract, Deployment,
    FUNDING_PART, FundingPart, MAX_FUNDING_PARTS, Proposal, READ_PART, REPUTATION_PART, Written,
};

/// A chain failure. Each names what failed: the contract, the message and the decoded
/// error.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The deployment file is missing or malformed.
    #[error("deployment: {0}")]
    Deployment(String),
    /// A contract bundle is missing, malformed, or does not have what was asked.
    #[error("contract bundle: {0}")]
    Bundle(String),
    /// A key file or secret URI is unusable (the secret itself is never repeated).
    #[error("key: {0}")]
    Key(String),
    /// The contract answered with one of its errors.
    #[error("{contract}.{message} refused: {error}")]
    Refused {
        /// The contract.
        contract: &'static str,
        /// The message.
        message: String,
        /// The contract's error variant.
        error: String,
    },
    /// The runtime refused the call or the extrinsic (`Pallet::Error`).
    #[error("{contract}.{message} failed in the runtime: {error}")]
    Dispatch {
        /// The contract (or pallet).
        contract: String,
        /// The message.
        message: String,
        /// The dispatch error, decoded with the runtime's metadata.
        error: String,
    },
    /// An answer does not fit the type the bundle gives it.
    #[error("{contract}.{message}: {detail}")]
    Decode {
        /// The contract.
        contract: String,
        /// The message.
        message: String,
        /// What did not fit.
        detail: String,
    },
    /// The node's RPC failed (after reconnecting for as long as allowed).
    #[error("node RPC: {0}")]
    Rpc(String),
}

/// Result of the chain client.
pub type Result<T> = std::result::Result<T, ChainError>;
