//! The chain client: the oracle reads the `multipliers` contract at epoch close, submits
//! each closed epoch's root and total to `reward_pool` and its reputation scores to
//! `reputation`, claims for seeders and runs governance, all through [`dsi_chain`], the
//! one in-process client every chain user shares (no child process, no secret on a
//! command line).

pub use dsi_chain::{
    BlockRef, Chain, ChainEpoch, ChainError, Contract, Deployment, FundingPart, Proposal,
    REPUTATION_PART, Signer, Written,
};
pub use dsi_chain::{accounts, deploy};
