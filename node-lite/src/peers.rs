//! Peer discovery. A downloader asks a [`PeerSource`] which peers may hold some content;
//! today that is a fixed list of `--peer` URLs ([`StaticPeers`]), later the oracle's tracker
//! implements the same trait.

use std::future::Future;

use dsi_protocol::ContentId;
use reqwest::Url;

use crate::NodeError;

/// Something that can name peers for a content id.
pub trait PeerSource: Send + Sync {
    /// Base URLs of peers that may hold `content` (the downloader checks what each holds).
    fn peers(
        &self,
        content: &ContentId,
    ) -> impl Future<Output = Result<Vec<Url>, NodeError>> + Send;
}

/// A fixed list of peers, given on the command line.
#[derive(Clone, Debug, Default)]
pub struct StaticPeers(pub Vec<Url>);

impl PeerSource for StaticPeers {
    async fn peers(&self, _content: &ContentId) -> Result<Vec<Url>, NodeError> {
        Ok(self.0.clone())
    }
}

/// Fixed peers plus, when given, the tracker's answer (fixed ones first, no repeats).
#[derive(Clone, Debug, Default)]
pub struct Peers {
    /// Peers named on the command line.
    pub fixed: StaticPeers,
    /// The oracle's tracker, if any.
    pub tracker: Option<crate::tracker::TrackerClient>,
    /// With iroh on, tracker peers that announced an iroh endpoint are dialed by node id
    /// (their direct addresses handed to this dialer) rather than at their HTTP URL.
    pub iroh: Option<crate::transport::Dialer>,
}

impl PeerSource for Peers {
    async fn peers(&self, content: &ContentId) -> Result<Vec<Url>, NodeError> {
        let mut urls = self.fixed.peers(content).await?;
        if let Some(tracker) = &self.tracker {
            for peer in tracker.peer_list(content).await? {
                let url = match (&self.iroh, &peer.endpoint) {
                    (Some(dialer), Some(endpoint)) => {
                        dialer.add_endpoint(peer.node, endpoint);
                        crate::transport::peer_url(&peer.node)
                    }
                    _ => match parse_peer_url(&peer.url) {
                        // Reached over iroh only, and iroh is off here.
                        Ok(url) if url.scheme() == crate::transport::SCHEME => continue,
                        Ok(url) => url,
                        Err(e) => {
                            tracing::debug!(peer = %peer.node.short(), error = %e, "skipping a tracker peer with an unusable URL");
                            continue;
                        }
                    },
                };
                if !urls.contains(&url) {
                    urls.push(url);
                }
            }
        }
        Ok(urls)
    }
}

/// Parses a peer's base URL (`dsi_service::parse_base_url`): `http` or `https`, with a
/// host, no query or fragment; a trailing `/` is added so that API paths join below it.
/// A node id (64 hex digits) names a peer reached over iroh: `iroh://NODE_ID/`
/// (`crate::transport`).
pub fn parse_peer_url(text: &str) -> Result<Url, NodeError> {
    if let Ok(node) = text.parse::<dsi_protocol::NodeId>() {
        return Ok(crate::transport::peer_url(&node));
    }
    if text.starts_with("iroh://") {
        let url: Url = text
            .parse()
            .map_err(|e| NodeError::Usage(format!("peer {text:?}: {e}")))?;
        return match crate::transport::peer_node(&url) {
            Some(node) => Ok(crate::transport::peer_url(&node)),
            None => Err(NodeError::Usage(format!(
                "peer {text:?}: iroh://NODE_ID/ needs a node id of 64 hex digits"
            ))),
        };
    }
    dsi_service::parse_base_url(text, "peer URL").map_err(NodeError::Usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_name_peers_over_iroh() {
        let node = dsi_protocol::SecretKey::from_seed(&[9; 32]).node_id();
        let url = parse_peer_url(&node.to_string()).unwrap();
        assert_eq!(url.as_str(), format!("iroh://{node}/"));
        assert_eq!(parse_peer_url(url.as_str()).unwrap(), url);
        assert!(parse_peer_url("iroh://abc/").is_err());
    }

    #[test]
    fn peer_urls() {
        assert_eq!(
            parse_peer_url("http://127.0.0.1:7070").unwrap().as_str(),
            "http://127.0.0.1:7070/"
        );
        assert_eq!(
            parse_peer_url("https://n.example/dsi").unwrap().as_str(),
            "https://n.example/dsi/"
        );
        for bad in [
            "127.0.0.1:7070",
            "ftp://x",
            "http://",
            "http://x/?a=1",
            "not a url",
        ] {
            let err = parse_peer_url(bad).unwrap_err();
            assert!(
                err.to_string().contains("malformed peer URL"),
                "{bad}: {err}"
            );
            assert_eq!(err.exit(), dsi_api::exit::Exit::Usage);
        }
    }
}
