//! # dsi-service: what every DSI program shares at run time
//!
//! - [`http`]: the one [`http::ApiError`] of both servers (JSON `{code, message}` with the
//!   status of its [`dsi_api::ErrorCode`]), the [`http::JsonBody`] extractor, and
//!   [`http::json_errors`], which turns every other error answer (unknown route, wrong
//!   method, oversized body) into the same JSON;
//! - [`oracle_client::OracleClient`]: the typed client of the oracle's API, used by the
//!   oracle's CLI, node-lite's tracker client, devnet and the tests;
//! - [`runtime`]: the tokio runtime, shutdown on Ctrl-C or SIGTERM, logging setup;
//! - [`report`]: the [`report::Report`] every command returns and [`report::emit`], which
//!   prints it as text or JSON;
//! - [`parse_base_url`]: the rules for a peer's or the oracle's base URL.
//!
//! The wire types themselves are in `dsi-api`.

pub mod http;
pub mod oracle_client;
pub mod prometheus;
pub mod report;
pub mod runtime;

pub use oracle_client::{ClientError, OracleClient};

/// Parses a server's base URL: `http` or `https`, with a host, no query or fragment. A path
/// is kept (a server may sit behind a reverse proxy); a trailing `/` is added so that API
/// paths join below it. `what` names the URL in the error (`peer URL`, `tracker URL`).
pub fn parse_base_url(text: &str, what: &str) -> Result<reqwest::Url, String> {
    let bad = |why: &str| format!("malformed {what} {text:?}: {why}");
    let mut url = reqwest::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not have a query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}
