//! The client's address: the TCP peer, or — only when that peer is a configured trusted proxy
//! (`LATCHKEY_TRUSTED_PROXIES`) — the right-most address in `X-Forwarded-For` that is not
//! itself a trusted proxy. Anything else could be forged by the client.

use std::net::{IpAddr, SocketAddr};

use axum::{extract::ConnectInfo, http::request::Parts};

/// The address a request comes from, as far as it can be trusted.
pub fn client_ip(parts: &Parts, trusted_proxies: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip())?;
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|item| item.trim().parse().ok())
        .collect();
    Some(forwarded.into_iter().rev().find(|ip| !trusted(ip)).unwrap_or(peer))
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn parts(peer: &str, forwarded: Option<&str>) -> Parts {
        let mut request = Request::builder();
        if let Some(value) = forwarded {
            request = request.header("x-forwarded-for", value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        parts.extensions.insert(ConnectInfo::<SocketAddr>(format!("{peer}:4000").parse().unwrap()));
        parts
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let proxies: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |peer, fwd| client_ip(&parts(peer, fwd), &proxies).unwrap().to_string();
        assert_eq!(ip("203.0.113.9", Some("198.51.100.1")), "203.0.113.9", "untrusted peers cannot claim an address");
        assert_eq!(ip("10.1.2.3", Some("198.51.100.1")), "198.51.100.1");
        assert_eq!(ip("10.1.2.3", Some("1.1.1.1, 198.51.100.1, 10.9.9.9")), "198.51.100.1", "right-most untrusted");
        assert_eq!(ip("10.1.2.3", Some("garbage")), "10.1.2.3");
        assert_eq!(ip("10.1.2.3", None), "10.1.2.3");
    }
}
