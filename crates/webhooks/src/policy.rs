//! Which webhook URLs the service may call.
//!
//! Goal: an endpoint URL must not turn the dispatcher into a way to reach the service's own
//! network (loopback, private ranges, cloud metadata at 169.254.169.254, ...): server-side
//! request forgery. `CREDITS_WEBHOOK_ALLOW_PRIVATE` lifts the checks for tests and closed
//! networks.
//! Method: [`UrlPolicy::check_url`] is applied when an endpoint is created and before each
//! attempt: https only, a host, no `localhost` names, and an IP literal must be public.
//! [`UrlPolicy::check_resolved`] resolves the host at delivery time and refuses if any address
//! is not public; [`PolicyResolver`] applies the same check inside the HTTP client, to the
//! very addresses it connects to, so a name that changes its answer between the check and the
//! connection (DNS rebinding) is still refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Allow `http`, `localhost` and non-public addresses (`CREDITS_WEBHOOK_ALLOW_PRIVATE`).
    pub allow_private: bool,
}

impl UrlPolicy {
    /// The URL, if an endpoint may have it; else why not.
    pub fn check_url(&self, url: &str) -> Result<Url, String> {
        let parsed = Url::parse(url).map_err(|e| format!("url is not a valid URL: {e}"))?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_private => {}
            "http" => return Err("url must use https".into()),
            other => return Err(format!("url must use https, not {other}")),
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| "url must have a host".to_string())?;
        if self.allow_private {
            return Ok(parsed);
        }
        // The URL parser has normalised IPv4 literals (`127.1`, `0x7f000001`) to dotted form
        // and put IPv6 literals in brackets.
        let ip = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => Some(IpAddr::V6(
                v6.parse().map_err(|_| format!("url has an invalid IPv6 address ({v6})"))?,
            )),
            None => host.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
        };
        match ip {
            Some(ip) if !ip_is_public(ip) => {
                return Err(format!("url must not point to a non-public address ({ip})"));
            }
            Some(_) => {}
            None => {
                let name = host.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    return Err("url must not point to localhost".into());
                }
            }
        }
        Ok(parsed)
    }

    /// The addresses `host` resolves to now, if all of them may be called; else why not.
    /// `host` may be a name or an IP literal (IPv6 with or without brackets).
    pub async fn check_resolved(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| format!("cannot resolve {bare}: {e}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("{bare} resolves to no address"));
        }
        if !self.allow_private {
            if let Some(refused) = addrs.iter().find(|a| !ip_is_public(a.ip())) {
                return Err(format!("{bare} resolves to a non-public address ({})", refused.ip()));
            }
        }
        Ok(addrs)
    }
}

/// A DNS resolver for the HTTP client that applies [`UrlPolicy::check_resolved`] to the
/// addresses the client is about to connect to.
#[derive(Debug, Clone, Copy)]
pub struct PolicyResolver {
    pub policy: UrlPolicy,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        Box::pin(async move {
            // Port 0: the client puts the URL's port in.
            let addrs = policy.check_resolved(name.as_str(), 0).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether an address is on the public internet.
pub fn ip_is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => ipv4_is_public(ip),
        IpAddr::V6(ip) => ipv6_is_public(ip),
    }
}

fn in_v4(ip: Ipv4Addr, network: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(network)) & mask
}

fn in_v6(ip: Ipv6Addr, network: [u16; 8], prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(network)) & mask
}

/// Whether an IPv4 address is public: not in any special-purpose range (RFC 6890 and after).
pub fn ipv4_is_public(ip: Ipv4Addr) -> bool {
    const NOT_PUBLIC: &[([u8; 4], u32)] = &[
        ([0, 0, 0, 0], 8),       // "this network", unspecified
        ([10, 0, 0, 0], 8),      // private
        ([100, 64, 0, 0], 10),   // shared address space (CGNAT)
        ([127, 0, 0, 0], 8),     // loopback
        ([169, 254, 0, 0], 16),  // link-local (and cloud metadata)
        ([172, 16, 0, 0], 12),   // private
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // documentation (TEST-NET-1)
        ([192, 88, 99, 0], 24),  // 6to4 relay anycast (deprecated)
        ([192, 168, 0, 0], 16),  // private
        ([198, 18, 0, 0], 15),   // benchmarking
        ([198, 51, 100, 0], 24), // documentation (TEST-NET-2)
        ([203, 0, 113, 0], 24),  // documentation (TEST-NET-3)
        ([224, 0, 0, 0], 4),     // multicast
        ([240, 0, 0, 0], 4),     // reserved, and broadcast 255.255.255.255
    ];
    !NOT_PUBLIC.iter().any(|(network, prefix)| in_v4(ip, *network, *prefix))
}

