//! Chain submission: every closed epoch's root and total go to `reward_pool`, then its
//! reputation scores to `reputation`; the epoch's status follows the chain (`submitted`,
//! `final`, `claimable`, `vetoed`).
//!
//! Idempotent and restart-safe: each round reads the chain first and dry-runs every write
//! (the contracts refuse a repeated vote), so an oracle killed at any point resubmits only
//! what the chain does not have and never submits twice.

use dsi_api::oracle::EpochStatus;
use dsi_protocol::Epoch;

use crate::OracleState;
use crate::chain::{Chain, ChainError, Written};

/// One round over every pending epoch, oldest first.
pub async fn sync(state: &OracleState, chain: &Chain) -> Result<(), SubmitError> {
    let block = chain.current_block().await?;
    let pending: Vec<EpochStatus> = EpochStatus::ALL
        .iter()
        .copied()
        .filter(|s| s.awaits_chain())
        .collect();
    for record in state.store.epochs_with_status(&pending).await? {
        let epoch = record.epoch;
        let on_chain = match chain.epoch(epoch.0).await? {
            Some(found) => Some(found),
            None if record.status == EpochStatus::Closed => {
                let written = chain
                    .submit_root(
                        epoch.0,
                        &record.root,
                        record.total,
                        &record.batch_content_id,
                    )
                    .await?;
                if written == Written::Sent {
                    state.metrics.submitted();
                    tracing::info!(epoch = epoch.0, root = %hex::encode(record.root), total = %record.total, "root submitted");
                    if std::env::var("DSI_FAULT").as_deref() == Ok("oracle-abort-after-submit") {
                        // Fault injection for the restart test: die before recording it.
                        std::process::abort();
                    }
                }
                state
                    .store
                    .set_epoch_status(epoch, EpochStatus::Submitted)
                    .await?;
                chain.epoch(epoch.0).await?
            }
            None => None,
        };
        let Some(on_chain) = on_chain else { continue };
        if on_chain.root != record.root || on_chain.total != record.total {
            tracing::error!(epoch = epoch.0, chain_root = %hex::encode(on_chain.root), our_root = %hex::encode(record.root), "the chain finalized another root");
            state
                .store
                .set_epoch_status(epoch, EpochStatus::Mismatch)
                .await?;
            continue;
        }
        let status = match on_chain.status.as_str() {
            "Vetoed" => EpochStatus::Vetoed,
            _ if block >= on_chain.claimable_from => EpochStatus::Claimable,
            _ => EpochStatus::Final,
        };
        if status != record.status {
            tracing::info!(epoch = epoch.0, %status, "epoch status");
            state.store.set_epoch_status(epoch, status).await?;
        }
        if status != EpochStatus::Vetoed {
            submit_scores(state, chain, epoch).await?;
        }
    }
    Ok(())
}

async fn submit_scores(
    state: &OracleState,
    chain: &Chain,
    epoch: Epoch,
) -> Result<(), SubmitError> {
    if chain
        .reputation_last_epoch()
        .await?
        .is_some_and(|last| last >= epoch.0)
    {
        return Ok(());
    }
    let mut scores = state.store.epoch_scores(epoch).await?;
    if scores.is_empty() {
        return Ok(());
    }
    if scores.len() > 256 {
        tracing::warn!(
            epoch = epoch.0,
            nodes = scores.len(),
            "more scores than one reputation batch holds; submitting the first 256"
        );
        scores.truncate(256);
    }
    if chain.submit_scores(epoch.0, &scores).await? == Written::Sent {
        tracing::info!(
            epoch = epoch.0,
            nodes = scores.len(),
            "reputation submitted"
        );
    }
    Ok(())
}

/// A submission round failed (it is retried on the next round).
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The chain.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The database.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}
