//! IP networks as configuration gives them (`WEBHOOK_ALLOWED_NETWORKS`), and the check of an
//! address against them.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// A set of IP networks, e.g. Telegram's `149.154.160.0/20,91.108.4.0/22`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Networks(Vec<(IpAddr, u8)>);

impl Networks {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut networks = Vec::new();
        for item in text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let (address, bits) = item.split_once('/').unwrap_or((item, ""));
            let address: IpAddr = address
                .parse()
                .map_err(|_| format!("`{item}` is not an IP network"))?;
            let max = if address.is_ipv4() { 32 } else { 128 };
            let bits = if bits.is_empty() {
                max
            } else {
                bits.parse().map_err(|_| format!("`{item}`: bad prefix"))?
            };
            if bits > max {
                return Err(format!("`{item}`: prefix longer than {max}"));
            }
            networks.push((address, bits));
        }
        if networks.is_empty() {
            return Err("no networks given".into());
        }
        Ok(Self(networks))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|(network, bits)| match (network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_matches(&net.octets(), &ip.octets(), *bits),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_matches(&net.octets(), &ip.octets(), *bits),
            _ => false,
        })
    }
}

fn prefix_matches(network: &[u8], ip: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits);
    let (whole, rest) = (bits / 8, bits % 8);
    if network[..whole] != ip[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        network[whole] & mask == ip[whole] & mask
    }
}

/// Where a request came from: the peer, or, behind a trusted proxy, the address the proxy
/// appended last to `header` (the only entry the proxy itself vouches for).
pub fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted_header: Option<&str>,
) -> Option<IpAddr> {
    match trusted_header {
        None => Some(peer),
        Some(name) => headers
            .get(name)?
            .to_str()
            .ok()?
            .rsplit(',')
            .next()?
            .trim()
            .parse()
            .ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behind_a_trusted_proxy_the_last_forwarded_address_counts() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 149.154.160.5".parse().unwrap());
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(peer, &headers, Some("x-forwarded-for")),
            "149.154.160.5".parse().ok()
        );
        assert_eq!(client_ip(peer, &headers, None), Some(peer));
        assert_eq!(
            client_ip(peer, &HeaderMap::new(), Some("x-forwarded-for")),
            None
        );
    }

    #[test]
    fn telegram_networks_match_their_addresses_only() {
        let telegram = Networks::parse("149.154.160.0/20, 91.108.4.0/22").unwrap();
        for inside in [
            "149.154.160.1",
            "149.154.175.255",
            "91.108.7.9",
            "::ffff:149.154.161.2",
        ] {
            assert!(telegram.contains(inside.parse().unwrap()), "{inside}");
        }
        for outside in ["149.154.176.0", "91.108.8.1", "127.0.0.1", "::1"] {
            assert!(!telegram.contains(outside.parse().unwrap()), "{outside}");
        }
        assert!(Networks::parse("10.0.0.0/33").is_err());
        assert!(Networks::parse("nonsense").is_err());
        assert!(Networks::parse("").is_err());
    }
}
