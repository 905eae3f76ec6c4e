//! Chain submission: every closed epoch's root and total go to `reward_pool`, with its
//! subsidy and the hashes of its funding parts (its draws on chain sponsorships and debits
//! of credit, [`funding`]); once final, the parts are applied (the epoch is claimable
//! and a base only when all are); then its reputation scores go to `reputation` (in parts
//! of at most [`REPUTATION_PART`]). The epoch's status follows the chain (`submitted`,
//! `final`, `claimable`, `vetoed`).
//!
//! Each root names its base: the newest earlier closed epoch that is neither vetoed nor
//! mismatched (leaves are per epoch; the base orders the good chain); the pool refuses any
//! other base (`WrongBase`), so a submission waits until its base is final on chain. When
//! the chain shows an epoch vetoed, the oracle does what the pool did: every later closed
//! epoch is vetoed with it, and each seeder's recorded cumulative earnings go back to their
//! value at the base ([`crate::store::Store::roll_back_veto`], one transaction), so the
//! records match what the chain can still pay.
//!
//! Idempotent and restart-safe: each round reads the chain first and dry-runs every write
//! (the contracts refuse a repeated vote), so an oracle killed at any point resubmits only
//! what the chain does not have and never submits twice.

use dsi_api::oracle::EpochStatus;
use dsi_protocol::Epoch;

use crate::OracleState;
use crate::batch::EpochFunding;
use crate::chain::{Chain, ChainEpoch, ChainError, REPUTATION_PART, Written};

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
                let base = state.store.base_epoch(epoch).await?;
                let funding = funding(state, epoch, record.total).await?;
                let written = match chain
                    .submit_root(
                        epoch.0,
                        base.map(|b| b.0),
                        &record.root,
                        record.total,
                        &record.batch_content_id,
                        funding.subsidy,
                        &funding.hashes,
                    )
                    .await
                {
                    Ok(written) => written,
                    Err(ChainError::Refused { error, .. })
                        if error == "WrongBase" || error == "BaseNotFunded" =>
                    {
                        // The base is not final (or not funded) on chain yet; later epochs
                        // wait for it too.
                        tracing::info!(
                            epoch = epoch.0,
                            base = ?base.map(|b| b.0),
                            "waiting for the base epoch to become final on chain"
                        );
                        break;
                    }
                    Err(e) => return Err(e.into()),
                };
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
        if on_chain.status == "Vetoed" {
            roll_back(state, chain, epoch).await?;
            // Later records changed: the next round reads them again.
            return Ok(());
        }
        // An epoch funded by this round has a new challenge window (it starts again at
        // funding): it is `final` until a later round reads when that window ends.
        let funded_before = on_chain.funded();
        if !funded_before {
            apply_parts(state, chain, epoch, &on_chain).await?;
        }
        let status = if funded_before && block >= on_chain.claimable_from {
            EpochStatus::Claimable
        } else {
            EpochStatus::Final
        };
        if status != record.status {
            tracing::info!(epoch = epoch.0, %status, "epoch status");
            state.store.set_epoch_status(epoch, status).await?;
        }
        submit_scores(state, chain, epoch).await?;
    }
    if state.config.chain.claim_for_exited {
        claim_for_exited(state, chain).await?;
    }
    Ok(())
}

/// Leaves claimed for exited keys in one round at most (each is one extrinsic).
const EXIT_CLAIMS_PER_ROUND: u32 = 16;

/// Claims the leaves of keys that exited (`node-lite exit`) in claimable epochs, with this
/// oracle's account: a node that left is paid without a chain account of its own. Each
/// leaf is tried once (`exit_claims`); leaves below `chain.exit_claim_min` and leaves the
/// pool refuses are left to the seeder (`oracle claim --seeder`). Bounded: only keys that
/// earned have leaves, and each leaf pays one fee once.
async fn claim_for_exited(state: &OracleState, chain: &Chain) -> Result<(), SubmitError> {
    let min = u128::from(state.config.chain.exit_claim_min);
    for leaf in state.store.exit_claims_due(EXIT_CLAIMS_PER_ROUND).await? {
        let outcome = if leaf.amount < min {
            "below_min".to_string()
        } else {
            match chain
                .claim(
                    leaf.epoch.0,
                    &leaf.seeder,
                    &leaf.payout,
                    leaf.amount,
                    &leaf.proof,
                )
                .await
            {
                Ok(0) => "already_claimed".to_string(),
                Ok(paid) => {
                    tracing::info!(
                        epoch = leaf.epoch.0,
                        seeder = %leaf.seeder.short(),
                        paid = %paid,
                        payout = %leaf.payout,
                        "claimed for an exited seeder"
                    );
                    "paid".to_string()
                }
                // Not payable yet after all: the next round tries again.
                Err(ChainError::Refused { error, .. })
                    if error == "InChallengeWindow" || error == "EpochNotFinal" =>
                {
                    continue;
                }
                Err(ChainError::Refused { error, .. }) => {
                    tracing::warn!(
                        epoch = leaf.epoch.0,
                        seeder = %leaf.seeder.short(),
                        %error,
                        "the pool refused a claim for an exited seeder; left to the seeder"
                    );
                    format!("refused: {error}")
                }
                // The chain is unreachable: try again next round.
                Err(e) => return Err(e.into()),
            }
        };
        state
            .store
            .record_exit_claim(leaf.epoch, &leaf.seeder, &outcome, dsi_protocol::now_ms())
            .await?;
    }
    Ok(())
}

