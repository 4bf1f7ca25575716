//! Keys: the secret each pair of wardens shares, epochs, the directional
//! per-epoch tag keys derived from the secret, and where the packet path
//! looks them up.
//!
//! Key hygiene follows Firecracker's MMDS token code: secrets and keys have
//! hand-written `Debug` impls that print no key bytes, the secret's length
//! is capped before it reaches the crypto, secret bytes are overwritten
//! when dropped, and every tag key counts its uses.
//!
//! Derivation (docs/identity.md): for packets from warden S to warden R in
//! epoch E, `HKDF-SHA256(salt = "warden-identity-keys-v1", ikm = secret)`
//! expanded with `info = "tag" || S || R || E` (u32 BE each) to 32 bytes,
//! used as an HMAC-SHA256 key. Keys are derived by [`StaticKeys::rotate`]
//! in housekeeping; lookups on the packet path only search a short array.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ring::{hkdf, hmac};

use crate::attest::WardenId;

/// Length of the truncated tag carried in the header.
pub const TAG_LEN: usize = 12;

/// Errors of loading secrets and building key sets (setup path).
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum KeyError {
    /// secret file {path:?} does not exist
    Missing { path: PathBuf },
    /// cannot read secret file {path:?}: {source}
    Unreadable { path: PathBuf, source: io::Error },
    /// secret file {path:?} holds {len} bytes, at least 32 are required
    TooShortFile { path: PathBuf, len: usize },
    /// secret file {path:?} is larger than {max} bytes
    TooLongFile { path: PathBuf, max: usize },
    /// secret holds {len} bytes, at least 32 are required
    TooShort { len: usize },
    /// secret holds {len} bytes, at most {max} are allowed
    TooLong { len: usize, max: usize },
    /// peer {peer} is listed twice
    DuplicatePeer { peer: WardenId },
}

/// A secret shared by a pair of wardens.
///
/// Owns its bytes; `Debug` prints only the length; the bytes are
/// overwritten with zeros when the secret is dropped. Share it between
/// key sets with `Arc<Secret>` rather than cloning the bytes.
pub struct Secret {
    bytes: Box<[u8]>,
}

impl Secret {
    /// Fewer bytes than this cannot carry 256 bits of entropy.
    pub const MIN_LEN: usize = 32;
    /// The cap checked before any crypto sees the bytes (and before a
    /// misnamed file, such as a disk image, is read whole).
    pub const MAX_LEN: usize = 4096;

    /// Take ownership of `bytes`, which must hold 32 to 4096 bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Secret, KeyError> {
        let len = bytes.len();
        let s = Secret {
            bytes: bytes.into_boxed_slice(),
        };
        if len < Self::MIN_LEN {
            return Err(KeyError::TooShort { len });
        }
        if len > Self::MAX_LEN {
            return Err(KeyError::TooLong {
                len,
                max: Self::MAX_LEN,
            });
        }
        Ok(s)
    }

    /// Read a secret file. Its bytes are the secret exactly as stored (a
    /// trailing newline is part of it), so both wardens must be given the
    /// same file contents.
    pub fn from_file(path: &Path) -> Result<Secret, KeyError> {
        let f = File::open(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => KeyError::Missing {
                path: path.to_path_buf(),
            },
            _ => KeyError::Unreadable {
                path: path.to_path_buf(),
                source,
            },
        })?;
        let mut bytes = Vec::with_capacity(Self::MAX_LEN + 1);
        // Read one byte past the cap to tell "exactly MAX_LEN" from "more".
        let cap = u64::try_from(Self::MAX_LEN + 1).unwrap_or(u64::MAX);
        let read = f.take(cap).read_to_end(&mut bytes);
        // From here on `s` owns the bytes, so they are wiped on every path.
        let s = Secret {
            bytes: bytes.into_boxed_slice(),
        };
        read.map_err(|source| KeyError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        let len = s.len();
        if len < Self::MIN_LEN {
            return Err(KeyError::TooShortFile {
                path: path.to_path_buf(),
                len,
            });
        }
        if len > Self::MAX_LEN {
            return Err(KeyError::TooLongFile {
                path: path.to_path_buf(),
                max: Self::MAX_LEN,
            });
        }
        Ok(s)
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Never true for a secret that `new` or `from_file` accepted.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn expose(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.bytes.len())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.bytes.fill(0);
        // Keep the stores: the buffer is freed right after, and without an
        // observer the optimizer may drop writes to memory about to die.
        std::hint::black_box(&self.bytes);
    }
}

