//! `POST /v1/audit`: answering the oracle's storage audit challenges.
//!
//! The body is a `dsi_protocol::audit::SignedAuditChallenge` (JSON). The node answers only
//! a challenge that names this node, is fresh, was never answered before and is signed by
//! the auditor it trusts (its tracker's oracle key, learned from the tracker's
//! `GET /v1/info` when the node announces). The answer (`application/octet-stream`) is the
//! node's 64-byte ed25519 signature over the answer's signing bytes, followed by the
//! challenged chunks' bytes in the challenge's order. Audits are not downloads: they never
//! touch the receipt ledger, and nobody but the oracle can make the node serve through
//! this route.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use dsi_api::ErrorCode;
use dsi_protocol::audit::{
    AUDIT_CHALLENGE_TTL_MS, MAX_AUDIT_CHUNKS, PossessionHasher, SignedAuditChallenge, sign_answer,
};
use dsi_protocol::{AuditNonce, NodeId, now_ms};
use dsi_service::http::{ApiError, parse_json};

use super::{NodeState, blocking};

/// Most challenges remembered against replay. Only the trusted auditor can add one, and
/// each is forgotten once it expires.
const MAX_REMEMBERED_NONCES: usize = 4096;

/// The auditor this node answers and the challenges it already answered.
#[derive(Debug, Default)]
pub struct AuditGate {
    /// The configured oracle key (`[tracker] oracle_key`): then the only auditor ever.
    pinned: Option<NodeId>,
    auditor: Mutex<Option<NodeId>>,
    answered: Mutex<HashMap<AuditNonce, u64>>,
}

impl AuditGate {
    /// A gate that answers `pinned` only, whatever a tracker names; with `None` it trusts
    /// the key the tracker names ([`AuditGate::trust`]).
    pub fn pinned(pinned: Option<NodeId>) -> Self {
        Self {
            pinned,
            auditor: Mutex::new(pinned),
            answered: Mutex::default(),
        }
    }

    /// Trusts `auditor`'s challenges from now on (the tracker's oracle key); with a pinned
    /// key, refuses any other (the error is the pinned key).
    pub fn trust(&self, auditor: NodeId) -> Result<(), NodeId> {
        if let Some(pinned) = self.pinned {
            return if pinned == auditor {
                Ok(())
            } else {
                Err(pinned)
            };
        }
        *self
            .auditor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(auditor);
        Ok(())
    }

    /// The configured oracle key (`[tracker] oracle_key`), if one is.
    pub fn pinned_key(&self) -> Option<NodeId> {
        self.pinned
    }

    /// The trusted auditor, if known.
    pub fn auditor(&self) -> Option<NodeId> {
        *self
            .auditor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers a nonce until `expires_ms`; false if it was answered before or the memory
    /// is full of unexpired challenges.
    fn first_use(&self, nonce: AuditNonce, now: u64, expires_ms: u64) -> Result<(), String> {
        let mut answered = self
            .answered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if answered.contains_key(&nonce) {
            return Err("this challenge was already answered".into());
        }
        if answered.len() >= MAX_REMEMBERED_NONCES {
            answered.retain(|_, expires| *expires >= now);
            if answered.len() >= MAX_REMEMBERED_NONCES {
                return Err(format!(
                    "{MAX_REMEMBERED_NONCES} unexpired challenges are pending; try later"
                ));
            }
        }
        answered.insert(nonce, expires_ms);
        Ok(())
    }
}

fn refused(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::AuditRefused, message)
}

/// `POST /v1/audit`.
pub(super) async fn post_audit(
    State(state): State<Arc<NodeState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let signed: SignedAuditChallenge = parse_json(&body)?;
    let challenge = &signed.challenge;
    // Cheap checks first; the signature last.
    if challenge.chunks.is_empty() || challenge.chunks.len() > MAX_AUDIT_CHUNKS {
        return Err(refused(format!(
            "a challenge names 1 to {MAX_AUDIT_CHUNKS} chunks, this one {}",
            challenge.chunks.len()
        )));
    }
    if challenge.node != state.node_id {
        return Err(refused(format!(
            "this node is {}, the challenge is for {}",
            state.node_id, challenge.node
        )));
    }
    let now = now_ms();
    if !challenge.is_fresh(now) {
        return Err(refused(format!(
            "the challenge was issued at {} ms, more than {} s from now ({now} ms)",
            challenge.issued_at_ms,
            AUDIT_CHALLENGE_TTL_MS / 1000
        )));
    }
    match state.audits.auditor() {
        None => {
            return Err(refused(
                "this node has no trusted auditor yet (it learns its tracker's oracle key when it announces)",
            ));
        }
        Some(auditor) if auditor != challenge.auditor => {
            return Err(refused(format!(
                "challenges are answered for auditor {auditor} only, not {}",
                challenge.auditor
            )));
        }
        Some(_) => {}
    }
    signed
        .verify(&state.config.network)
        .map_err(|e| refused(format!("challenge signature: {e}")))?;
    state
        .audits
        .first_use(
            challenge.nonce,
            now,
            challenge
                .issued_at_ms
                .saturating_add(AUDIT_CHALLENGE_TTL_MS),
        )
        .map_err(refused)?;

    let reader = state.clone();
    let chunks = challenge.chunks.clone();
    let read = blocking(move || {
        let mut out = Vec::with_capacity(chunks.len());
        for chunk in &chunks {
            match reader.read_for_serving(chunk) {
                Ok(Some(bytes)) => out.push(bytes),
                Ok(None) => return Ok(Err(*chunk)),
                Err(error) => return Err(error),
            }
        }
        Ok(Ok(out))
    })
    .await?
    .map_err(ApiError::internal)?;
    let chunks = read.map_err(|chunk| {
        ApiError::new(
            ErrorCode::UnknownChunk,
            format!("this node does not hold chunk {chunk}"),
        )
    })?;
    let mut hasher = PossessionHasher::new(&challenge.nonce);
    for bytes in &chunks {
        hasher.chunk(bytes);
    }
    let signature = sign_answer(
        state.key(),
        &state.config.network,
        challenge,
        &hasher.finish(),
    );
    let mut answer = Vec::with_capacity(64 + chunks.iter().map(Vec::len).sum::<usize>());
    answer.extend_from_slice(&signature.0);
    for bytes in chunks {
        answer.extend_from_slice(&bytes);
    }
    tracing::debug!(
        chunks = challenge.chunks.len(),
        epoch = challenge.epoch.0,
        "audit answered"
    );
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], answer).into_response())
}
