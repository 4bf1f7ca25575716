//! IP protocol numbers shared by IPv4, IPv6 and the flow key.

use core::fmt;

/// An IP protocol / IPv6 next-header number. A newtype over `u8` rather
/// than an enum so that every value round-trips and constants still match.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    pub const HOP_BY_HOP: IpProtocol = IpProtocol(0);
    pub const ICMP: IpProtocol = IpProtocol(1);
    pub const TCP: IpProtocol = IpProtocol(6);
    pub const UDP: IpProtocol = IpProtocol(17);
    pub const IPV6_ROUTE: IpProtocol = IpProtocol(43);
    pub const IPV6_FRAG: IpProtocol = IpProtocol(44);
    pub const ESP: IpProtocol = IpProtocol(50);
    pub const AH: IpProtocol = IpProtocol(51);
    pub const ICMPV6: IpProtocol = IpProtocol(58);
    pub const IPV6_NO_NXT: IpProtocol = IpProtocol(59);
    pub const IPV6_OPTS: IpProtocol = IpProtocol(60);

    /// Whether this number names an IPv6 extension header that
    /// [`crate::ipv6::find_upper_layer`] walks over.
    pub const fn is_ipv6_extension(self) -> bool {
        matches!(self.0, 0 | 43 | 44 | 51 | 60)
    }
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        IpProtocol(v)
    }
}

impl From<IpProtocol> for u8 {
    fn from(v: IpProtocol) -> Self {
        v.0
    }
}

impl fmt::Debug for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            0 => "hop-by-hop",
            1 => "icmp",
            6 => "tcp",
            17 => "udp",
            43 => "ipv6-route",
            44 => "ipv6-frag",
            50 => "esp",
            51 => "ah",
            58 => "icmpv6",
            59 => "ipv6-nonxt",
            60 => "ipv6-opts",
            n => return write!(f, "proto-{n}"),
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_extension_set() {
        assert_eq!(IpProtocol::UDP.to_string(), "udp");
        assert_eq!(IpProtocol(99).to_string(), "proto-99");
        assert!(IpProtocol::AH.is_ipv6_extension());
        assert!(IpProtocol::IPV6_FRAG.is_ipv6_extension());
        assert!(!IpProtocol::TCP.is_ipv6_extension());
        assert!(!IpProtocol::ESP.is_ipv6_extension());
        assert_eq!(u8::from(IpProtocol::from(58)), 58);
    }
}
