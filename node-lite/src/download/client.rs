//! HTTP calls to one peer's API, with stall detection: a response that delivers no bytes
//! for the stall timeout fails with [`FetchError::Stalled`].

use std::time::Duration;

use bytes::Bytes;
use dsi_api::downloader::DownloaderHeader;
use dsi_protocol::NodeId;
use dsi_protocol::{ChunkId, ContentId, SignedReceipt};
use http_body_util::BodyExt;
use reqwest::{Client, Url};

use crate::transport::{self, Body, Dialer};

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

/// A body as the pieces it arrived in: hashed without being copied into one buffer first
/// (they are joined only to reach the file in one write).
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
        match self.pieces.as_slice() {
            [one] => file.write_all_at(one, offset),
            // One write per chunk: each write takes the file's lock in the kernel, which
            // the writers of the chunks verified at the same time contend for.
            _ => file.write_all_at(&self.to_vec(), offset),
        }
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

/// The `User-Agent` of node-lite's requests to peers.
const USER_AGENT: &str = concat!("node-lite/", env!("CARGO_PKG_VERSION"));

/// Builds the HTTP client shared by all peers of a download.
pub fn http_client() -> Client {
    Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(64)
        .connect_timeout(Duration::from_secs(5))
        .user_agent(USER_AGENT)
        .build()
        // Building fails only if the TLS backend or resolver cannot initialise; this client
        // has neither configured.
        .expect("a plain HTTP client always builds")
}

/// How a peer is reached.
#[derive(Clone, Debug)]
enum Via {
    /// HTTP at the peer's base URL.
    Http(Client),
    /// HTTP/1.1 over iroh streams to the peer's node id (`crate::transport`).
    Iroh { dialer: Dialer, node: NodeId },
}

/// One peer's API, over HTTP or over iroh.
#[derive(Clone, Debug)]
pub struct PeerClient {
    via: Via,
    base: Url,
}

impl PeerClient {
    /// A client for the peer at `base` (as parsed by `peers::parse_peer_url`) over HTTP.
    pub fn new(http: Client, base: Url) -> Self {
        Self {
            via: Via::Http(http),
            base,
        }
    }

    /// A client for the peer at `url`: over iroh for an `iroh://NODE_ID/` URL when a
    /// `dialer` is given, else over HTTP (an `iroh://` URL without a dialer fails each
    /// request, saying that iroh is off).
    pub fn for_url(http: &Client, dialer: Option<&Dialer>, url: Url) -> Self {
        match (transport::peer_node(&url), dialer) {
            (Some(node), Some(dialer)) => Self::over_iroh(dialer.clone(), node),
            _ => Self::new(http.clone(), url),
        }
    }

    /// The node id this client dials over iroh (`None` over HTTP).
    pub fn iroh_node(&self) -> Option<NodeId> {
        match &self.via {
            Via::Iroh { node, .. } => Some(*node),
            Via::Http(_) => None,
        }
    }

    /// How this peer is reached now over iroh; `None` over HTTP or with no connection.
    pub async fn iroh_path(&self) -> Option<dsi_transport::PathReport> {
        let Via::Iroh { node, dialer } = &self.via else {
            return None;
        };
        dialer.path(node).await
    }

    /// A client for the peer with node id `node` over iroh; its URL is `iroh://NODE_ID/`.
    pub fn over_iroh(dialer: Dialer, node: NodeId) -> Self {
        Self {
            base: transport::peer_url(&node),
            via: Via::Iroh { dialer, node },
        }
    }

    /// The peer's base URL (`iroh://NODE_ID/` for a peer over iroh).
    pub fn url(&self) -> &Url {
        &self.base
    }

    fn endpoint(&self, path: &str) -> Result<Url, FetchError> {
        self.base
            .join(path)
            .map_err(|e| FetchError::Decode(e.to_string()))
    }

