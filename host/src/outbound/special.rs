//! Addresses a connector may not reach unless an operator names them: every
//! block of the IANA IPv4 and IPv6 Special-Purpose Address Registries
//! (RFC 6890 and later), plus multicast and broadcast. IPv6 forms that embed an
//! IPv4 address (IPv4-mapped, NAT64, 6to4) are judged by that IPv4 address, so
//! `::ffff:10.0.0.1` or `2002:7f00:1::` cannot smuggle a private target.
//!
//! `ipnet` does the prefix arithmetic; the table is the registries' content (no
//! maintained crate classifies addresses against them: `Ipv4Addr::is_global` is
//! still unstable, and the crates copying it miss the embedded IPv4 forms).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use ipnet::{Ipv4Net, Ipv6Net};

/// IPv4 blocks that are not global unicast destinations, with their purpose;
/// the first match names it, so a block comes before any block containing it.
const V4_BLOCKS: &[(&str, &str)] = &[
    ("0.0.0.0/8", "\"this network\" (RFC 791)"),
    ("10.0.0.0/8", "private network (RFC 1918)"),
    (
        "100.64.0.0/10",
        "shared address space, carrier-grade NAT (RFC 6598)",
    ),
    ("127.0.0.0/8", "loopback (RFC 1122)"),
    ("169.254.0.0/16", "link-local, cloud metadata (RFC 3927)"),
    ("172.16.0.0/12", "private network (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
    ("192.0.2.0/24", "documentation, TEST-NET-1 (RFC 5737)"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast (RFC 7526)"),
    ("192.168.0.0/16", "private network (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation, TEST-NET-2 (RFC 5737)"),
    ("203.0.113.0/24", "documentation, TEST-NET-3 (RFC 5737)"),
    ("255.255.255.255/32", "limited broadcast (RFC 919)"),
    ("224.0.0.0/4", "multicast (RFC 5771)"),
    ("240.0.0.0/4", "reserved (RFC 1112)"),
];

/// IPv6 blocks that are not global unicast destinations. The forms embedding an
/// IPv4 address are handled before this table is read.
const V6_BLOCKS: &[(&str, &str)] = &[
    ("::/128", "unspecified (RFC 4291)"),
    ("::1/128", "loopback (RFC 4291)"),
    ("::/96", "deprecated IPv4-compatible (RFC 4291)"),
    (
        "64:ff9b:1::/48",
        "local-use IPv4/IPv6 translation (RFC 8215)",
    ),
    ("100::/64", "discard-only (RFC 6666)"),
    (
        "2001::/23",
        "IETF protocol assignments, Teredo (RFC 2928, RFC 4380)",
    ),
    ("2001:db8::/32", "documentation (RFC 3849)"),
    ("3fff::/20", "documentation (RFC 9637)"),
    ("5f00::/16", "segment routing SIDs (RFC 9602)"),
    ("fc00::/7", "unique local (RFC 4193)"),
    ("fe80::/10", "link-local (RFC 4291)"),
    ("fec0::/10", "deprecated site-local (RFC 3879)"),
    ("ff00::/8", "multicast (RFC 4291)"),
];

static V4: LazyLock<Vec<(Ipv4Net, &'static str)>> = LazyLock::new(|| {
    V4_BLOCKS
        .iter()
        .map(|(net, why)| (net.parse().expect("valid IPv4 block"), *why))
        .collect()
});

static V6: LazyLock<Vec<(Ipv6Net, &'static str)>> = LazyLock::new(|| {
    V6_BLOCKS
        .iter()
        .map(|(net, why)| (net.parse().expect("valid IPv6 block"), *why))
        .collect()
});

/// The IPv4 address an IPv6 address stands for, when it embeds one.
fn embedded_v4(v6: &Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let o = v6.octets();
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4); // ::ffff:a.b.c.d
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15])); // NAT64 64:ff9b::/96
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])); // 6to4 2002:aabb:ccdd::/48
    }
    None
}

/// Why `ip` is not a public destination, or `None` when it is one.
pub fn special_purpose(ip: &IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => V4.iter().find(|(net, _)| net.contains(v4)).map(|b| b.1),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => special_purpose(&IpAddr::V4(v4)),
            None => V6.iter().find(|(net, _)| net.contains(v6)).map(|b| b.1),
        },
    }
}

/// Loopback, private, link-local, reserved, multicast and every other
/// non-public address.
pub fn is_private(ip: &IpAddr) -> bool {
    special_purpose(ip).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One address inside each block, and the first address after it.
    #[test]
    fn every_registry_block_is_refused() {
        let cases = [
            ("0.1.2.3", "this network"),
            ("10.255.0.1", "RFC 1918"),
            ("100.64.0.1", "RFC 6598"),
            ("100.127.255.254", "RFC 6598"),
            ("127.0.0.2", "loopback"),
            ("169.254.169.254", "link-local"),
            ("172.31.1.1", "RFC 1918"),
            ("192.0.0.9", "IETF"),
            ("192.0.2.10", "TEST-NET-1"),
            ("192.88.99.1", "6to4 relay"),
            ("192.168.1.1", "RFC 1918"),
            ("198.19.255.1", "benchmarking"),
            ("198.51.100.7", "TEST-NET-2"),
            ("203.0.113.9", "TEST-NET-3"),
            ("224.0.0.251", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "broadcast"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::10.0.0.1", "IPv4-compatible"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("64:ff9b::a00:1", "RFC 1918"),
            ("64:ff9b::7f00:1", "loopback"),
            ("64:ff9b:1::1", "RFC 8215"),
            ("100::1", "discard"),
            ("2001::1", "Teredo"),
            ("2001:db8::1", "documentation"),
            ("2002:7f00:1::1", "loopback"),
            ("2002:c0a8:101::1", "RFC 1918"),
            ("3fff::1", "documentation"),
            ("5f00::1", "segment routing"),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("fe80::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("ff0e::1", "multicast"),
        ];
        for (ip, purpose) in cases {
            let why = special_purpose(&ip.parse().unwrap());
            assert!(
                why.is_some_and(|w| w.contains(purpose)),
                "{ip}: expected {purpose:?}, got {why:?}"
            );
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "192.0.1.1",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "93.184.216.34",
            "2606:4700::1111",
            "2a00:1450:4007::200e",
            "64:ff9b::808:808", // NAT64 of 8.8.8.8
            "2002:808:808::1",  // 6to4 of 8.8.8.8
            "::ffff:93.184.216.34",
            "2001:200::1", // just after 2001::/23
        ] {
            assert_eq!(special_purpose(&ip.parse().unwrap()), None, "{ip}");
        }
    }
}
