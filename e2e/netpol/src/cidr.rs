//! IPv4 CIDR blocks and the one operation NetworkPolicy's `ipBlock.except` needs: a block minus other blocks, as a
//! list of blocks iptables can match one by one.

use std::{fmt, net::Ipv4Addr, str::FromStr};

/// An IPv4 block `address/prefix`, normalised so the host bits are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cidr {
    base: u32,
    prefix: u8,
}

impl Cidr {
    /// The block holding exactly `ip`.
    pub fn host(ip: Ipv4Addr) -> Self {
        Self {
            base: ip.into(),
            prefix: 32,
        }
    }

    fn mask(prefix: u8) -> u32 {
        if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) }
    }

    fn contains_block(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && other.base & Self::mask(self.prefix) == self.base
    }

    fn overlaps(&self, other: &Cidr) -> bool {
        self.contains_block(other) || other.contains_block(self)
    }

    fn halves(&self) -> [Cidr; 2] {
        let prefix = self.prefix + 1;
        let upper = self.base | (1 << (32 - prefix));
        [
            Cidr {
                base: self.base,
                prefix,
            },
            Cidr { base: upper, prefix },
        ]
    }

    /// `self` without the addresses of `excluded`: the smallest set of blocks covering exactly the rest.
    pub fn subtract(&self, excluded: &[Cidr]) -> Vec<Cidr> {
        if excluded.iter().any(|e| e.contains_block(self)) {
            return vec![];
        }
        if !excluded.iter().any(|e| e.overlaps(self)) {
            return vec![*self];
        }
        // An excluded block lies strictly inside `self` (so prefix < 32): split and recurse.
        self.halves()
            .iter()
            .flat_map(|half| half.subtract(excluded))
            .collect()
    }
}

/// Why a string is not an IPv4 CIDR block.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseCidrError(String);

impl fmt::Display for ParseCidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not an IPv4 CIDR block", self.0)
    }
}

impl std::error::Error for ParseCidrError {}

impl FromStr for Cidr {
    type Err = ParseCidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseCidrError(s.to_owned());
        let (addr, prefix) = s.split_once('/').ok_or_else(err)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| err())?;
        let prefix: u8 = prefix.parse().map_err(|_| err())?;
        if prefix > 32 {
            return Err(err());
        }
        Ok(Self {
            base: u32::from(addr) & Self::mask(prefix),
            prefix,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn covered(blocks: &[Cidr], ip: &str) -> bool {
        blocks
            .iter()
            .any(|b| b.contains_block(&Cidr::host(ip.parse().unwrap())))
    }

    #[test]
    fn parses_and_normalises() {
        assert_eq!(cidr("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("10.0.0.0".parse::<Cidr>().is_err());
        assert!("fd00::/8".parse::<Cidr>().is_err());
    }

    #[test]
    fn everything_but_the_private_ranges() {
        let rest =
            cidr("0.0.0.0/0").subtract(&[cidr("10.0.0.0/8"), cidr("192.168.0.0/16"), cidr("169.254.0.0/16")]);
        for inside in ["10.203.0.1", "192.168.1.1", "169.254.169.254", "10.255.255.255"] {
            assert!(!covered(&rest, inside), "{inside} must be excluded");
        }
        for outside in [
            "8.8.8.8",
            "11.0.0.0",
            "9.255.255.255",
            "192.169.0.1",
            "255.255.255.255",
            "0.0.0.0",
        ] {
            assert!(covered(&rest, outside), "{outside} must be kept");
        }
        // No address is matched twice.
        for (i, a) in rest.iter().enumerate() {
            for b in &rest[i + 1..] {
                assert!(!a.overlaps(b), "{a} overlaps {b}");
            }
        }
    }

    #[test]
    fn excluding_a_covering_block_leaves_nothing_and_a_disjoint_one_changes_nothing() {
        assert!(cidr("10.1.0.0/16").subtract(&[cidr("10.0.0.0/8")]).is_empty());
        assert_eq!(
            cidr("10.1.0.0/16").subtract(&[cidr("11.0.0.0/8")]),
            vec![cidr("10.1.0.0/16")]
        );
        assert_eq!(
            cidr("10.0.0.0/30").subtract(&[cidr("10.0.0.1/32")]),
            vec![cidr("10.0.0.0/32"), cidr("10.0.0.2/31")]
        );
    }
}