/// An epoch's funding ([`EpochFunding`]: its draws on chain sponsorships and its debits
/// of credit as its close recorded them, the parts and their hashes, and the subsidy it
/// needs from the pool's free balance on top of them).
pub async fn funding(
    state: &OracleState,
    epoch: Epoch,
    total: u128,
) -> Result<EpochFunding, crate::store::StoreError> {
    let (draws, debits) = state.store.epoch_funding(epoch).await?;
    let debits: Vec<([u8; 32], u128)> = debits.into_iter().map(|(d, a)| (d.0, a)).collect();
    Ok(EpochFunding::new(epoch, total, draws, debits))
}

/// Applies the funding parts of final `epoch` that the chain does not have yet; true once
/// it is funded. A part the contract refuses (a bound it breaks) leaves the epoch unfunded:
/// no later epoch can follow it until governance vetoes it.
async fn apply_parts(
    state: &OracleState,
    chain: &Chain,
    epoch: Epoch,
    on_chain: &ChainEpoch,
) -> Result<bool, SubmitError> {
    let record = state.store.epoch(epoch).await?;
    let total = record.map_or(on_chain.total, |r| r.total);
    let parts = funding(state, epoch, total).await?.parts;
    let (applied, count) = on_chain.parts_applied;
    if parts.len() != count as usize {
        tracing::error!(
            epoch = epoch.0,
            ours = parts.len(),
            chain = count,
            "the chain agreed on another number of funding parts"
        );
        return Ok(false);
    }
    let mut funded = false;
    for (index, part) in parts.iter().enumerate().skip(applied as usize) {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        match chain.fund_part(epoch.0, index, part).await {
            Ok(Some(now_funded)) => {
                funded = now_funded;
                tracing::info!(
                    epoch = epoch.0,
                    part = index,
                    draws = part.draws.len(),
                    debits = part.debits.len(),
                    funded,
                    "funding part applied"
                );
            }
            // Someone else applied it meanwhile: read the chain again next round.
            Ok(None) => return Ok(false),
            Err(e) => {
                tracing::error!(epoch = epoch.0, part = index, error = %e, "the chain refused a funding part: the epoch stays unfunded until governance vetoes it");
                return Err(e.into());
            }
        }
    }
    Ok(funded)
}

/// The chain vetoed `epoch` (itself, or as built on a vetoed epoch): it and every later
/// closed epoch are vetoed here too, and the cumulative earnings go back to the base.
async fn roll_back(state: &OracleState, chain: &Chain, epoch: Epoch) -> Result<(), SubmitError> {
    // Under the ingest lock that a close holds from reading the seeders' cumulative amounts
    // to committing its own: a close cannot build on amounts this rollback takes back.
    let rollback = {
        let _guard = state.ingest_lock.lock().await;
        state.store.roll_back_veto(epoch).await?
    };
    let vetoed: Vec<u64> = rollback.vetoed.iter().map(|e| e.0).collect();
    tracing::warn!(
        epoch = epoch.0,
        base = ?rollback.base.map(|b| b.0),
        ?vetoed,
        "epoch vetoed on chain: later epochs vetoed with it, cumulative earnings back at the base"
    );
    let chain_base = chain.last_good_epoch().await?;
    if chain_base != rollback.base.map(|b| b.0) {
        tracing::error!(
            ?chain_base,
            base = ?rollback.base.map(|b| b.0),
            "the chain's latest good epoch is not ours: the next submission will be refused"
        );
    }
    Ok(())
}

async fn submit_scores(
    state: &OracleState,
    chain: &Chain,
    epoch: Epoch,
) -> Result<(), SubmitError> {
    let first = match chain.reputation_last_part().await? {
        Some((last, _)) if last > epoch.0 => return Ok(()),
        Some((last, part)) if last == epoch.0 => part as usize + 1,
        _ => 0,
    };
    let scores = state.store.epoch_scores(epoch).await?;
    for (index, part) in scores.chunks(REPUTATION_PART).enumerate().skip(first) {
        let number = u32::try_from(index).unwrap_or(u32::MAX);
        if chain.submit_scores(epoch.0, number, part).await? == Written::Sent {
            tracing::info!(
                epoch = epoch.0,
                part = number,
                nodes = part.len(),
                "reputation submitted"
            );
        }
        // A part is applied at the committee's threshold; the next one waits for it.
        if chain.reputation_last_part().await? != Some((epoch.0, number)) {
            break;
        }
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
