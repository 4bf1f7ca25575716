//! 802.1Q tag and the L3 locator: parse, emit, re-parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overlay::vlan::{locate_l3, Repr, VlanTag, TAG_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(l) = locate_l3(data) {
        assert!(l.offset <= data.len());
        assert!(usize::from(l.tags) <= overlay::vlan::MAX_TAGS);
        assert!(!l.ethertype.is_vlan());
    }
    let Ok(t) = VlanTag::new_checked(data) else {
        return;
    };
    let _ = t.payload();
    let Ok(r) = Repr::parse(&t) else { return };
    let mut buf = [0u8; TAG_LEN];
    r.emit(&mut VlanTag::new_unchecked(&mut buf[..]))
        .expect("parsed tag emits");
    let again = Repr::parse(&VlanTag::new_checked(&buf[..]).expect("emitted tag checks"));
    assert_eq!(again, Ok(r));
});