/// Epoch arithmetic: `E = floor(unix / epoch_secs)`; a receiver accepts the
/// current epoch, and the previous one during the first `grace_secs` of the
/// current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EpochClock {
    pub epoch_secs: u32,
    pub grace_secs: u32,
}

impl Default for EpochClock {
    fn default() -> EpochClock {
        EpochClock {
            epoch_secs: 3600,
            grace_secs: 300,
        }
    }
}

impl EpochClock {
    fn period(&self) -> u64 {
        u64::from(self.epoch_secs.max(1))
    }

    /// The epoch at `unix_secs` (an `epoch_secs` of 0 counts as 1).
    pub fn epoch_at(&self, unix_secs: u64) -> u32 {
        u32::try_from(unix_secs / self.period()).unwrap_or(u32::MAX)
    }

    /// Whether a receiver accepts a tag of `epoch` at `now`.
    pub fn accepts(&self, epoch: u32, now: u64) -> bool {
        let cur = self.epoch_at(now);
        if epoch == cur {
            return true;
        }
        let into_current = now.saturating_sub(u64::from(cur) * self.period());
        epoch.checked_add(1) == Some(cur) && into_current < u64::from(self.grace_secs)
    }

    /// The full epoch a receiver accepts at `now` whose low 8 bits are
    /// `low8`, if any (the header carries only those bits).
    pub fn resolve(&self, low8: u8, now: u64) -> Option<u32> {
        let cur = self.epoch_at(now);
        if cur as u8 == low8 {
            return Some(cur);
        }
        let prev = cur.checked_sub(1)?;
        (prev as u8 == low8 && self.accepts(prev, now)).then_some(prev)
    }
}

/// The crypto boundary of the header (after quinn's `HmacKey`): the full
/// HMAC over a message given in parts. The header code truncates and
/// compares; a different backend (or a test fake) implements this alone.
pub trait TagMac {
    /// HMAC-SHA256 over the concatenation of `parts`.
    fn mac(&self, parts: &[&[u8]]) -> [u8; 32];
}

/// An HMAC-SHA256 key for one direction of one pair of wardens in one
/// epoch. `Debug` shows whose key it is and how often it was used, never
/// the key.
pub struct TagKey {
    key: hmac::Key,
    sender: WardenId,
    receiver: WardenId,
    epoch: u32,
    uses: AtomicU64,
}

impl TagKey {
    pub fn sender(&self) -> WardenId {
        self.sender
    }

    pub fn receiver(&self) -> WardenId {
        self.receiver
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// How many tags this key computed (mints and verifies).
    pub fn uses(&self) -> u64 {
        self.uses.load(Ordering::Relaxed)
    }
}

impl TagMac for TagKey {
    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        self.uses.fetch_add(1, Ordering::Relaxed);
        let mut ctx = hmac::Context::with_key(&self.key);
        for p in parts {
            ctx.update(p);
        }
        let mut out = [0u8; 32];
        let tag = ctx.sign();
        // HMAC-SHA256 tags are 32 bytes; zip copies what both sides hold.
        for (o, t) in out.iter_mut().zip(tag.as_ref()) {
            *o = *t;
        }
        out
    }
}

impl fmt::Debug for TagKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TagKey")
            .field("sender", &self.sender)
            .field("receiver", &self.receiver)
            .field("epoch", &self.epoch)
            .field("uses", &self.uses())
            .finish_non_exhaustive()
    }
}

/// HKDF salt of the key derivation (docs/identity.md).
const KDF_SALT: &[u8] = b"warden-identity-keys-v1";

/// The tag key for packets from `sender` to `receiver` in `epoch`.
pub fn derive_key(secret: &Secret, sender: WardenId, receiver: WardenId, epoch: u32) -> TagKey {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, KDF_SALT).extract(secret.expose());
    let (s, r, e) = (
        sender.0.to_be_bytes(),
        receiver.0.to_be_bytes(),
        epoch.to_be_bytes(),
    );
    let info: [&[u8]; 4] = [b"tag", &s, &r, &e];
    // HKDF-SHA256 can expand to 255 * 32 bytes; 32 is always within it, so
    // this error cannot happen for any input.
    let okm = prk
        .expand(&info, hmac::HMAC_SHA256)
        .expect("32 bytes is within HKDF-SHA256's output limit");
    TagKey {
        key: hmac::Key::from(okm),
        sender,
        receiver,
        epoch,
        uses: AtomicU64::new(0),
    }
}

