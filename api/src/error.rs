//! The one error answer of both servers: `{"code": "...", "message": "..."}` with the HTTP
//! status that [`ErrorCode::status`] gives. Every failure a client can meet has its own
//! stable code; the message is for humans and may change.

use serde::{Deserialize, Serialize};

/// The JSON body of every HTTP error answer of node-lite and the oracle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
}

impl ErrorBody {
    /// The error in an answer with HTTP `status` and `body`: the body itself when it is an
    /// `ErrorBody`, otherwise (an answer from something else, a proxy say) the code of the
    /// status with the start of the body's text as the message.
    pub fn from_answer(status: u16, body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_else(|_| Self {
            code: ErrorCode::for_status(status),
            message: String::from_utf8_lossy(body)
                .trim()
                .chars()
                .take(500)
                .collect(),
        })
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $status:literal; )*) => {
        /// Every error code of both HTTP APIs, with its HTTP status.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
            /// A code this version does not know (a newer server); status 500.
            #[serde(other)]
            Unknown,
        }

        impl ErrorCode {
            /// Every code, in the order of the table in `docs/PROTOCOL.md`.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it appears on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                    ErrorCode::Unknown => "unknown",
                }
            }

            /// The HTTP status an answer with this code carries.
            pub fn status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status,)*
                    ErrorCode::Unknown => 500,
                }
            }
        }
    };
}

