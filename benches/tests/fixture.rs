#[test]
fn fixture_resolves() {
    let (eng, _wire) = warden_benches::engine();
    assert!(eng.peers().iter().all(|p| p.template.is_some()));
}