/// Where the packet path gets tag keys. A control channel between wardens
/// can implement it later; [`StaticKeys`] serves secrets from the config.
/// Lookups never derive and never allocate.
pub trait KeySource {
    /// The key to stamp packets toward warden `to` in `epoch`.
    fn sending_key(&self, to: WardenId, epoch: u32) -> Option<&TagKey>;

    /// The key to verify a header from warden `from` carrying epoch bits
    /// `epoch_low8`, received at `now_unix`, with the full epoch it stands
    /// for; `None` when no accepted epoch matches or no key is ready.
    fn receiving_key(
        &self,
        from: WardenId,
        epoch_low8: u8,
        now_unix: u64,
    ) -> Option<(&TagKey, u32)>;
}

/// The keys of one epoch with one peer, both directions.
#[derive(Debug)]
struct EpochKeys {
    send: TagKey,
    recv: TagKey,
}

impl EpochKeys {
    fn epoch(&self) -> u32 {
        self.send.epoch
    }
}

/// Keys with one peer for the previous, current and next epochs (the next
/// one so that stamping works from the first second of an epoch even when
/// housekeeping runs a little late).
#[derive(Debug)]
struct Peer {
    id: WardenId,
    secret: Arc<Secret>,
    slots: [Option<EpochKeys>; 3],
}

impl Peer {
    fn slot(&self, epoch: u32) -> Option<&EpochKeys> {
        self.slots.iter().flatten().find(|k| k.epoch() == epoch)
    }
}

/// Keys derived from secrets given per peer in the config.
///
/// Build with [`StaticKeys::new`], then call [`StaticKeys::rotate`] with
/// the current time before the first lookup and from housekeeping (once a
/// second is plenty: it only derives when the epoch changed).
#[derive(Debug)]
pub struct StaticKeys {
    me: WardenId,
    clock: EpochClock,
    /// Sorted by peer id for a binary search.
    peers: Vec<Peer>,
}

impl StaticKeys {
    /// Key sets for warden `me` with each listed peer. No keys exist until
    /// the first [`rotate`](StaticKeys::rotate).
    pub fn new(
        me: WardenId,
        clock: EpochClock,
        peers: Vec<(WardenId, Arc<Secret>)>,
    ) -> Result<StaticKeys, KeyError> {
        let mut peers: Vec<Peer> = peers
            .into_iter()
            .map(|(id, secret)| Peer {
                id,
                secret,
                slots: [None, None, None],
            })
            .collect();
        peers.sort_by_key(|p| p.id);
        if let Some(w) = peers.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(KeyError::DuplicatePeer { peer: w[0].id });
        }
        Ok(StaticKeys { me, clock, peers })
    }

    pub fn me(&self) -> WardenId {
        self.me
    }

    pub fn clock(&self) -> EpochClock {
        self.clock
    }

    /// Make sure the keys of the epochs around `now_unix` exist: previous,
    /// current and next. Keys already derived are kept (with their usage
    /// counters); older ones are dropped. Returns how many key pairs were
    /// derived (0 when the epoch did not change).
    pub fn rotate(&mut self, now_unix: u64) -> usize {
        let cur = self.clock.epoch_at(now_unix);
        let wanted = [cur.checked_sub(1), Some(cur), cur.checked_add(1)];
        let mut derived = 0;
        for p in &mut self.peers {
            let mut old = std::mem::take(&mut p.slots);
            for (slot, epoch) in p.slots.iter_mut().zip(wanted) {
                let Some(epoch) = epoch else { continue };
                let kept = old
                    .iter_mut()
                    .find(|k| k.as_ref().is_some_and(|k| k.epoch() == epoch))
                    .and_then(Option::take);
                *slot = Some(kept.unwrap_or_else(|| {
                    derived += 1;
                    EpochKeys {
                        send: derive_key(&p.secret, self.me, p.id, epoch),
                        recv: derive_key(&p.secret, p.id, self.me, epoch),
                    }
                }));
            }
        }
        derived
    }

    fn peer(&self, id: WardenId) -> Option<&Peer> {
        let i = self.peers.binary_search_by_key(&id, |p| p.id).ok()?;
        self.peers.get(i)
    }
}

impl KeySource for StaticKeys {
    fn sending_key(&self, to: WardenId, epoch: u32) -> Option<&TagKey> {
        self.peer(to)?.slot(epoch).map(|k| &k.send)
    }

