//! `POST /v1/receipts`, the same route at a seeder and at the oracle: a batch of signed
//! receipts in, one verdict per receipt out, in order.

use dsi_protocol::SignedReceipt;
use serde::{Deserialize, Serialize};

/// Body of `POST /v1/receipts`: `{"receipts": [SignedReceipt, ...]}`, at most
/// [`crate::MAX_RECEIPT_BATCH`] at a seeder.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptBatch {
    /// The receipts, each in its flat JSON form (receipt fields and `signature`).
    pub receipts: Vec<SignedReceipt>,
}

/// Answer to `POST /v1/receipts`: one verdict per receipt, in the order sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptBatchResponse {
    /// The verdicts.
    pub results: Vec<ReceiptVerdict>,
}

/// The verdict on one receipt: `{"status": "accepted"}` or
/// `{"status": "rejected", "code": "...", "message": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ReceiptVerdict {
    /// Stored durably (or an identical receipt was already held).
    Accepted,
    /// Refused by a named rule.
    Rejected {
        /// The rule.
        code: RejectionCode,
        /// Human-readable detail.
        message: String,
    },
    /// A status this version does not know (a newer server): neither accepted nor
    /// refused by a known rule. Clients keep such a receipt as refused (`unknown`).
    #[serde(other)]
    Unknown,
}

impl ReceiptVerdict {
    /// The rule that refused the receipt, if one did.
    pub fn rejection(&self) -> Option<RejectionCode> {
        match self {
            Self::Accepted => None,
            Self::Rejected { code, .. } => Some(*code),
            Self::Unknown => Some(RejectionCode::Unknown),
        }
    }

    /// Whether the receipt was accepted.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Self::Accepted)
    }
}

named_enum! {
    /// Why a receipt was refused: one code per rule, the same at the seeder and at the
    /// oracle. Which rules each applies, and in which order, is in `docs/PROTOCOL.md`.
    pub enum RejectionCode {
        /// (seeder) The receipt names another seeder.
        WrongSeeder = "wrong_seeder",
        /// The seeder and the downloader are the same key.
        SelfReceipt = "self_receipt",
        /// The epoch is not one that takes receipts now (future, closed, or too old), or
        /// `issued_at_ms` lies outside the epoch's window.
        EpochOutOfWindow = "epoch_out_of_window",
        /// The chunk is not held (seeder) or in no registered manifest (oracle).
        UnknownChunk = "unknown_chunk",
        /// `bytes` is not the chunk's length.
        ChunkSizeMismatch = "chunk_size_mismatch",
        /// The downloader's signature does not verify for this network (or its key is
        /// weak).
        BadSignature = "bad_signature",
        /// A different receipt for the same (epoch, downloader, seeder, chunk) is held.
        Duplicate = "duplicate",
        /// (oracle) The downloader would attest more bytes in the epoch than the cap.
        DownloaderCap = "downloader_cap",
        /// (oracle) The seeder left the network (`node-lite exit`) in an earlier epoch.
        SeederExited = "seeder_exited",
    }
    unknown:
        /// A code this version does not know (a newer peer).
        Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_have_the_documented_json() {
        let rejected = ReceiptVerdict::Rejected {
            code: RejectionCode::ChunkSizeMismatch,
            message: "m".into(),
        };
        assert_eq!(
            serde_json::to_string(&rejected).unwrap_or_default(),
            r#"{"status":"rejected","code":"chunk_size_mismatch","message":"m"}"#
        );
        assert_eq!(
            serde_json::to_string(&ReceiptVerdict::Accepted).unwrap_or_default(),
            r#"{"status":"accepted"}"#
        );
        for &code in RejectionCode::ALL {
            let json = serde_json::to_string(&code).unwrap_or_default();
            assert_eq!(json, format!("\"{code}\""));
            assert_eq!(code.as_str().parse::<RejectionCode>(), Ok(code));
        }
        assert!("unknown".parse::<RejectionCode>().is_err());
        // Each code explains itself from its documentation (the dashboard shows it).
        assert!(RejectionCode::DownloaderCap.describe().contains("cap"));
        assert!(
            RejectionCode::ALL
                .iter()
                .all(|c| !c.describe().is_empty() && !c.describe().contains('\n'))
        );
        let newer: ReceiptVerdict =
            serde_json::from_str(r#"{"status":"rejected","code":"later_rule","message":""}"#)
                .unwrap_or(ReceiptVerdict::Accepted);
        assert_eq!(newer.rejection(), Some(RejectionCode::Unknown));
        let newer: ReceiptVerdict =
            serde_json::from_str(r#"{"status":"deferred"}"#).unwrap_or(ReceiptVerdict::Accepted);
        assert_eq!(newer, ReceiptVerdict::Unknown);
        assert!(!newer.is_accepted());
    }
}
