#[test]
fn fixture_resolves() {
    let (eng, _wire) = warden_benches::engine();
    assert!((0..eng.peers().len()).all(|r| eng.peer_next_hop(r).is_some()));
}