    fn receiving_key(
        &self,
        from: WardenId,
        epoch_low8: u8,
        now_unix: u64,
    ) -> Option<(&TagKey, u32)> {
        let epoch = self.clock.resolve(epoch_low8, now_unix)?;
        let k = self.peer(from)?.slot(epoch)?;
        Some((&k.recv, epoch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn secret(b: u8) -> Arc<Secret> {
        Arc::new(Secret::new(vec![b; 32]).unwrap())
    }

    fn tag(k: &TagKey, msg: &[u8]) -> [u8; 32] {
        k.mac(&[msg])
    }

    /// RFC 5869 by hand with HMAC only: PRK = HMAC(salt, ikm), and for 32
    /// bytes of output OKM = T(1) = HMAC(PRK, info || 0x01).
    fn hkdf_by_hand(ikm: &[u8], info: &[u8]) -> [u8; 32] {
        let prk = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, KDF_SALT), ikm);
        let mut m = info.to_vec();
        m.push(1);
        let t1 = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref()), &m);
        let mut out = [0u8; 32];
        out.copy_from_slice(t1.as_ref());
        out
    }

    #[test]
    fn derivation_is_the_documented_hkdf() {
        let s = Secret::new((0..40).collect()).unwrap();
        let k = derive_key(&s, WardenId(0x0102_0304), WardenId(0x0a0b_0c0d), 477_000);
        let mut info = b"tag".to_vec();
        info.extend_from_slice(&[1, 2, 3, 4, 10, 11, 12, 13]);
        info.extend_from_slice(&477_000u32.to_be_bytes());
        let okm = hkdf_by_hand(s.expose(), &info);
        let want = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &okm), b"hello");
        assert_eq!(&tag(&k, b"hello")[..], want.as_ref());
        assert_eq!(k.mac(&[b"hel", b"", b"lo"]), tag(&k, b"hello"));
        assert_eq!(k.uses(), 3);
    }

    #[test]
    fn keys_differ_by_direction_pair_epoch_and_secret() {
        let s = secret(1);
        let (a, b, c) = (WardenId(1), WardenId(2), WardenId(3));
        let base = tag(&derive_key(&s, a, b, 7), b"m");
        assert_ne!(base, tag(&derive_key(&s, b, a, 7), b"m"), "direction");
        assert_ne!(base, tag(&derive_key(&s, a, c, 7), b"m"), "pair");
        assert_ne!(base, tag(&derive_key(&s, a, b, 8), b"m"), "epoch");
        assert_ne!(base, tag(&derive_key(&secret(2), a, b, 7), b"m"), "secret");
        assert_eq!(base, tag(&derive_key(&s, a, b, 7), b"m"));
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let s = Secret::new(vec![0x5a; 33]).unwrap();
        assert_eq!(format!("{s:?}"), "Secret(33 bytes)");
        let k = derive_key(&s, WardenId(1), WardenId(2), 3);
        let d = format!("{k:?}");
        assert!(d.starts_with("TagKey { sender: WardenId(00000001)"), "{d}");
        assert!(!d.contains("5a") && !d.contains("key:"), "{d}");
        let keys = StaticKeys::new(
            WardenId(1),
            EpochClock::default(),
            vec![(WardenId(2), s.into())],
        );
        assert!(!format!("{keys:?}").contains("5a5a"));
    }

    #[test]
    fn secret_length_limits() {
        assert!(matches!(
            Secret::new(vec![1; 31]),
            Err(KeyError::TooShort { len: 31 })
        ));
        assert!(Secret::new(vec![1; 32]).is_ok());
        assert!(Secret::new(vec![1; Secret::MAX_LEN]).is_ok());
        assert!(matches!(
            Secret::new(vec![1; Secret::MAX_LEN + 1]),
            Err(KeyError::TooLong { .. })
        ));
    }

    #[test]
    fn secret_files_and_their_errors() {
        let dir = std::env::temp_dir().join(format!("warden-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, len: usize| {
            let p = dir.join(name);
            File::create(&p)
                .unwrap()
                .write_all(&vec![7u8; len])
                .unwrap();
            p
        };
        let ok = write("ok", 64);
        assert_eq!(Secret::from_file(&ok).unwrap().len(), 64);
        let short = write("short", 31);
        let e = Secret::from_file(&short).unwrap_err();
        assert!(matches!(e, KeyError::TooShortFile { len: 31, .. }));
        assert!(e.to_string().contains("holds 31 bytes, at least 32"), "{e}");
        let long = write("long", Secret::MAX_LEN + 100);
        assert!(matches!(
            Secret::from_file(&long),
            Err(KeyError::TooLongFile { .. })
        ));
        let e = Secret::from_file(&dir.join("nope")).unwrap_err();
        assert!(matches!(e, KeyError::Missing { .. }));
        assert!(e.to_string().contains("does not exist"), "{e}");
        // A directory opens but cannot be read.
        let e = Secret::from_file(&dir).unwrap_err();
        assert!(matches!(e, KeyError::Unreadable { .. }), "{e:?}");
        assert!(e.to_string().starts_with("cannot read secret file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn epochs_and_grace() {
        let c = EpochClock {
            epoch_secs: 100,
            grace_secs: 10,
        };
        assert_eq!(c.epoch_at(0), 0);
        assert_eq!(c.epoch_at(99), 0);
        assert_eq!(c.epoch_at(100), 1);
        assert!(c.accepts(5, 550));
        assert!(c.accepts(4, 500), "previous, first second of the grace");
        assert!(c.accepts(4, 509));
        assert!(!c.accepts(4, 510), "grace over");
        assert!(!c.accepts(3, 500), "two epochs back");
        assert!(!c.accepts(6, 599), "next epoch not accepted early");
        assert!(!c.accepts(u32::MAX, 0));
        assert_eq!(c.resolve(5, 550), Some(5));
        assert_eq!(c.resolve(4, 505), Some(4));
        assert_eq!(c.resolve(4, 515), None);
        assert_eq!(c.resolve(0, 25_605), Some(256), "low 8 bits wrap");
        assert_eq!(c.resolve(255, 25_601), Some(255));
        assert_eq!(c.resolve(255, 0), None, "no epoch before 0");
        let zero = EpochClock {
            epoch_secs: 0,
            grace_secs: 0,
        };
        assert_eq!(zero.epoch_at(7), 7);
        assert_eq!(zero.epoch_at(u64::MAX), u32::MAX);
        assert!(!zero.accepts(6, 7));
    }

    #[test]
    fn static_keys_pair_up_across_wardens() {
        let clock = EpochClock {
            epoch_secs: 100,
            grace_secs: 10,
        };
        let (a, b, c) = (WardenId(10), WardenId(20), WardenId(30));
        let sab = secret(1);
        let mut ka = StaticKeys::new(a, clock, vec![(b, sab.clone()), (c, secret(2))]).unwrap();
        let mut kb = StaticKeys::new(b, clock, vec![(a, sab)]).unwrap();
        assert!(ka.sending_key(b, 5).is_none(), "nothing before rotate");
        assert_eq!(ka.rotate(550), 6, "3 epochs x 2 peers");
        assert_eq!(kb.rotate(550), 3);
        assert_eq!(ka.rotate(599), 0, "same epoch: nothing derived");

        let send = ka.sending_key(b, 5).unwrap();
        let (recv, e) = kb.receiving_key(a, 5, 550).unwrap();
        assert_eq!(e, 5);
        assert_eq!(tag(send, b"x"), tag(recv, b"x"));
        let (back, _) = ka.receiving_key(b, 5, 550).unwrap();
        assert_ne!(tag(send, b"x"), tag(back, b"x"), "directional");
        assert!(kb.receiving_key(c, 5, 550).is_none(), "unknown peer");
        assert!(kb.receiving_key(a, 3, 550).is_none(), "too old");
        assert!(
            kb.receiving_key(a, 4, 550).is_none(),
            "previous, grace over"
        );
        assert!(ka.sending_key(b, 6).is_some(), "next epoch ready early");

        // Cross into epoch 6 late: the keys of 5 and 6 are kept, 7 derived.
        let uses = send.uses();
        assert_eq!(ka.rotate(605), 2);
        assert_eq!(ka.sending_key(b, 5).unwrap().uses(), uses, "kept");
        assert_eq!(kb.rotate(605), 1);
        let (old, e) = kb.receiving_key(a, 5, 605).unwrap();
        assert_eq!(e, 5);
        assert_eq!(tag(ka.sending_key(b, 5).unwrap(), b"y"), tag(old, b"y"));
        assert!(kb.receiving_key(a, 5, 611).is_none(), "grace over");
        assert!(ka.sending_key(b, 4).is_none(), "dropped");
    }

    #[test]
    fn duplicate_peers_are_refused() {
        let e = StaticKeys::new(
            WardenId(1),
            EpochClock::default(),
            vec![(WardenId(2), secret(1)), (WardenId(2), secret(2))],
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "peer 00000002 is listed twice");
    }
}
