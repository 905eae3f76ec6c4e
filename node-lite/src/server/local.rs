//! Routes for the node's own machine (the gateway and the dashboard by default): who counts
//! as local. The connection must come from a loopback address, the `Host` must be a
//! loopback address or `localhost` (a DNS-rebinding page names its own host), and a browser
//! request must come from the node's own pages: `Sec-Fetch-Site`, `Origin` and `Referer`,
//! when sent, must not name another site. Otherwise any web page the operator visits could
//! use the route from the operator's browser.

use std::net::IpAddr;

use axum::http::{HeaderMap, header};
use dsi_api::ErrorCode;
use dsi_service::http::ApiError;

use crate::config::Clients;

/// Whether `client` (with request `headers`) may use a route open to `clients`, configured
/// by the setting named `setting`; `Err` (403 `client_refused`) says why not.
pub fn admit(
    clients: Clients,
    setting: &str,
    client: IpAddr,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if clients == Clients::Anyone {
        return Ok(());
    }
    let refuse = |why: String| {
        ApiError::new(
            ErrorCode::ClientRefused,
            format!(
                "{why}: this route serves only programs on the node's own machine \
                 ({setting} = \"loopback\")"
            ),
        )
    };
    if !is_loopback(client) {
        return Err(refuse(format!("the request comes from {client}")));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !local_authority(host) {
        return Err(refuse(format!("the request names the host {host:?}")));
    }
    if let Some(site) = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .filter(|site| !matches!(*site, "same-origin" | "none"))
    {
        return Err(refuse(format!(
            "a browser sent it from another site (Sec-Fetch-Site: {site})"
        )));
    }
    for name in [header::ORIGIN, header::REFERER] {
        if let Some(value) = headers.get(&name).and_then(|v| v.to_str().ok())
            && value != "null"
            && !reqwest::Url::parse(value)
                .ok()
                .and_then(|url| url.host_str().map(str::to_string))
                .is_some_and(|host| local_host(&host))
        {
            return Err(refuse(format!("a page of {value:?} sent it ({name})")));
        }
    }
    Ok(())
}

/// A loopback address (IPv4, IPv6, or IPv4-mapped IPv6).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// `localhost` (or a name under it) or a loopback address.
pub fn local_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(is_loopback)
}

/// A `Host` header (`host[:port]`, `[v6]:port`) that names this machine.
pub fn local_authority(authority: &str) -> bool {
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(':') => {
            host
        }
        _ => authority,
    };
    !host.is_empty() && local_host(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_hosts_are_local() {
        for local in [
            "127.0.0.1:7080",
            "127.0.0.1",
            "localhost:7080",
            "LOCALHOST",
            "app.localhost:80",
            "[::1]:7080",
            "[::1]",
            "127.1.2.3:1",
        ] {
            assert!(local_authority(local), "{local}");
        }
        for foreign in [
            "",
            "evil.example:7080",
            "evil.example",
            "localhost.evil.example",
            "10.0.0.1:7080",
            "[2001:db8::1]:80",
            "0.0.0.0:7080",
        ] {
            assert!(!local_authority(foreign), "{foreign}");
        }
    }
}