/// Whether an IPv6 address is public: global unicast (2000::/3) outside the special ranges
/// inside it; an address that embeds an IPv4 one (mapped, NAT64, 6to4) is judged by that.
pub fn ipv6_is_public(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return ipv4_is_public(v4);
    }
    let octets = ip.octets();
    let embedded =
        |at: usize| Ipv4Addr::new(octets[at], octets[at + 1], octets[at + 2], octets[at + 3]);
    if in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        return ipv4_is_public(embedded(12)); // NAT64
    }
    if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        return ipv4_is_public(embedded(2)); // 6to4
    }
    const NOT_PUBLIC: &[([u16; 8], u32)] = &[
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 32),      // Teredo
        ([0x2001, 0x0002, 0, 0, 0, 0, 0, 0], 48), // benchmarking
        ([0x2001, 0x0010, 0, 0, 0, 0, 0, 0], 28), // ORCHID
        ([0x2001, 0x0020, 0, 0, 0, 0, 0, 0], 28), // ORCHIDv2
        ([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32), // documentation
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),      // documentation (RFC 9637)
    ];
    // Outside 2000::/3 are loopback, unspecified, unique-local fc00::/7, link-local fe80::/10,
    // site-local, multicast ff00::/8, discard 100::/64, IPv4-compatible and unassigned space.
    in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3)
        && !NOT_PUBLIC.iter().any(|(network, prefix)| in_v6(ip, *network, *prefix))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const STRICT: UrlPolicy = UrlPolicy { allow_private: false };
    const OPEN: UrlPolicy = UrlPolicy { allow_private: true };

    #[test]
    fn check_url_table() {
        // (url, allowed when strict, allowed with allow_private)
        let cases: &[(&str, bool, bool)] = &[
            ("https://hooks.example.com/credits", true, true),
            ("https://hooks.example.com:8443/x?y=1", true, true),
            ("https://93.184.215.14/hook", true, true),
            ("https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/hook", true, true),
            ("http://hooks.example.com/credits", false, true),
            ("ftp://hooks.example.com/credits", false, false),
            ("file:///etc/passwd", false, false),
            ("javascript:alert(1)", false, false),
            ("not a url", false, false),
            ("https://", false, false),
            ("https://localhost/hook", false, true),
            ("https://LOCALHOST./hook", false, true),
            ("https://api.localhost/hook", false, true),
            ("https://localhost.example.com/hook", true, true),
            ("https://127.0.0.1/hook", false, true),
            ("https://127.1/hook", false, true),
            ("https://2130706433/hook", false, true),
            ("https://0x7f000001/hook", false, true),
            ("https://0.0.0.0/hook", false, true),
            ("https://10.1.2.3/hook", false, true),
            ("https://172.16.0.1/hook", false, true),
            ("https://172.31.255.255/hook", false, true),
            ("https://172.32.0.1/hook", true, true),
            ("https://192.168.1.1/hook", false, true),
            ("https://169.254.169.254/latest/meta-data", false, true),
            ("https://100.64.0.1/hook", false, true),
            ("https://100.128.0.1/hook", true, true),
            ("https://224.0.0.1/hook", false, true),
            ("https://255.255.255.255/hook", false, true),
            ("https://192.0.2.10/hook", false, true),
            ("https://198.51.100.10/hook", false, true),
            ("https://203.0.113.10/hook", false, true),
            ("https://[::1]/hook", false, true),
            ("https://[::]/hook", false, true),
            ("https://[fc00::1]/hook", false, true),
            ("https://[fd12:3456::1]/hook", false, true),
            ("https://[fe80::1]/hook", false, true),
            ("https://[ff02::1]/hook", false, true),
            ("https://[::ffff:127.0.0.1]/hook", false, true),
            ("https://[::ffff:10.0.0.1]/hook", false, true),
            ("https://[::ffff:93.184.215.14]/hook", true, true),
            ("https://[64:ff9b::a9fe:a9fe]/hook", false, true),
            ("https://[2002:c0a8:0101::1]/hook", false, true),
            ("https://[2001:db8::1]/hook", false, true),
        ];
        for (url, strict, open) in cases {
            assert_eq!(STRICT.check_url(url).is_ok(), *strict, "strict: {url}");
            assert_eq!(OPEN.check_url(url).is_ok(), *open, "allow_private: {url}");
        }
    }

    #[test]
    fn check_url_gives_a_reason() {
        let error = STRICT.check_url("http://hooks.example.com").unwrap_err();
        assert!(error.contains("https"), "{error}");
        let error = STRICT.check_url("https://10.0.0.1").unwrap_err();
        assert!(error.contains("10.0.0.1"), "{error}");
    }

    #[test]
    fn ip_table() {
        let cases: &[(&str, bool)] = &[
            ("8.8.8.8", true),
            ("1.1.1.1", true),
            ("0.1.2.3", false),
            ("127.255.0.1", false),
            ("100.127.255.255", false),
            ("169.254.0.1", false),
            ("192.0.0.8", false),
            ("198.18.0.1", false),
            ("198.20.0.1", true),
            ("240.0.0.1", false),
            ("2606:4700:4700::1111", true),
            ("2001:4860:4860::8888", true),
            ("::1", false),
            ("::", false),
            ("::127.0.0.1", false),
            ("fec0::1", false),
            ("100::1", false),
            ("2001::1", false),
            ("2001:10::1", false),
            ("3fff::1", false),
            ("64:ff9b::808:808", true),
            ("2002:808:808::1", true),
            ("::ffff:192.168.0.1", false),
            ("::ffff:8.8.8.8", true),
        ];
        for (ip, public) in cases {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_is_public(parsed), *public, "{ip}");
        }
    }

    #[tokio::test]
    async fn check_resolved_refuses_non_public_addresses() {
        let error = STRICT.check_resolved("127.0.0.1", 443).await.unwrap_err();
        assert!(error.contains("127.0.0.1"), "{error}");
        assert!(STRICT.check_resolved("[::1]", 443).await.is_err());
        // `localhost` resolves from /etc/hosts, without the network.
        assert!(STRICT.check_resolved("localhost", 443).await.is_err());

        let addrs = OPEN.check_resolved("127.0.0.1", 8080).await.unwrap();
        assert_eq!(addrs, vec!["127.0.0.1:8080".parse().unwrap()]);
        let addrs = OPEN.check_resolved("[::1]", 8080).await.unwrap();
        assert_eq!(addrs, vec!["[::1]:8080".parse().unwrap()]);

        // A public literal needs no lookup.
        let addrs = STRICT.check_resolved("8.8.8.8", 443).await.unwrap();
        assert_eq!(addrs, vec!["8.8.8.8:443".parse().unwrap()]);
    }
}
