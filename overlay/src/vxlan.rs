//! VXLAN headers (RFC 7348) with the Group Based Policy extension
//! (draft-smith-vxlan-group-policy), as Linux writes it with `gbp`.
//!
//! ```text
//!  0                   1                   2                   3
//! |G|R|R|R|I|R|R|R|R|D|R|R|A|R|R|R|      Group Policy ID          |
//! |          VXLAN Network Identifier (VNI)       |   Reserved    |
//! ```

use crate::types::Vni;
use crate::{be16, put16, Error, Result};

mod field {
    use core::ops::Range;
    pub const FLAGS: usize = 0;
    pub const GBP_FLAGS: usize = 1;
    pub const GROUP: Range<usize> = 2..4;
    pub const VNI: Range<usize> = 4..7;
    pub const RESERVED: usize = 7;
}

pub const HEADER_LEN: usize = 8;

/// IANA port for VXLAN.
pub const DEFAULT_PORT: u16 = 4789;

/// Byte 0: G (group policy present) and I (VNI valid).
pub const FLAG_G: u8 = 0x80;
pub const FLAG_I: u8 = 0x08;
/// Byte 1 with G set: D (don't learn) and A (policy applied).
pub const GBP_FLAG_D: u8 = 0x40;
pub const GBP_FLAG_A: u8 = 0x08;

/// The group-policy extension fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Gbp {
    /// D: the receiver must not learn the inner source address.
    pub dont_learn: bool,
    /// A: policy has already been applied to this packet.
    pub policy_applied: bool,
    /// The 16-bit group policy ID of the source.
    pub group: u16,
}

