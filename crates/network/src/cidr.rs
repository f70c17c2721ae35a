//! IPv4 prefixes (`10.244.0.0/24`): parsing, printing, membership and host enumeration. Pure; no IO.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::error::NetworkError;

/// An IPv4 network: an address and a prefix length. Parsing requires the address to be the network address itself
/// (no host bits set), so `10.244.0.1/24` is rejected rather than silently meaning `10.244.0.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    /// The network address (host bits are zero).
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix: u8,
}

impl Ipv4Net {
    /// Builds a network, rejecting a prefix above 32 or an address with host bits set.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, NetworkError> {
        let net = Ipv4Net { addr, prefix };
        if prefix > 32 {
            return Err(NetworkError::InvalidCidr {
                input: net.to_string(),
                reason: "prefix length above 32",
            });
        }
        if u32::from(addr) & !net.mask() != 0 {
            return Err(NetworkError::InvalidCidr {
                input: net.to_string(),
                reason: "host bits set (use the network address)",
            });
        }
        Ok(net)
    }

    /// The netmask as an integer (`/24` → `0xffffff00`).
    pub fn mask(&self) -> u32 {
        match self.prefix {
            0 => 0,
            p => u32::MAX << (32 - u32::from(p.min(32))),
        }
    }

    /// The number of addresses in the network, including network and broadcast addresses.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix.min(32)))
    }

    /// The broadcast (last) address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// Whether `ip` lies inside this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    /// Whether all of `other` lies inside this network.
    pub fn contains_net(&self, other: &Ipv4Net) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    /// The `n`-th address counted from the network address (`nth(1)` of `10.244.0.0/24` is `10.244.0.1`), or `None`
    /// past the end. Whether the result is usable as a host is [`Ipv4Net::is_host`]'s question.
    pub fn nth(&self, n: u64) -> Option<Ipv4Addr> {
        if n >= self.size() {
            return None;
        }
        // n < size <= 2^32, so the sum stays within the network and fits in u32.
        Some(Ipv4Addr::from(u32::from(self.addr).wrapping_add(n as u32)))
    }

    /// The offset of `ip` from the network address, if `ip` is inside.
    pub fn offset_of(&self, ip: Ipv4Addr) -> Option<u64> {
        self.contains(ip)
            .then(|| u64::from(u32::from(ip) - u32::from(self.addr)))
    }

    /// Whether `ip` is a usable host address: inside the network and neither the network nor the broadcast address
    /// (for prefixes up to /30; /31 and /32 have no room for Pods and are refused by the config check).
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && ip != self.addr && ip != self.broadcast()
    }

    /// The usable host addresses in order: from the first after the network address up to the one before broadcast.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        (1..self.size().saturating_sub(1)).filter_map(|n| self.nth(n))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = NetworkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| NetworkError::InvalidCidr {
            input: s.to_string(),
            reason,
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(|| invalid("missing /prefix"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| invalid("not an IPv4 address"))?;
        // u8::from_str accepts a leading '+'; only plain digits are a prefix length.
        if prefix.is_empty() || prefix.len() > 2 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("prefix length is not a number 0..=32"));
        }
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| invalid("prefix length is not a number 0..=32"))?;
        if prefix > 32 {
            return Err(invalid("prefix length above 32"));
        }
        Ipv4Net::new(addr, prefix).map_err(|_| invalid("host bits set (use the network address)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints() {
        let n = net("10.244.0.0/24");
        assert_eq!(n.addr, Ipv4Addr::new(10, 244, 0, 0));
        assert_eq!(n.prefix, 24);
        assert_eq!(n.to_string(), "10.244.0.0/24");
        assert_eq!(net("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(net("192.0.2.7/32").size(), 1);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "10.244.0.0",
            "10.244.0.0/",
            "10.244.0.0/33",
            "10.244.0.0/+8",
            "10.244.0.0/-1",
            "10.244.0.0/024",
            "10.244.0.1/24",
            "10.244.0/24",
            "fd00::/64",
            "",
        ] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn membership() {
        let n = net("10.244.0.0/16");
        assert!(n.contains(Ipv4Addr::new(10, 244, 255, 255)));
        assert!(!n.contains(Ipv4Addr::new(10, 245, 0, 0)));
        assert!(n.contains_net(&net("10.244.3.0/24")));
        assert!(!n.contains_net(&net("10.0.0.0/8")));
        assert!(net("0.0.0.0/0").contains(Ipv4Addr::new(8, 8, 8, 8)));
    }

    #[test]
    fn host_enumeration() {
        let n = net("10.244.1.0/24");
        let hosts: Vec<_> = n.hosts().collect();
        assert_eq!(hosts.len(), 254);
        assert_eq!(hosts[0], Ipv4Addr::new(10, 244, 1, 1));
        assert_eq!(hosts[253], Ipv4Addr::new(10, 244, 1, 254));
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 244, 1, 255));
        assert_eq!(n.nth(1), Some(Ipv4Addr::new(10, 244, 1, 1)));
        assert_eq!(n.nth(256), None);
        assert_eq!(n.offset_of(Ipv4Addr::new(10, 244, 1, 9)), Some(9));
        assert_eq!(n.offset_of(Ipv4Addr::new(10, 244, 2, 9)), None);
        assert!(!n.is_host(n.addr));
        assert!(!n.is_host(n.broadcast()));
        assert!(n.is_host(Ipv4Addr::new(10, 244, 1, 200)));
        let small: Vec<_> = net("10.0.0.0/30").hosts().collect();
        assert_eq!(small, vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]);
    }
}