    /// A request for `path` below the peer's URL: absolute for HTTP, origin-form (path and
    /// query) over iroh.
    fn request(
        &self,
        method: http::Method,
        path: &str,
    ) -> Result<http::request::Builder, FetchError> {
        let url = self.endpoint(path)?;
        let uri = match &self.via {
            Via::Http(_) => url.to_string(),
            Via::Iroh { .. } => match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_string(),
            },
        };
        Ok(http::Request::builder()
            .method(method)
            .uri(uri)
            .header(http::header::USER_AGENT, USER_AGENT))
    }

    async fn check(
        response: http::Response<Body>,
        stall: Duration,
    ) -> Result<http::Response<Body>, FetchError> {
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
        request: http::request::Builder,
        body: Bytes,
        stall: Duration,
    ) -> Result<http::Response<Body>, FetchError> {
        let request = request
            .body(body)
            .map_err(|e| FetchError::Decode(format!("building the request: {e}")))?;
        let sent = async {
            match &self.via {
                Via::Http(_) if self.base.scheme() == transport::SCHEME => {
                    Err(FetchError::Connection(
                        "this peer is named by node id, reached over iroh: only `get` does \
                         that so far, and it needs iroh.relays set to the network's relay"
                            .into(),
                    ))
                }
                Via::Http(http) => {
                    let request = reqwest::Request::try_from(request)
                        .map_err(|e| FetchError::Decode(format!("building the request: {e}")))?;
                    let response = http
                        .execute(request)
                        .await
                        .map_err(|e| FetchError::Connection(error_chain(&e)))?;
                    Ok(http::Response::from(response)
                        .map(|body| body.map_err(transport::BoxError::from).boxed_unsync()))
                }
                Via::Iroh { dialer, node } => dialer
                    .request(node, request)
                    .await
                    .map_err(|e| FetchError::Connection(e.to_string())),
            }
        };
        let response = tokio::time::timeout(stall, sent)
            .await
            .map_err(|_| FetchError::Stalled(stall))??;
        Self::check(response, stall).await
    }

    /// Reads a body of at most `limit` bytes, failing if it stalls.
    async fn body(
        response: http::Response<Body>,
        limit: usize,
        stall: Duration,
    ) -> Result<Vec<u8>, FetchError> {
        Ok(Self::pieces(response, limit, stall).await?.to_vec())
    }

    /// Reads a body of at most `limit` bytes as the pieces it arrives in, failing if it
    /// stalls.
    async fn pieces(
        response: http::Response<Body>,
        limit: usize,
        stall: Duration,
    ) -> Result<Pieces, FetchError> {
        let mut body = response.into_body();
        let mut out = Pieces::default();
        loop {
            let frame = tokio::time::timeout(stall, body.frame())
                .await
                .map_err(|_| FetchError::Stalled(stall))?;
            let Some(frame) = frame else { return Ok(out) };
            let frame = frame.map_err(|e| FetchError::Connection(error_chain(&*e)))?;
            // Trailers carry no bytes of the body.
            let Ok(piece) = frame.into_data() else {
                continue;
            };
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
            .send(self.request(http::Method::GET, path)?, Bytes::new(), stall)
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
        let request = self.request(http::Method::GET, &format!("v1/content/{content}/manifest"))?;
        let response = self.send(request, Bytes::new(), stall).await?;
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
        let request = self
            .request(http::Method::GET, &format!("v1/chunks/{chunk}"))?
            .header(crate::DOWNLOADER_HEADER, header.to_string());
        let response = self.send(request, Bytes::new(), stall).await?;
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
        let body = serde_json::to_vec(&batch).map_err(|e| FetchError::Decode(e.to_string()))?;
        let request = self
            .request(http::Method::POST, "v1/receipts")?
            .header(http::header::CONTENT_TYPE, "application/json");
        // One deadline over the whole exchange: a seeder trickling its answer a byte at a
        // time would otherwise hold the payer (and a downloader waiting on it) for ever.
        let exchange = async {
            let response = self.send(request, Bytes::from(body), stall).await?;
            Self::body(response, 16 << 20, stall).await
        };
        let body = tokio::time::timeout(stall, exchange)
            .await
            .map_err(|_| FetchError::Stalled(stall))??;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;

    #[test]
    fn pieces_reach_the_file_whole_at_their_offset() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(dir.path().join("part"))
            .unwrap();
        let mut many = Pieces::default();
        for piece in [&b"abc"[..], b"", b"defg", b"h"] {
            many.len += piece.len();
            many.pieces.push(Bytes::copy_from_slice(piece));
        }
        let one = Pieces {
            pieces: vec![Bytes::from_static(b"XY")],
            len: 2,
        };
        many.write_at(&file, 4).unwrap();
        one.write_at(&file, 1).unwrap();
        let written = std::fs::read(dir.path().join("part")).unwrap();
        assert_eq!(written, b"\0XY\0abcdefgh");
        assert_eq!(many.chunk_id(), ChunkId::of(b"abcdefgh"));
    }
}