error_codes! {
    // Both servers.
    /// The body is not the JSON this route takes (or not JSON at all).
    BadJson = "bad_json", 400;
    /// Reserved for a body in a media type the route does not take (the servers do not
    /// check `content-type` today; a 415 from a layer below gets this code).
    UnsupportedMediaType = "unsupported_media_type", 415;
    /// The body is larger than the route accepts.
    BodyTooLarge = "body_too_large", 413;
    /// More items (receipts, chunk ids) in one request than the server takes.
    BatchTooLarge = "batch_too_large", 413;
    /// No such route.
    NotFound = "not_found", 404;
    /// The route exists but not for this method.
    MethodNotAllowed = "method_not_allowed", 405;
    /// A request the server cannot take, not covered by a more precise code.
    BadRequest = "bad_request", 400;
    /// Something failed inside the server; details are in its log, not in the answer.
    Internal = "internal", 500;
    /// The content id is not held (node-lite) or not registered (oracle).
    UnknownContent = "unknown_content", 404;
    // node-lite.
    /// A content id in the path does not parse.
    BadContentId = "bad_content_id", 400;
    /// A chunk id in the path does not parse.
    BadChunkId = "bad_chunk_id", 400;
    /// A chunk request to a receipt-gated seeder without the `x-dsi-downloader` header.
    MissingDownloader = "missing_downloader", 400;
    /// The `x-dsi-downloader` header is not `<node id>.<issued_at_ms>.<signature>`.
    BadDownloader = "bad_downloader", 400;
    /// The `x-dsi-downloader` header was issued too far from the seeder's clock, or is not
    /// newer than the one the seeder already took for this chunk (a replay).
    StaleDownloader = "stale_downloader", 401;
    /// The `x-dsi-downloader` signature does not verify for this seeder, chunk and network.
    BadDownloaderSignature = "bad_downloader_signature", 401;
    /// The downloader owes too many receipts; send them first.
    ReceiptsOwed = "receipts_owed", 429;
    /// The downloaders at the requesting network address together owe too many receipts.
    AddressOwesReceipts = "address_owes_receipts", 429;
    /// The seeder does not hold the chunk (node-lite), or no registered manifest names it
    /// (oracle).
    UnknownChunk = "unknown_chunk", 404;
    /// The seeder's copy failed verification and was quarantined.
    ChunkCorrupt = "chunk_corrupt", 404;
    /// The node has sent its egress budget for the day or month
    /// (`serve.max_egress_per_day`, `serve.max_egress_per_month`); `Retry-After` says when it
    /// renews.
    EgressBudgetSpent = "egress_budget_spent", 503;
    /// The node serves `serve.max_concurrent_downloaders` other downloaders now; retry after
    /// `Retry-After` seconds.
    TooManyDownloaders = "too_many_downloaders", 503;
    /// A gateway `Range` header names no byte of the content (`Content-Range: bytes */SIZE`
    /// tells its size).
    RangeNotSatisfiable = "range_not_satisfiable", 416;
    /// The gateway or the dashboard does not serve this client (`gateway.clients`,
    /// `dashboard.clients`: a client beyond loopback, a foreign `Host`, or a browser request
    /// from another site).
    ClientRefused = "client_refused", 403;
    /// The gateway is fetching for as many requests as it allows at once
    /// (`gateway.max_concurrent_fetches`); retry after `Retry-After` seconds.
    GatewayBusy = "gateway_busy", 503;
    /// The gateway could not get the content's manifest or chunks from any peer.
    ContentUnavailable = "content_unavailable", 502;
    /// The node's disk quota (`storage.max_bytes`) leaves no room for what the gateway
    /// would fetch, even after evicting everything unpinned.
    StoreFull = "store_full", 507;
    // The oracle.
    /// An id or epoch in the path does not parse.
    BadId = "bad_id", 400;
    /// An announcement's URL is not a plain `http` URL with a host, or is too long.
    BadUrl = "bad_url", 400;
    /// An announcement's URL does not point into the network (/24 IPv4, /48 IPv6) the
    /// announcement came from (audits go only there).
    UrlOutsideSource = "url_outside_source", 400;
    /// The oracle is resolving as many announced host names as it allows at once
    /// (`tracker.max_concurrent_resolutions`); retry, or announce a URL with an address.
    ResolverBusy = "resolver_busy", 503;
    /// An announcement names more contents than allowed.
    TooManyContents = "too_many_contents", 400;
    /// An announcement was issued too far from the oracle's clock.
    ClockSkew = "clock_skew", 400;
    /// A new node key announced from a network (/24 IPv4, /48 IPv6) that already has
    /// `tracker.max_nodes_per_location` live nodes.
    LocationFull = "location_full", 429;
    /// An availability notice (`POST /v1/availability`) from a key the tracker holds no
    /// announcement of: announce first.
    UnknownNode = "unknown_node", 404;
    /// A pause of 0 epochs, or of more than the oracle's `tracker.max_paused_epochs`.
    PauseTooLong = "pause_too_long", 400;
    /// A pause from a node that is paused already, or whose pause starts at the next epoch:
    /// resume first.
    AlreadyPaused = "already_paused", 409;
    /// A resume from a node that is not paused.
    NotPaused = "not_paused", 409;
    /// An availability notice not newer than the last one the tracker took from the node.
    StaleNotice = "stale_notice", 409;
    /// The key exited the network (`node-lite exit`): its announcements and notices are
    /// refused for good.
    NodeExited = "node_exited", 410;
    /// An announcement's signature does not verify (or is for another network).
    BadSignature = "bad_signature", 401;
    /// The body is not a canonical DSI manifest.
    BadManifest = "bad_manifest", 400;
    /// A manifest gives a chunk another length than the one already registered for it
    /// (if the registered one is false, prove the true one: `POST /v1/chunks/{id}`).
    ChunkLengthConflict = "chunk_length_conflict", 409;
    /// The body of `POST /v1/chunks/{id}` does not hash to the chunk id in the path.
    ChunkBytesMismatch = "chunk_bytes_mismatch", 400;
    /// A manifest registration without a usable `x-dsi-registrant` header (missing, or not
    /// `<node id>.<issued_at_ms>.<signature>`).
    BadRegistrant = "bad_registrant", 400;
    /// The registrant already registered its quota of manifest bytes
    /// (`tracker.max_manifest_bytes_per_node`).
    ManifestQuota = "manifest_quota", 403;
    /// A storage audit challenge the node will not answer: not signed by the auditor it
    /// trusts, for another node, expired, replayed, or asking for too many chunks.
    AuditRefused = "audit_refused", 403;
    /// An admin route without the admin token.
    Unauthorized = "unauthorized", 401;
    /// Closing an epoch out of order, or one that has not started.
    CannotClose = "cannot_close", 409;
    /// An epoch that is neither open nor closed.
    UnknownEpoch = "unknown_epoch", 404;
    /// The epoch has not been closed yet.
    EpochNotClosed = "epoch_not_closed", 404;
    /// The seeder earned nothing in that epoch.
    NoLeaf = "no_leaf", 404;
    /// The oracle has never seen this node.
    UnknownSeeder = "unknown_seeder", 404;
    /// A sponsorship or credit the ledger refuses (zero amount, epochs or replicas out of
    /// range, an epoch already closed, a total that overflows).
    BadFunding = "bad_funding", 400;
    /// The oracle runs with a chain: sponsorships and credits are deposits in the
    /// `reward_pool` contract (`oracle sponsor` and `oracle credit --amount` send them
    /// there), not entries in the oracle's ledger.
    FundingOnChain = "funding_on_chain", 409;
    /// Closing the epoch failed inside the oracle (logged there).
    CloseFailed = "close_failed", 500;
    /// The published batch file cannot be read.
    BatchUnavailable = "batch_unavailable", 500;
}

impl ErrorCode {
    /// The code a server answers with when only the HTTP status is known (axum's own
    /// rejections: unknown routes, wrong methods, oversized or malformed bodies).
    pub fn for_status(status: u16) -> Self {
        match status {
            404 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            413 => Self::BodyTooLarge,
            415 => Self::UnsupportedMediaType,
            422 => Self::BadJson,
            400..=499 => Self::BadRequest,
            _ => Self::Internal,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            let json = serde_json::to_string(code).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap_or(ErrorCode::Unknown);
            assert_eq!(back, *code);
            assert!((400..600).contains(&code.status()));
        }
        let future: ErrorCode =
            serde_json::from_str("\"from_the_future\"").unwrap_or(ErrorCode::BadJson);
        assert_eq!(future, ErrorCode::Unknown);
    }
}