/// A view over the 8-byte VXLAN header and what follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Checks the length only; call [`Packet::check_flags`] for the bits.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The I flag is set and every bit that must be zero is (as Linux,
    /// which drops packets with unknown bits): in byte 0 all but G and I;
    /// with G, all of byte 1 but D and A; without G, bytes 1-3; byte 7.
    #[inline(always)]
    pub fn check_flags(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        let flags = b[field::FLAGS];
        if flags & FLAG_I == 0 || flags & !(FLAG_G | FLAG_I) != 0 || b[field::RESERVED] != 0 {
            return Err(Error::Malformed);
        }
        let ext_ok = if flags & FLAG_G != 0 {
            b[field::GBP_FLAGS] & !(GBP_FLAG_D | GBP_FLAG_A) == 0
        } else {
            b[1] == 0 && b[2] == 0 && b[3] == 0
        };
        if ext_ok {
            Ok(())
        } else {
            Err(Error::Malformed)
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    pub fn i_flag(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    pub fn g_flag(&self) -> bool {
        self.flags() & FLAG_G != 0
    }

    pub fn d_flag(&self) -> bool {
        self.buffer.as_ref()[field::GBP_FLAGS] & GBP_FLAG_D != 0
    }

    pub fn a_flag(&self) -> bool {
        self.buffer.as_ref()[field::GBP_FLAGS] & GBP_FLAG_A != 0
    }

    pub fn group_policy_id(&self) -> u16 {
        be16(self.buffer.as_ref(), field::GROUP.start)
    }

    /// The extension fields when G is set.
    #[inline]
    pub fn gbp(&self) -> Option<Gbp> {
        self.g_flag().then(|| Gbp {
            dont_learn: self.d_flag(),
            policy_applied: self.a_flag(),
            group: self.group_policy_id(),
        })
    }

    #[inline]
    pub fn vni(&self) -> Vni {
        let b = self.buffer.as_ref();
        Vni::new_masked(u32::from_be_bytes([0, b[4], b[5], b[6]]))
    }

    /// The inner Ethernet frame.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Write flags, extension and VNI; reserved byte cleared.
    pub fn set_header(&mut self, vni: Vni, gbp: Option<Gbp>) {
        let b = self.buffer.as_mut();
        match gbp {
            Some(g) => {
                b[field::FLAGS] = FLAG_G | FLAG_I;
                b[field::GBP_FLAGS] = if g.dont_learn { GBP_FLAG_D } else { 0 }
                    | if g.policy_applied { GBP_FLAG_A } else { 0 };
                put16(b, field::GROUP.start, g.group);
            }
            None => {
                b[field::FLAGS] = FLAG_I;
                b[1..4].fill(0);
            }
        }
        let v = vni.get().to_be_bytes();
        b[field::VNI].copy_from_slice(&v[1..]);
        b[field::RESERVED] = 0;
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// A VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub vni: Vni,
    pub gbp: Option<Gbp>,
}

impl Repr {
    /// Parse; flags that break [`Packet::check_flags`] are `Malformed`.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        p.check_flags()?;
        Ok(Repr {
            vni: p.vni(),
            gbp: p.gbp(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        p.check_len()?;
        p.set_header(self.vni, self.gbp);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    static PLAIN: [u8; 10] = [0x08, 0, 0, 0, 0x00, 0x01, 0x2c, 0x00, 0xaa, 0xbb];
    static GBP: [u8; 8] = [0x88, 0x48, 0x12, 0x34, 0xff, 0xff, 0xff, 0x00];

    fn vni(v: u32) -> Vni {
        Vni::new(v).unwrap()
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&PLAIN[..]).unwrap();
        assert!(p.i_flag() && !p.g_flag());
        assert_eq!(p.vni(), vni(300));
        assert_eq!(p.gbp(), None);
        assert_eq!(p.payload(), &[0xaa, 0xbb]);
        assert_eq!(p.check_flags(), Ok(()));
        let p = Packet::new_checked(&GBP[..]).unwrap();
        assert!(p.g_flag() && p.d_flag() && p.a_flag());
        assert_eq!(p.group_policy_id(), 0x1234);
        assert_eq!(p.vni(), vni(Vni::MAX));
        assert_eq!(p.check_flags(), Ok(()));
    }

    #[test]
    fn parse_emit() {
        let r = Repr::parse(&Packet::new_checked(&PLAIN[..]).unwrap()).unwrap();
        assert_eq!(
            r,
            Repr {
                vni: vni(300),
                gbp: None
            }
        );
        let mut b = [0xffu8; 8];
        r.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        assert_eq!(b, PLAIN[..8]);
        let g = Repr::parse(&Packet::new_checked(&GBP[..]).unwrap()).unwrap();
        assert_eq!(
            g.gbp,
            Some(Gbp {
                dont_learn: true,
                policy_applied: true,
                group: 0x1234
            })
        );
        g.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        assert_eq!(b, GBP);
    }

    #[test]
    fn flag_rules_and_lengths() {
        assert_eq!(
            Packet::new_checked(&PLAIN[..7]).unwrap_err(),
            Error::Truncated
        );
        let bad = |mutate: fn(&mut [u8; 8])| {
            let mut b: [u8; 8] = PLAIN[..8].try_into().unwrap();
            mutate(&mut b);
            Repr::parse(&Packet::new_checked(&b[..]).unwrap())
        };
        assert_eq!(bad(|b| b[0] = 0x00), Err(Error::Malformed), "I clear");
        assert_eq!(bad(|b| b[0] = 0x0c), Err(Error::Malformed), "reserved flag");
        assert_eq!(
            bad(|b| b[2] = 1),
            Err(Error::Malformed),
            "reserved without G"
        );
        assert_eq!(bad(|b| b[7] = 1), Err(Error::Malformed), "reserved byte 7");
        assert_eq!(
            bad(|b| {
                b[0] = 0x88;
                b[1] = 0x01
            }),
            Err(Error::Malformed),
            "GBP reserved"
        );
        assert!(bad(|b| {
            b[0] = 0x88;
            b[1] = 0x40;
            b[2] = 9
        })
        .is_ok());
        let mut short = [0u8; 7];
        let r = Repr {
            vni: vni(1),
            gbp: None,
        };
        assert_eq!(
            r.emit(&mut Packet::new_unchecked(&mut short[..])),
            Err(Error::Truncated)
        );
    }

    proptest! {
        #[test]
        fn roundtrip(v in 0u32..=Vni::MAX, g in proptest::option::of((any::<bool>(), any::<bool>(), any::<u16>()))) {
            let r = Repr { vni: vni(v), gbp: g.map(|(d, a, group)| Gbp { dont_learn: d, policy_applied: a, group }) };
            let mut b = [0u8; 8];
            r.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
            prop_assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap(), r);
        }
    }
}
