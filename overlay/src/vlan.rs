//! IEEE 802.1Q / 802.1ad VLAN tags, and a walker that finds the L3 header
//! behind up to two of them.

use crate::ethernet::{self, EtherType};
use crate::{be16, put16, Error, Result};

mod field {
    use core::ops::Range;
    pub const TCI: Range<usize> = 0..2;
    pub const ETHERTYPE: Range<usize> = 2..4;
}

/// Length of one tag as it follows the outer EtherType: TCI + EtherType.
pub const TAG_LEN: usize = 4;

/// Most tags [`locate_l3`] walks through (QinQ).
pub const MAX_TAGS: usize = 2;

/// A view over the 4 bytes that follow a 0x8100/0x88a8 EtherType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    pub const fn new_unchecked(buffer: T) -> VlanTag<T> {
        VlanTag { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<VlanTag<T>> {
        let t = VlanTag::new_unchecked(buffer);
        t.check_len()?;
        Ok(t)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < TAG_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn tci(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TCI.start)
    }

    /// Priority code point (3 bits).
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// VLAN identifier (12 bits).
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// The EtherType of what follows the tag.
    pub fn ethertype(&self) -> EtherType {
        EtherType(be16(self.buffer.as_ref(), field::ETHERTYPE.start))
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[TAG_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    /// Set PCP (low 3 bits used), DEI and VID (low 12 bits used).
    pub fn set_tci(&mut self, pcp: u8, dei: bool, vid: u16) {
        let tci = (u16::from(pcp & 7) << 13) | (u16::from(dei) << 12) | (vid & 0x0fff);
        put16(self.buffer.as_mut(), field::TCI.start, tci);
    }

    pub fn set_ethertype(&mut self, t: EtherType) {
        put16(self.buffer.as_mut(), field::ETHERTYPE.start, t.0);
    }
}

/// A parsed tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub pcp: u8,
    pub dei: bool,
    pub vid: u16,
    /// EtherType of the payload after the tag.
    pub ethertype: EtherType,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(tag: &VlanTag<T>) -> Result<Repr> {
        tag.check_len()?;
        Ok(Repr {
            pcp: tag.pcp(),
            dei: tag.dei(),
            vid: tag.vid(),
            ethertype: tag.ethertype(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        TAG_LEN
    }

    /// Write the tag. `pcp` above 7 or `vid` above 4095 is `Malformed`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, tag: &mut VlanTag<T>) -> Result<()> {
        if self.pcp > 7 || self.vid > 0x0fff {
            return Err(Error::Malformed);
        }
        tag.check_len()?;
        tag.set_tci(self.pcp, self.dei, self.vid);
        tag.set_ethertype(self.ethertype);
        Ok(())
    }
}

/// Where the L3 header of an Ethernet frame starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct L3Location {
    /// Offset of the L3 header from the start of the frame.
    pub offset: usize,
    /// The EtherType of the L3 payload (after all tags).
    pub ethertype: EtherType,
    /// How many tags were skipped (0..=2).
    pub tags: u8,
    /// VID of the outermost tag, if any.
    pub outer_vid: Option<u16>,
    /// VID of the innermost tag, if any (equals `outer_vid` with one tag).
    pub inner_vid: Option<u16>,
}

/// Walk the Ethernet header and up to [`MAX_TAGS`] VLAN tags. A third tag
/// is `Unsupported`; a frame cut inside a tag is `Truncated`.
pub fn locate_l3(frame: &[u8]) -> Result<L3Location> {
    let eth = ethernet::Frame::new_checked(frame)?;
    let mut loc = L3Location {
        offset: ethernet::HEADER_LEN,
        ethertype: eth.ethertype(),
        tags: 0,
        outer_vid: None,
        inner_vid: None,
    };
    while loc.ethertype.is_vlan() {
        if usize::from(loc.tags) == MAX_TAGS {
            return Err(Error::Unsupported);
        }
        let rest = frame.get(loc.offset..).ok_or(Error::Truncated)?;
        let tag = VlanTag::new_checked(rest)?;
        let vid = tag.vid();
        if loc.outer_vid.is_none() {
            loc.outer_vid = Some(vid);
        }
        loc.inner_vid = Some(vid);
        loc.ethertype = tag.ethertype();
        loc.offset += TAG_LEN;
        loc.tags += 1;
    }
    Ok(loc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    static TAG: [u8; 6] = [0xa0, 0x64, 0x08, 0x00, 0x45, 0x00];

    #[test]
    fn deconstruct() {
        let t = VlanTag::new_checked(&TAG[..]).unwrap();
        assert_eq!(t.pcp(), 5);
        assert!(!t.dei());
        assert_eq!(t.vid(), 100);
        assert_eq!(t.ethertype(), EtherType::IPV4);
        assert_eq!(t.payload(), &[0x45, 0x00]);
    }

    #[test]
    fn construct_and_emit() {
        let mut b = [0u8; 4];
        let mut t = VlanTag::new_unchecked(&mut b[..]);
        t.set_tci(5, false, 100);
        t.set_ethertype(EtherType::IPV4);
        assert_eq!(b, TAG[..4]);
        let r = Repr::parse(&VlanTag::new_checked(&TAG[..]).unwrap()).unwrap();
        let mut c = [0u8; 4];
        r.emit(&mut VlanTag::new_unchecked(&mut c[..])).unwrap();
        assert_eq!(c, b);
        let bad = Repr { vid: 4096, ..r };
        assert_eq!(
            bad.emit(&mut VlanTag::new_unchecked(&mut c[..])),
            Err(Error::Malformed)
        );
        assert_eq!(
            VlanTag::new_checked(&TAG[..3]).unwrap_err(),
            Error::Truncated
        );
    }

    fn frame(tags: &[(u16, u16)], inner: u16) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        for &(tpid, vid) in tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&vid.to_be_bytes());
        }
        f.extend_from_slice(&inner.to_be_bytes());
        f.extend_from_slice(&[0x45, 0, 0, 20]);
        f
    }

    #[test]
    fn locate_through_tags() {
        let l = locate_l3(&frame(&[], 0x0800)).unwrap();
        assert_eq!(
            (l.offset, l.ethertype, l.tags, l.outer_vid),
            (14, EtherType::IPV4, 0, None)
        );
        let l = locate_l3(&frame(&[(0x8100, 7)], 0x86dd)).unwrap();
        assert_eq!(
            (l.offset, l.ethertype, l.tags, l.outer_vid),
            (18, EtherType::IPV6, 1, Some(7))
        );
        let l = locate_l3(&frame(&[(0x88a8, 7), (0x8100, 0x2009)], 0x0806)).unwrap();
        assert_eq!(
            (l.offset, l.tags, l.outer_vid, l.inner_vid),
            (22, 2, Some(7), Some(9))
        );
        assert_eq!(l.ethertype, EtherType::ARP);
        assert_eq!(
            locate_l3(&frame(&[(0x88a8, 1), (0x8100, 2), (0x8100, 3)], 0x0800)),
            Err(Error::Unsupported)
        );
        // Cut inside the tag.
        let f = frame(&[(0x8100, 7)], 0x0800);
        assert_eq!(locate_l3(&f[..16]), Err(Error::Truncated));
        assert_eq!(locate_l3(&f[..13]), Err(Error::Truncated));
        // Exactly the tag and no payload is fine: the L3 view will judge it.
        assert_eq!(locate_l3(&f[..18]).unwrap().offset, 18);
    }

    proptest! {
        #[test]
        fn roundtrip(pcp in 0u8..8, dei in any::<bool>(), vid in 0u16..4096, et in any::<u16>()) {
            let r = Repr { pcp, dei, vid, ethertype: EtherType(et) };
            let mut b = [0u8; 4];
            r.emit(&mut VlanTag::new_unchecked(&mut b[..])).unwrap();
            prop_assert_eq!(Repr::parse(&VlanTag::new_checked(&b[..]).unwrap()).unwrap(), r);
        }
    }
}
