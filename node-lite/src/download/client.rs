//! HTTP calls to one peer's API, with stall detection: a response that delivers no bytes
//! for the stall timeout fails with [`FetchError::Stalled`].

use std::time::Duration;

use bytes::Bytes;
use dsi_api::downloader::DownloaderHeader;
use dsi_protocol::{ChunkId, ContentId, SignedReceipt};
use reqwest::{Client, Response, Url};

use dsi_api::node::{Have, NodeInfo};
use dsi_api::{ErrorBody, ErrorCode, ReceiptBatch, ReceiptBatchResponse};
pub use dsi_service::oracle_client::error_chain;

/// Why a request to a peer failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// No bytes arrived for the stall timeout.
    #[error("stalled: no data for {0:?}")]
    Stalled(Duration),
    /// The peer answered with an error status.
    #[error("HTTP {status} {code}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The API error code (the code of the status if the body was not an API error).
        code: ErrorCode,
        /// The API error message.
        message: String,
    },
    /// The connection failed.
    #[error("connection failed: {0}")]
    Connection(String),
    /// The peer sent more bytes than the chunk can have.
    #[error("sent more than the expected {0} bytes")]
    TooLong(usize),
    /// The body was not what the API promises.
    #[error("bad response: {0}")]
    Decode(String),
}

/// A body as the pieces it arrived in: hashed and written without being copied into one
/// buffer first.
#[derive(Debug, Clone, Default)]
pub struct Pieces {
    pieces: Vec<Bytes>,
    len: usize,
}

impl Pieces {
    /// Total length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// BLAKE3 of the bytes: the id of the chunk they form.
    pub fn chunk_id(&self) -> ChunkId {
        let mut hasher = blake3::Hasher::new();
        for piece in &self.pieces {
            hasher.update(piece);
        }
        ChunkId(*hasher.finalize().as_bytes())
    }

    /// Writes the bytes to `file` starting at `offset`.
    pub fn write_at(&self, file: &std::fs::File, offset: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let mut at = offset;
        for piece in &self.pieces {
            file.write_all_at(piece, at)?;
            at += piece.len() as u64;
        }
        Ok(())
    }

    /// The bytes in one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for piece in &self.pieces {
            out.extend_from_slice(piece);
        }
        out
    }
}

/// Builds the HTTP client shared by all peers of a download.
pub fn http_client() -> Client {
    Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(64)
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("node-lite/", env!("CARGO_PKG_VERSION")))
        .build()
        // Building fails only if the TLS backend or resolver cannot initialise; this client
        // has neither configured.
        .expect("a plain HTTP client always builds")
}

/// One peer's API.
#[derive(Clone, Debug)]
pub struct PeerClient {
    http: Client,
    base: Url,
}

impl PeerClient {
    /// A client for the peer at `base` (as parsed by `peers::parse_peer_url`).
    pub fn new(http: Client, base: Url) -> Self {
        Self { http, base }
    }

    /// The peer's base URL.
    pub fn url(&self) -> &Url {
        &self.base
    }

    fn endpoint(&self, path: &str) -> Result<Url, FetchError> {
        self.base
            .join(path)
            .map_err(|e| FetchError::Decode(e.to_string()))
    }

    async fn check(response: Response, stall: Duration) -> Result<Response, FetchError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        // An error body is a few hundred bytes; a peer cannot make us buffer more.
        let body = Self::body(response, 16 << 10, stall)
            .await
            .unwrap_or_default();
        let ErrorBody { code, message } = ErrorBody::from_answer(status.as_u16(), &body);
        Err(FetchError::Status {
            status: status.as_u16(),
            code,
            message,
        })
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        stall: Duration,
    ) -> Result<Response, FetchError> {
        let response = tokio::time::timeout(stall, request.send())
            .await
            .map_err(|_| FetchError::Stalled(stall))?
            .map_err(|e| FetchError::Connection(error_chain(&e)))?;
        Self::check(response, stall).await
    }

    /// Reads a body of at most `limit` bytes, failing if it stalls.
    async fn body(
        response: Response,
        limit: usize,
        stall: Duration,
    ) -> Result<Vec<u8>, FetchError> {
        Ok(Self::pieces(response, limit, stall).await?.to_vec())
    }

    /// Reads a body of at most `limit` bytes as the pieces it arrives in, failing if it
    /// stalls.
    async fn pieces(
        mut response: Response,
        limit: usize,
        stall: Duration,
    ) -> Result<Pieces, FetchError> {
        let mut out = Pieces::default();
        loop {
            let piece = tokio::time::timeout(stall, response.chunk())
                .await
                .map_err(|_| FetchError::Stalled(stall))?
                .map_err(|e| FetchError::Connection(error_chain(&e)))?;
            let Some(piece) = piece else { return Ok(out) };
            if out.len + piece.len() > limit {
                return Err(FetchError::TooLong(limit));
            }
            out.len += piece.len();
            out.pieces.push(piece);
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        stall: Duration,
    ) -> Result<T, FetchError> {
        let response = self
            .send(self.http.get(self.endpoint(path)?), stall)
            .await?;
        let body = Self::body(response, 64 << 20, stall).await?;
        serde_json::from_slice(&body).map_err(|e| FetchError::Decode(e.to_string()))
    }

    /// `GET /v1/node`.
    pub async fn node_info(&self, stall: Duration) -> Result<NodeInfo, FetchError> {
        self.json("v1/node", stall).await
    }

    /// `GET /v1/content/{id}/manifest`: the raw bytes (the caller verifies them).
    pub async fn manifest(
        &self,
        content: &ContentId,
        stall: Duration,
    ) -> Result<Vec<u8>, FetchError> {
        let url = self.endpoint(&format!("v1/content/{content}/manifest"))?;
        let response = self.send(self.http.get(url), stall).await?;
        Self::body(response, 256 << 20, stall).await
    }

    /// `GET /v1/content/{id}/have`.
    pub async fn have(&self, content: &ContentId, stall: Duration) -> Result<Have, FetchError> {
        self.json(&format!("v1/content/{content}/have"), stall)
            .await
    }

    /// `GET /v1/chunks/{id}` with the downloader's signed request (`header`, signed for
    /// this peer and this chunk); at most `max_len` bytes.
    pub async fn chunk(
        &self,
        chunk: &ChunkId,
        header: &DownloaderHeader,
        max_len: usize,
        stall: Duration,
    ) -> Result<Pieces, FetchError> {
        let url = self.endpoint(&format!("v1/chunks/{chunk}"))?;
        let request = self
            .http
            .get(url)
            .header(crate::DOWNLOADER_HEADER, header.to_string());
        let response = self.send(request, stall).await?;
        Self::pieces(response, max_len, stall).await
    }

    /// `POST /v1/receipts`.
    pub async fn send_receipts(
        &self,
        receipts: &[SignedReceipt],
        stall: Duration,
    ) -> Result<ReceiptBatchResponse, FetchError> {
        let batch = ReceiptBatch {
            receipts: receipts.to_vec(),
        };
        let response = self
            .send(
                self.http.post(self.endpoint("v1/receipts")?).json(&batch),
                stall,
            )
            .await?;
        let body = Self::body(response, 16 << 20, stall).await?;
        let answer: ReceiptBatchResponse =
            serde_json::from_slice(&body).map_err(|e| FetchError::Decode(e.to_string()))?;
        if answer.results.len() != receipts.len() {
            return Err(FetchError::Decode(format!(
                "{} verdicts for {} receipts",
                answer.results.len(),
                receipts.len()
            )));
        }
        Ok(answer)
    }
}
