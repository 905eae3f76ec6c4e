//! The typed client of the oracle's HTTP API: one method per route, the bodies of
//! `dsi_api::oracle`, and one error type that keeps the oracle's [`ErrorBody`].

use std::time::Duration;

use dsi_api::exit::Exit;
use dsi_api::oracle::{
    AnnounceResponse, CloseRequest, CloseResponse, CurrentEpoch, EpochInfo, Info, Leaf,
    ManifestResponse, PeersResponse, SeederResponse,
};
use dsi_api::{ErrorBody, ErrorCode, ReceiptBatch, ReceiptBatchResponse};
use dsi_protocol::{ChunkId, ContentId, Epoch, NodeId, SignedAnnouncement, SignedReceipt};
use reqwest::{RequestBuilder, Url};
use serde::de::DeserializeOwned;

/// Why a call to the oracle failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not usable.
    #[error("{0}")]
    BadUrl(String),
    /// No answer: connection refused, timeout, a broken body.
    #[error("oracle at {url} unreachable: {detail}")]
    Unreachable {
        /// What was asked.
        url: String,
        /// The cause.
        detail: String,
    },
    /// The oracle answered with an error.
    #[error("oracle refused {url} ({status}): {body}")]
    Refused {
        /// What was asked.
        url: String,
        /// HTTP status.
        status: u16,
        /// The oracle's error (for a non-DSI answer: the code of its status and its text).
        body: ErrorBody,
    },
    /// The answer is not what the API promises.
    #[error("unexpected answer from {url}: {detail}")]
    Decode {
        /// What was asked.
        url: String,
        /// What is wrong.
        detail: String,
    },
}

impl ClientError {
    /// The oracle's error code, when it answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Refused { body, .. } => Some(body.code),
            _ => None,
        }
    }

    /// The exit code a command that failed with this error ends with.
    pub fn exit(&self) -> Exit {
        match self {
            Self::BadUrl(_) => Exit::Usage,
            Self::Unreachable { .. } => Exit::Unavailable,
            Self::Decode { .. } => Exit::Failure,
            Self::Refused { status, .. } => match status {
                404 => Exit::NotFound,
                400 | 413 | 415 => Exit::Usage,
                408 | 429 | 500..=599 => Exit::Unavailable,
                _ => Exit::Refused,
            },
        }
    }
}

/// An error and its causes on one line (reqwest keeps the useful part in the sources).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// How long [`OracleClient::close`] waits for the oracle to close the epochs asked for.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A client of one oracle.
#[derive(Clone, Debug)]
pub struct OracleClient {
    base: Url,
    http: reqwest::Client,
}

type Result<T> = std::result::Result<T, ClientError>;

impl OracleClient {
    /// A client for the oracle at `url` (`http://127.0.0.1:7400`), with a 30 s timeout per
    /// call.
    pub fn new(url: &str) -> Result<Self> {
        Self::with_timeout(url, Duration::from_secs(30))
    }

    /// A client whose calls give up after `timeout`.
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<Self> {
        Self::from_source(url, timeout, None)
    }

