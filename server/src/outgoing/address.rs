//! Where events may go. An endpoint's URL is typed by an operator, and a server that POSTs to
//! whatever it is told is a way into the private network (SSRF): private, loopback, link-local
//! and other non-public addresses are refused — checked after DNS resolution, on every
//! connection, so a name that later resolves elsewhere is refused too — unless
//! `ENDPOINTS_ALLOW_PRIVATE=true` (the sandbox, tests, a receiver on the same machine).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => public_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(mapped) => public_v4(mapped),
            None => public_v6(ip),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// IPv6 ranges that are not the public internet: every entry of IANA's IPv6 Special-Purpose
/// Address Registry that is not globally reachable (2001::/23 whole, though a few of its blocks
/// are), with the deprecated IPv4-compatible and site-local ranges and 6to4, whose addresses
/// can lead into IPv4 private space. (A table, not a crate: std's `is_global` is unstable, and
/// the crates that carry one are whole network stacks.) Prefix and length.
const NOT_PUBLIC_V6: [(u128, u32); 13] = [
    (0, 96),                      // ::/96 IPv4-compatible, with :: and ::1
    (0xffff_u128 << 48, 96),      // ::ffff:0:0:0/96 IPv4-translated
    (0x0064_ff9b_u128 << 96, 32), // 64:ff9b::/96 NAT64 and 64:ff9b:1::/48 local NAT64
    (0x0100_u128 << 112, 64),     // 100::/64 discard-only
    (0x2001_u128 << 112, 23),     // 2001::/23 IETF protocol assignments
    (0x2001_0db8_u128 << 96, 32), // 2001:db8::/32 documentation
    (0x2002_u128 << 112, 16),     // 2002::/16 6to4
    (0x3fff_u128 << 112, 20),     // 3fff::/20 documentation
    (0x5f00_u128 << 112, 16),     // 5f00::/16 segment routing
    (0xfc00_u128 << 112, 7),      // fc00::/7 unique local
    (0xfe80_u128 << 112, 10),     // fe80::/10 link-local
    (0xfec0_u128 << 112, 10),     // fec0::/10 site-local (deprecated)
    (0xff00_u128 << 112, 8),      // ff00::/8 multicast
];

fn public_v6(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    !NOT_PUBLIC_V6
        .iter()
        .any(|(prefix, length)| (bits ^ prefix).checked_shr(128 - length).unwrap_or(0) == 0)
}

/// Checks an endpoint URL as typed: `https://` (plain `http://` only where private addresses
/// are allowed, for a receiver on this machine), a host, no credentials, no fragment, and not
/// an IP address outside the public internet. Returns it normalized.
pub fn check_url(text: &str, allow_private: bool) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text.trim()).map_err(|error| format!("not a URL: {error}"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => {
            return Err(
                "use https:// (plain http is allowed only with ENDPOINTS_ALLOW_PRIVATE=true)"
                    .into(),
            );
        }
        other => return Err(format!("`{other}:` is not http(s)")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("no credentials in the URL: the signature authenticates events".into());
    }
    if url.fragment().is_some() {
        return Err("no #fragment in the URL".into());
    }
    let host = url.host_str().ok_or("the URL has no host")?;
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>()
        && !allow_private
        && !is_public(ip)
    {
        return Err(refusal(ip));
    }
    Ok(url)
}

fn refusal(ip: IpAddr) -> String {
    format!(
        "{ip} is a private, loopback or reserved address: refused (set \
         ENDPOINTS_ALLOW_PRIVATE=true for a receiver on this machine or network)"
    )
}

/// Resolves `url`'s host now and refuses it if no public address comes back (for
/// `endpoints add`, so a typo'd or internal name is caught when it is typed).
pub async fn check_resolves(url: &reqwest::Url, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let host = url.host_str().ok_or("the URL has no host")?;
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|error| format!("cannot resolve {host}: {error}"))?
        .collect();
    match addrs.iter().find(|addr| !is_public(addr.ip())) {
        Some(addr) => Err(refusal(addr.ip())),
        None if addrs.is_empty() => Err(format!("{host} resolves to no address")),
        None => Ok(()),
    }
}

/// The delivery client's DNS: the system's resolver, with every non-public address refused
/// (all of a name's addresses must be public, so a name cannot point half inside).
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(addr) = addrs.iter().find(|addr| !is_public(addr.ip())) {
                return Err(refusal(addr.ip()).into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for text in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "::127.0.0.1",
            "::ffff:0:127.0.0.1",
            "::10.0.0.1",
            "64:ff9b:1::a00:1",
            "100::1",
            "2001::1",
            "2001:1ff::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "fc00::1",
            "fdff:ffff::1",
            "febf::1",
            "ff02::1",
            "ff0e::1",
            "3fff::1",
        ] {
            assert!(
                !is_public(text.parse().unwrap()),
                "{text} counted as public"
            );
        }
        for text in [
            "1.1.1.1",
            "149.154.167.220",
            "2001:4860:4860::8888",
            "2001:200::1",
            "2a00:1450:4001::200e",
            "::ffff:1.1.1.1",
            "2600::1",
        ] {
            assert!(
                is_public(text.parse().unwrap()),
                "{text} counted as private"
            );
        }
    }

    #[test]
    fn urls_are_checked_as_typed() {
        assert!(check_url("https://hooks.example.com/ndn", false).is_ok());
        assert!(
            check_url("http://hooks.example.com/ndn", false)
                .unwrap_err()
                .contains("https")
        );
        assert!(check_url("http://127.0.0.1:9000/", true).is_ok());
        assert!(
            check_url("https://127.0.0.1/", false)
                .unwrap_err()
                .contains("private")
        );
        for form in [
            "https://[::1]/",
            "https://[::127.0.0.1]/",
            "https://[::ffff:0:127.0.0.1]/",
        ] {
            assert!(
                check_url(form, false).unwrap_err().contains("private"),
                "{form}"
            );
        }
        assert!(check_url("https://user:pw@example.com/", false).is_err());
        assert!(check_url("ftp://example.com/", true).is_err());
        assert!(check_url("not a url", true).is_err());
    }
}