    /// A client whose connections leave from `source` (when given) and whose calls give up
    /// after `timeout`. The oracle locates a node by the address its announcement comes
    /// from, so a node announces from the address it serves on.
    pub fn from_source(
        url: &str,
        timeout: Duration,
        source: Option<std::net::IpAddr>,
    ) -> Result<Self> {
        let base = crate::parse_base_url(url, "oracle URL").map_err(ClientError::BadUrl)?;
        let http = reqwest::Client::builder()
            .local_address(source)
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("dsi/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::BadUrl(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self { base, http })
    }

    /// The oracle's base URL (with a trailing `/`).
    pub fn url(&self) -> &Url {
        &self.base
    }

    fn endpoint(&self, path: &str) -> Result<Url> {
        self.base
            .join(path)
            .map_err(|e| ClientError::BadUrl(format!("bad path {path}: {e}")))
    }

    async fn send(&self, url: &Url, request: RequestBuilder) -> Result<reqwest::Response> {
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            url: url.to_string(),
            detail: error_chain(&e),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.bytes().await.unwrap_or_default();
        let body = ErrorBody::from_answer(status.as_u16(), &text);
        Err(ClientError::Refused {
            url: url.to_string(),
            status: status.as_u16(),
            body,
        })
    }

    async fn bytes(&self, url: &Url, request: RequestBuilder) -> Result<Vec<u8>> {
        let response = self.send(url, request).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: url.to_string(),
                detail: error_chain(&e),
            })?;
        Ok(bytes.to_vec())
    }

    async fn json<T: DeserializeOwned>(&self, url: &Url, request: RequestBuilder) -> Result<T> {
        let bytes = self.bytes(url, request).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            url: url.to_string(),
            detail: e.to_string(),
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let url = self.endpoint(path)?;
        self.json(&url, self.http.get(url.clone())).await
    }

    /// `GET /v1/info`.
    pub async fn info(&self) -> Result<Info> {
        self.get("v1/info").await
    }

    /// `POST /v1/announce`.
    pub async fn announce(&self, signed: &SignedAnnouncement) -> Result<AnnounceResponse> {
        let url = self.endpoint("v1/announce")?;
        self.json(&url, self.http.post(url.clone()).json(signed))
            .await
    }

    /// `GET /v1/replication`: funded contents, their counted replicas and pay per replica.
    pub async fn replication(&self) -> Result<dsi_api::oracle::Replication> {
        let url = self.endpoint("v1/replication")?;
        self.json(&url, self.http.get(url.clone())).await
    }

    /// `POST /v1/availability`: a node's signed pause, resume or exit.
    pub async fn availability(
        &self,
        signed: &dsi_protocol::SignedAvailability,
    ) -> Result<dsi_api::oracle::AvailabilityResponse> {
        let url = self.endpoint("v1/availability")?;
        self.json(&url, self.http.post(url.clone()).json(signed))
            .await
    }

    /// `POST /v1/manifests`: registers a manifest's canonical bytes as the node of `key`
    /// (signed `x-dsi-registrant` header for `network`; the oracle charges the bytes to
    /// that key's quota).
    pub async fn register_manifest(
        &self,
        bytes: Vec<u8>,
        key: &dsi_protocol::SecretKey,
        network: &dsi_protocol::NetworkId,
    ) -> Result<ManifestResponse> {
        let url = self.endpoint("v1/manifests")?;
        let header = dsi_api::registrant::RegistrantHeader::sign(
            key,
            network,
            dsi_protocol::manifest::content_id_of_bytes(&bytes),
            dsi_protocol::now_ms(),
        );
        let request = self
            .http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(dsi_api::REGISTRANT_HEADER, header.to_string())
            .body(bytes);
        self.json(&url, request).await
    }

    /// `POST /v1/chunk-lengths`: the registered length of each chunk (`None` if no manifest
    /// names it), in order; any number of chunks, asked in parts of
    /// [`dsi_api::oracle::MAX_CHUNK_LENGTH_QUERY`].
    pub async fn chunk_lengths(&self, chunks: &[ChunkId]) -> Result<Vec<Option<u32>>> {
        let url = self.endpoint("v1/chunk-lengths")?;
        let mut out = Vec::with_capacity(chunks.len());
        for part in chunks.chunks(dsi_api::oracle::MAX_CHUNK_LENGTH_QUERY) {
            let body = dsi_api::oracle::ChunkLengthsRequest {
                chunks: part.to_vec(),
            };
            let answer: dsi_api::oracle::ChunkLengthsResponse = self
                .json(&url, self.http.post(url.clone()).json(&body))
                .await?;
            if answer.lengths.len() != part.len() {
                return Err(ClientError::Decode {
                    url: url.to_string(),
                    detail: format!("{} lengths for {} chunks", answer.lengths.len(), part.len()),
                });
            }
            out.extend(answer.lengths);
        }
        Ok(out)
    }

    /// `POST /v1/chunks/{id}`: proves a chunk's length with its bytes (the oracle replaces
    /// a false registered length).
    pub async fn prove_chunk(
        &self,
        chunk: &ChunkId,
        bytes: Vec<u8>,
    ) -> Result<dsi_api::oracle::ChunkProofResponse> {
        let url = self.endpoint(&format!("v1/chunks/{chunk}"))?;
        let request = self
            .http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes);
        self.json(&url, request).await
    }

    /// `GET /v1/content/{id}/manifest`: the registered manifest's bytes (unverified: check
    /// them against the content id).
    pub async fn manifest(&self, content: &ContentId) -> Result<Vec<u8>> {
        let url = self.endpoint(&format!("v1/content/{content}/manifest"))?;
        self.bytes(&url, self.http.get(url.clone())).await
    }

    /// `GET /v1/content/{id}/peers`.
    pub async fn peers(&self, content: &ContentId) -> Result<PeersResponse> {
        self.get(&format!("v1/content/{content}/peers")).await
    }

    /// `POST /v1/receipts`: one verdict per receipt, in order (checked).
    pub async fn submit_receipts(
        &self,
        receipts: &[SignedReceipt],
    ) -> Result<ReceiptBatchResponse> {
        let url = self.endpoint("v1/receipts")?;
        let batch = ReceiptBatch {
            receipts: receipts.to_vec(),
        };
        let answer: ReceiptBatchResponse = self
            .json(&url, self.http.post(url.clone()).json(&batch))
            .await?;
        if answer.results.len() != receipts.len() {
            return Err(ClientError::Decode {
                url: url.to_string(),
                detail: format!(
                    "{} verdicts for {} receipts",
                    answer.results.len(),
                    receipts.len()
                ),
            });
        }
        Ok(answer)
    }

    /// `GET /v1/epochs/current`.
    pub async fn current_epoch(&self) -> Result<CurrentEpoch> {
        self.get("v1/epochs/current").await
    }

    /// `GET /v1/epochs/{n}`.
    pub async fn epoch(&self, epoch: Epoch) -> Result<EpochInfo> {
        self.get(&format!("v1/epochs/{epoch}")).await
    }

    /// `GET /v1/epochs/{n}/leaves`.
    pub async fn leaves(&self, epoch: Epoch) -> Result<Vec<Leaf>> {
        self.get(&format!("v1/epochs/{epoch}/leaves")).await
    }

    /// `GET /v1/epochs/{n}/seeders/{node}`.
    pub async fn leaf(&self, epoch: Epoch, seeder: &NodeId) -> Result<Leaf> {
        self.get(&format!("v1/epochs/{epoch}/seeders/{seeder}"))
            .await
    }

    /// `GET /v1/epochs/{n}/batch`: the published batch file.
    pub async fn batch(&self, epoch: Epoch) -> Result<Vec<u8>> {
        let url = self.endpoint(&format!("v1/epochs/{epoch}/batch"))?;
        self.bytes(&url, self.http.get(url.clone())).await
    }

    /// `POST /v1/epochs/close` with the admin token: closes every epoch through `through`
    /// (default: the current one). Closing runs audits and aggregates whole epochs, so this
    /// call waits up to [`CLOSE_TIMEOUT`], not the client's usual timeout.
    pub async fn close(&self, admin_token: &str, through: Option<Epoch>) -> Result<CloseResponse> {
        let url = self.endpoint("v1/epochs/close")?;
        let request = self
            .http
            .post(url.clone())
            .timeout(CLOSE_TIMEOUT)
            .bearer_auth(admin_token)
            .json(&CloseRequest { through });
        self.json(&url, request).await
    }

    /// `POST /v1/sponsors` with the admin token: records a sponsorship.
    pub async fn sponsor(
        &self,
        admin_token: &str,
        request: &dsi_api::oracle::SponsorRequest,
    ) -> Result<dsi_api::oracle::Sponsorship> {
        let url = self.endpoint("v1/sponsors")?;
        let request = self
            .http
            .post(url.clone())
            .bearer_auth(admin_token)
            .json(request);
        self.json(&url, request).await
    }

    /// `POST /v1/credits` with the admin token: adds to a downloader's credit.
    pub async fn add_credit(
        &self,
        admin_token: &str,
        request: &dsi_api::oracle::CreditRequest,
    ) -> Result<dsi_api::oracle::Credit> {
        let url = self.endpoint("v1/credits")?;
        let request = self
            .http
            .post(url.clone())
            .bearer_auth(admin_token)
            .json(request);
        self.json(&url, request).await
    }

    /// `GET /v1/credits/{node}`.
    pub async fn credit(&self, downloader: &NodeId) -> Result<dsi_api::oracle::Credit> {
        self.get(&format!("v1/credits/{downloader}")).await
    }

    /// `GET /v1/relay-access/{node}`: whether the network's relays carry `node`.
    pub async fn relay_access(&self, node: &NodeId) -> Result<dsi_api::oracle::RelayAccess> {
        self.get(&format!("v1/relay-access/{node}")).await
    }

    /// `GET /v1/content/{id}/funding`.
    pub async fn funding(&self, content: &ContentId) -> Result<dsi_api::oracle::ContentFunding> {
        self.get(&format!("v1/content/{content}/funding")).await
    }

    /// `GET /v1/seeders/{node}`.
    pub async fn seeder(&self, seeder: &NodeId) -> Result<SeederResponse> {
        self.get(&format!("v1/seeders/{seeder}")).await
    }

    /// `GET /metrics` (Prometheus text).
    pub async fn metrics(&self) -> Result<String> {
        let url = self.endpoint("metrics")?;
        let bytes = self.bytes(&url, self.http.get(url.clone())).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}
