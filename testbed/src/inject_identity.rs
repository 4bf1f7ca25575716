//! Forged and otherwise invalid identity headers, for adversarial lab tests
//! of the receiving warden's identity checks (docs/identity.md).
//!
//! The attacker is a rogue host on the underlay that spoofs a warden peer's
//! VTEP address (a warden accepts VXLAN from a peer by source address
//! alone). Each [`Forgery`] is a VXLAN frame "from" that peer to the
//! receiving warden, carrying a flow-opening packet from a workload behind
//! the sending warden to one behind the receiver, with one defect in its
//! identity header that the receiver must catch under its own drop reason.
//! [`Forgery::Valid`] and [`Forgery::ValidUdp`] have no defect: they show
//! that a watcher at the destination does see what gets through.
//!
//! Frames are built as warden itself builds them: the inner packet with the
//! overlay Reprs, the header minted with the identity crate (over the
//! run's real pair secret unless the defect says otherwise) and inserted
//! with `identity::stamp`, the outer headers from an [`OuterTemplate`].
//!
//! Also here: reading what a capture saw ([`inspect_inner`],
//! [`inspect_vxlan`], [`pcap_frames`]), so a test can take a real stamped
//! SYN off the wire and replay it, and prove from a tcpdump file at the
//! destination that a forged packet never arrived.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use config::{Lab, PeerKind, WardenConfig};
use dataplane::counters::DropReason;
use identity::header::{self, Repr, TagInput};
use identity::keys::{derive_key, EpochClock, KeyError, Secret};
use identity::stamp::{self, StampError, IPV4_GROWTH};
use identity::{warden_id_of, IdentityId, WardenId, TAG_LEN};
use overlay::tcp::Flags;
use overlay::{
    ethernet, ipv4, tcp, udp, EtherType, FlowKey, IpProtocol, MacAddr, OuterParams, OuterTemplate,
    PseudoHeader, Vni, OUTER_LEN,
};

use crate::inject::Station;
use crate::tcp::PatternStream;

/// How far in the past [`Forgery::Stale`] headers are minted.
pub const STALE_BY_SECS: u32 = 120;
/// Inner source ports: frame `seq` of a case comes from `SRC_PORT_BASE +
/// seq % SRC_PORTS`, so every frame opens a flow of its own.
pub const SRC_PORT_BASE: u16 = 40_000;
const SRC_PORTS: u32 = 20_000;
/// [`Forgery::FlippedTuple`] is minted for the destination port with this
/// mask XORed in (one byte flipped), then sent to the real one.
pub const FLIP_MASK: u16 = 0x0100;
/// Starts the payload of the UDP datagrams and of the mid-flow segment.
pub const MARKER: [u8; 16] = *b"warden-forged-id";
/// Payload length of the datagrams and of the mid-flow segment.
const PAYLOAD_LEN: usize = 32;
/// MSS option of the inner SYNs (1400), as a kernel would send it.
const SYN_OPTIONS: [u8; 4] = [2, 4, 0x05, 0x78];
const SYN_WINDOW: u16 = 64_240;
/// Seed of the forged tags and of the "other pair" secret.
const FORGE_SEED: u64 = 0x1d_f0_4e_ed;

/// One kind of identity header forgery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Forgery {
    /// A correctly stamped SYN: must be delivered.
    Valid,
    /// A correctly stamped UDP datagram: must be delivered.
    ValidUdp,
    /// Random tag bytes on a SYN.
    ForgedTag,
    /// Random tag bytes on a UDP datagram.
    ForgedTagUdp,
    /// A tag from a key derived (HKDF, same warden ids and epoch) over a
    /// different secret: the key of another pair.
    OtherPairKey,
    /// A tag valid for an epoch two before the current one, whose key the
    /// receiver never holds (it keeps the current and, for the grace time,
    /// the previous).
    ExpiredEpoch,
    /// A valid tag over a timestamp [`STALE_BY_SECS`] old.
    Stale,
    /// A valid tag over an identity the sending peer may not assert.
    NotAuthorized,
    /// A mid-flow segment (PSH+ACK with data, no SYN) of a flow the receiver
    /// does not know, with no header: as if the header had been stripped.
    Stripped,
    /// A valid tag over a destination port with one byte flipped
    /// ([`FLIP_MASK`]) before sending.
    FlippedTuple,
}

impl Forgery {
    /// Every kind, the two valid ones first.
    pub const ALL: [Forgery; 10] = [
        Forgery::Valid,
        Forgery::ValidUdp,
        Forgery::ForgedTag,
        Forgery::ForgedTagUdp,
        Forgery::OtherPairKey,
        Forgery::ExpiredEpoch,
        Forgery::Stale,
        Forgery::NotAuthorized,
        Forgery::Stripped,
        Forgery::FlippedTuple,
    ];

    /// The drop reason the receiver must count it under; `None` for the
    /// valid kinds, which it must deliver.
    pub const fn expected_drop(self) -> Option<DropReason> {
        match self {
            Forgery::Valid | Forgery::ValidUdp => None,
            Forgery::ForgedTag
            | Forgery::ForgedTagUdp
            | Forgery::OtherPairKey
            | Forgery::FlippedTuple => Some(DropReason::IdentityBadTag),
            Forgery::ExpiredEpoch => Some(DropReason::IdentityEpoch),
            Forgery::Stale => Some(DropReason::IdentityStale),
            Forgery::NotAuthorized => Some(DropReason::IdentityNotAuthorized),
            Forgery::Stripped => Some(DropReason::IdentityMissing),
        }
    }

    /// The inner protocol.
    pub const fn protocol(self) -> IpProtocol {
        match self {
            Forgery::ValidUdp | Forgery::ForgedTagUdp => IpProtocol::UDP,
            _ => IpProtocol::TCP,
        }
    }

    /// A short stable name, for messages.
    pub const fn name(self) -> &'static str {
        match self {
            Forgery::Valid => "valid",
            Forgery::ValidUdp => "valid_udp",
            Forgery::ForgedTag => "forged_tag",
            Forgery::ForgedTagUdp => "forged_tag_udp",
            Forgery::OtherPairKey => "other_pair_key",
            Forgery::ExpiredEpoch => "expired_epoch",
            Forgery::Stale => "stale",
            Forgery::NotAuthorized => "not_authorized",
            Forgery::Stripped => "stripped",
            Forgery::FlippedTuple => "flipped_tuple",
        }
    }
}

/// The identity drop reasons, and the policy's: the family a forgery
/// must land in exactly one member of.
pub const IDENTITY_REASONS: [DropReason; 7] = [
    DropReason::IdentityMissing,
    DropReason::IdentityMalformed,
    DropReason::IdentityEpoch,
    DropReason::IdentityBadTag,
    DropReason::IdentityStale,
    DropReason::IdentityNotAuthorized,
    DropReason::PolicyDenied,
];

/// Errors of reading targets from a lab, loading secrets, building frames.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// The lab lacks something the frames are addressed or keyed with.
    #[error("lab {lab}: {what}")]
    Lab { lab: String, what: String },
    /// The pair secret could not be loaded.
    #[error("secret {path}: {source}")]
    Secret { path: PathBuf, source: KeyError },
    /// A header or packet could not be written.
    #[error("building a frame: {0}")]
    Frame(#[from] overlay::Error),
    /// The identity header could not be inserted.
    #[error("stamping a frame: {0}")]
    Stamp(#[from] StampError),
    /// No epoch two before the current one (the clock is near 1970).
    #[error("no expired epoch before epoch {0}")]
    NoExpiredEpoch(u32),
}

/// A workload as the frames address it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    pub identity: IdentityId,
}

/// Everything forged frames are addressed and keyed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityTargets {
    /// The receiving warden's underlay MAC and VTEP address.
    pub receiver: Station,
    /// The sending warden's (spoofed) VTEP address, and its real underlay
    /// MAC (to recognise its own frames on the wire).
    pub sender: Station,
    /// The rogue host the frames are sent from (its MAC is their source).
    pub rogue: Station,
    /// The receiver's VXLAN UDP port.
    pub udp_port: u16,
    /// The VNI of both workloads.
    pub vni: Vni,
    pub sender_id: WardenId,
    pub receiver_id: WardenId,
    /// The inner source: a workload bound on the sender.
    pub src: Endpoint,
    /// The inner destination: a workload bound on the receiver.
    pub dst: Endpoint,
    /// An identity the receiver knows but does not let the sender assert.
    pub unauthorized: IdentityId,
    /// The receiver's epochs and timestamp window.
    pub clock: EpochClock,
    pub window_secs: u32,
    /// The pair secret's file.
    pub secret_file: PathBuf,
}

impl IdentityTargets {
    /// Reads them from a lab: wardens `sender` and `receiver` (warden peers
    /// of each other, both with `[identity]`; their underlay interfaces with
    /// fixed MACs), `rogue_host` (an underlay interface with a fixed MAC and
    /// an address in the underlay subnet, not a peer), the workloads bound
    /// at `src_ip` on the sender and `dst_ip` on the receiver. A secret
    /// file named `lab:NAME` is the run's, under `state_dir/secrets/`.
    pub fn from_lab(
        lab: &Lab,
        state_dir: &Path,
        sender: &str,
        receiver: &str,
        rogue_host: &str,
        src_ip: Ipv4Addr,
        dst_ip: Ipv4Addr,
    ) -> Result<IdentityTargets, ForgeError> {
        let err = |what: String| ForgeError::Lab {
            lab: lab.name.clone(),
            what,
        };
        let warden = |name: &str| -> Result<(&WardenConfig, Station), ForgeError> {
            let w = lab
                .warden(name)
                .ok_or_else(|| err(format!("no warden {name}")))?;
            let cfg = &w.config;
            let port = cfg
                .underlay_port()
                .ok_or_else(|| err(format!("warden {name} has no underlay port")))?;
            let mac = lab
                .host(&w.host)
                .and_then(|h| h.interfaces.iter().find(|i| i.name == port.interface))
                .and_then(|i| i.mac)
                .ok_or_else(|| {
                    err(format!(
                        "interface {} of host {} needs a fixed `mac` (warden {name}'s underlay MAC)",
                        port.interface, w.host
                    ))
                })?;
            Ok((
                cfg,
                Station {
                    mac,
                    ip: cfg.underlay.address.address(),
                },
            ))
        };
        let (scfg, sender_station) = warden(sender)?;
        let (rcfg, receiver_station) = warden(receiver)?;
        let ident = |cfg: &WardenConfig, name: &str| {
            cfg.identity
                .clone()
                .ok_or_else(|| err(format!("warden {name} has no [identity]")))
        };
        let (sident, rident) = (ident(scfg, sender)?, ident(rcfg, receiver)?);
        let subnet = rcfg.underlay.address;
        let rogue = lab
            .host(rogue_host)
            .ok_or_else(|| err(format!("no host {rogue_host}")))?
            .interfaces
            .iter()
            .find_map(|i| {
                let a = i.address?;
                subnet.contains(a.address()).then_some(Station {
                    mac: i.mac?,
                    ip: a.address(),
                })
            })
            .ok_or_else(|| {
                err(format!(
                    "host {rogue_host} needs an interface with a fixed `mac` and an address in {subnet}"
                ))
            })?;
        if rcfg.peers.iter().any(|p| p.address == rogue.ip) {
            return Err(err(format!(
                "rogue host {rogue_host} ({}) is a peer",
                rogue.ip
            )));
        }
        let (peer_index, peer) = rcfg
            .peers
            .iter()
            .enumerate()
            .find(|(_, p)| p.address == sender_station.ip)
            .ok_or_else(|| err(format!("{sender} is not a peer of {receiver}")))?;
        let PeerKind::Warden {
            warden_id,
            identities,
            ..
        } = &peer.kind
        else {
            return Err(err(format!("{sender} is not a warden peer of {receiver}")));
        };
        if *warden_id != sident.warden_id {
            return Err(err(format!(
                "{receiver} knows {sender} as {warden_id:?}, which calls itself {:?}",
                sident.warden_id
            )));
        }
        let secret = rcfg
            .peer_secret(peer_index)
            .ok_or_else(|| err(format!("{receiver} has no secret for {sender}")))?;
        let secret_file = match secret.to_str().and_then(|s| s.strip_prefix("lab:")) {
            Some(name) => state_dir.join("secrets").join(format!("{name}.key")),
            None => secret.to_path_buf(),
        };
        let workload = |cfg: &WardenConfig, name: &str, ip: Ipv4Addr| {
            let w = cfg
                .workloads
                .iter()
                .find(|w| w.ip == ip)
                .ok_or_else(|| err(format!("no workload {ip} on {name}")))?;
            let vni = cfg
                .ports
                .get(w.port)
                .and_then(|p| p.access_vni)
                .ok_or_else(|| err(format!("workload {ip} on {name} is on no access VNI")))?;
            // Ids come from the receiver's documents: it is the one that checks.
            let doc = cfg
                .documents
                .get(w.identity)
                .ok_or_else(|| err(format!("workload {ip} on {name} has no document")))?;
            let identity = rcfg
                .documents
                .iter()
                .find(|d| d.name == doc.name)
                .map(|d| d.id())
                .ok_or_else(|| err(format!("{receiver} does not know {}", doc.name)))?;
            Ok::<_, ForgeError>((
                Endpoint {
                    mac: w.mac,
                    ip: w.ip,
                    identity,
                },
                vni,
            ))
        };
        let (src, src_vni) = workload(scfg, sender, src_ip)?;
        let (dst, dst_vni) = workload(rcfg, receiver, dst_ip)?;
        if src_vni != dst_vni {
            return Err(err(format!("{src_ip} and {dst_ip} are in different VNIs")));
        }
        if !identities
            .iter()
            .any(|i| rcfg.document_id(*i) == Some(src.identity))
        {
            return Err(err(format!(
                "{receiver} does not let {sender} assert {src_ip}'s identity"
            )));
        }
        // Prefer the destination's own identity (a peer claiming to be the
        // workload it talks to), else any other the peer may not assert.
        let may_assert =
            |id: IdentityId| identities.iter().any(|i| rcfg.document_id(*i) == Some(id));
        let unauthorized = std::iter::once(dst.identity)
            .chain(rcfg.documents.iter().map(|d| d.id()))
            .find(|id| !may_assert(*id))
            .ok_or_else(|| {
                err(format!(
                    "{sender} may assert every identity {receiver} knows"
                ))
            })?;
        Ok(IdentityTargets {
            receiver: receiver_station,
            sender: sender_station,
            rogue,
            udp_port: rcfg.underlay.udp_port,
            vni: src_vni,
            sender_id: warden_id_of(&sident.warden_id),
            receiver_id: warden_id_of(&rident.warden_id),
            src,
            dst,
            unauthorized,
            clock: EpochClock {
                epoch_secs: rident.epoch_secs,
                grace_secs: rident.grace_secs,
            },
            window_secs: rident.window_secs,
            secret_file,
        })
    }
}

/// Builds forged frames with the pair's real secret and another one.
#[derive(Debug)]
pub struct Forger {
    t: IdentityTargets,
    secret: Secret,
    other: Secret,
    outer: OuterTemplate,
}

impl Forger {
    /// Loads the pair secret from `t.secret_file`; the "other pair" secret
    /// is a fixed pattern (it only has to differ).
    pub fn new(t: IdentityTargets) -> Result<Forger, ForgeError> {
        let secret = Secret::from_file(&t.secret_file).map_err(|source| ForgeError::Secret {
            path: t.secret_file.clone(),
            source,
        })?;
        Forger::with_secret(t, secret)
    }

    /// As [`Forger::new`], with the pair secret given.
    pub fn with_secret(t: IdentityTargets, secret: Secret) -> Result<Forger, ForgeError> {
        let mut other = vec![0u8; Secret::MIN_LEN];
        PatternStream::new(FORGE_SEED).fill(&mut other);
        let other = Secret::new(other).map_err(|source| ForgeError::Secret {
            path: PathBuf::from("(other pair)"),
            source,
        })?;
        let outer = OuterTemplate::new(&OuterParams {
            src_mac: t.rogue.mac,
            dst_mac: t.receiver.mac,
            src_ip: t.sender.ip,
            dst_ip: t.receiver.ip,
            vni: t.vni,
            dst_port: t.udp_port,
            ttl: 64,
            gbp: None,
        });
        Ok(Forger {
            t,
            secret,
            other,
            outer,
        })
    }

    pub fn targets(&self) -> &IdentityTargets {
        &self.t
    }

    /// Frame number `seq` of `kind` toward the destination's `dst_port`,
    /// stamped as of `now_unix`: a VXLAN frame from the rogue host's MAC and
    /// the sender's VTEP address to the receiver.
    pub fn build(
        &self,
        kind: Forgery,
        seq: u32,
        dst_port: u16,
        now_unix: u64,
    ) -> Result<Vec<u8>, ForgeError> {
        let src_port = SRC_PORT_BASE + (seq % SRC_PORTS) as u16;
        let isn = isn_of(kind, seq);
        let minted_port = match kind {
            Forgery::FlippedTuple => dst_port ^ FLIP_MASK,
            _ => dst_port,
        };
        let mut inner = self.inner(kind, seq, src_port, minted_port, isn)?;
        if kind != Forgery::Stripped {
            let flow = FlowKey::from_inner_ethernet(&inner[IPV4_GROWTH..])
                .map_err(|_| overlay::Error::Malformed)?;
            let repr = self.header(kind, seq, flow, isn, now_unix)?;
            let start = stamp::insert(&mut inner, IPV4_GROWTH, &repr)?;
            inner.drain(..start);
        } else {
            inner.drain(..IPV4_GROWTH);
        }
        if kind == Forgery::FlippedTuple {
            set_dst_port(&mut inner, dst_port)?;
        }
        Ok(self.encap(&inner))
    }

    /// The inner Ethernet frame, unstamped, behind [`IPV4_GROWTH`] bytes of
    /// headroom.
    fn inner(
        &self,
        kind: Forgery,
        seq: u32,
        src_port: u16,
        dst_port: u16,
        isn: u32,
    ) -> Result<Vec<u8>, ForgeError> {
        let (src, dst) = (self.t.src.ip, self.t.dst.ip);
        let ph = PseudoHeader::V4 { src, dst };
        let payload = payload(kind, seq);
        let l4 = match (kind.protocol(), kind) {
            (IpProtocol::UDP, _) => {
                let repr = udp::Repr {
                    src_port,
                    dst_port,
                    payload_len: payload.len(),
                };
                let mut d = vec![0u8; repr.buffer_len() + payload.len()];
                d[udp::HEADER_LEN..].copy_from_slice(&payload);
                let mut p = udp::Packet::new_unchecked(&mut d[..]);
                repr.emit(&mut p)?;
                p.fill_checksum(&ph);
                d
            }
            (_, Forgery::Stripped) => {
                let repr = tcp::Repr {
                    src_port,
                    dst_port,
                    seq_number: isn.wrapping_add(1),
                    ack_number: isn.rotate_left(16),
                    flags: Flags::PSH | Flags::ACK,
                    window_len: SYN_WINDOW,
                    urgent_at: 0,
                    options: &[],
                    payload_len: payload.len(),
                };
                tcp_segment(&repr, &payload, &ph)?
            }
            _ => {
                let repr = tcp::Repr {
                    src_port,
                    dst_port,
                    seq_number: isn,
                    ack_number: 0,
                    flags: Flags::SYN,
                    window_len: SYN_WINDOW,
                    urgent_at: 0,
                    options: &SYN_OPTIONS,
                    payload_len: 0,
                };
                tcp_segment(&repr, &[], &ph)?
            }
        };
        let eth = ethernet::Repr {
            src_addr: self.t.src.mac,
            dst_addr: self.t.dst.mac,
            ethertype: EtherType::IPV4,
        };
        let ip = ipv4::Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: kind.protocol(),
            payload_len: l4.len(),
            ttl: 64,
            dscp_ecn: 0,
            ident: 0,
            dont_frag: true,
        };
        let at = IPV4_GROWTH;
        let mut f = vec![0u8; at + eth.buffer_len() + ip.buffer_len() + l4.len()];
        eth.emit(&mut ethernet::Frame::new_unchecked(&mut f[at..]))?;
        let l3 = &mut f[at + ethernet::HEADER_LEN..];
        l3[ipv4::HEADER_LEN..].copy_from_slice(&l4);
        ip.emit(&mut ipv4::Packet::new_unchecked(l3))?;
        Ok(f)
    }

    /// The identity header of `kind` for `flow`.
    fn header(
        &self,
        kind: Forgery,
        seq: u32,
        flow: FlowKey,
        isn: u32,
        now_unix: u64,
    ) -> Result<Repr, ForgeError> {
        let now_epoch = self.t.clock.epoch_at(now_unix);
        let epoch = match kind {
            Forgery::ExpiredEpoch => now_epoch
                .checked_sub(2)
                .ok_or(ForgeError::NoExpiredEpoch(now_epoch))?,
            _ => now_epoch,
        };
        let timestamp = match kind {
            Forgery::Stale => (now_unix as u32).wrapping_sub(STALE_BY_SECS),
            _ => now_unix as u32,
        };
        let id = match kind {
            Forgery::NotAuthorized => self.t.unauthorized,
            _ => self.t.src.identity,
        };
        let secret = match kind {
            Forgery::OtherPairKey => &self.other,
            _ => &self.secret,
        };
        let key = derive_key(secret, self.t.sender_id, self.t.receiver_id, epoch);
        let mut repr = Repr {
            flags: 0,
            epoch: epoch as u8,
            id,
            timestamp,
            nonce: isn,
            tag: [0; TAG_LEN],
        };
        let input = TagInput::new(flow, self.t.vni.get());
        repr.tag = header::mint(&key, &repr, &input);
        if matches!(kind, Forgery::ForgedTag | Forgery::ForgedTagUdp) {
            let real = repr.tag;
            PatternStream::new(FORGE_SEED ^ u64::from(seq)).fill(&mut repr.tag);
            if repr.tag == real {
                // 2^-96; flip a bit rather than count on it.
                repr.tag[0] ^= 1;
            }
        }
        Ok(repr)
    }

    /// `inner` in VXLAN from the rogue host's MAC and the sender's VTEP
    /// address, the outer source port from the flow hash as warden sets it.
    fn encap(&self, inner: &[u8]) -> Vec<u8> {
        let sport = FlowKey::from_inner_ethernet(inner)
            .map(|k| overlay::vxlan_src_port(overlay::flow_hash(&k)))
            .unwrap_or(49_152);
        let mut f = vec![0u8; OUTER_LEN + inner.len()];
        f[OUTER_LEN..].copy_from_slice(inner);
        // An inner frame this short always fits an IPv4 total length.
        let _ = self.outer.write_into(&mut f, inner.len(), sport);
        f
    }
}

/// The ISN (and header nonce) of frame `seq` of `kind`: distinct per kind
/// and frame, so a capture can tell them apart.
fn isn_of(kind: Forgery, seq: u32) -> u32 {
    (kind as u32 + 1).wrapping_mul(0x1000_0193) ^ seq.wrapping_mul(0x9e37_79b9)
}

/// The payload of datagrams and mid-flow segments: marker, kind, sequence
/// number, filler.
fn payload(kind: Forgery, seq: u32) -> Vec<u8> {
    let mut p = vec![0x5a; PAYLOAD_LEN];
    p[..MARKER.len()].copy_from_slice(&MARKER);
    p[MARKER.len()] = kind as u8;
    p[MARKER.len() + 1..MARKER.len() + 5].copy_from_slice(&seq.to_be_bytes());
    p
}

fn tcp_segment(
    repr: &tcp::Repr<'_>,
    payload: &[u8],
    ph: &PseudoHeader,
) -> Result<Vec<u8>, overlay::Error> {
    let mut s = vec![0u8; repr.buffer_len() + payload.len()];
    let hl = repr.buffer_len();
    s[hl..].copy_from_slice(payload);
    let mut p = tcp::Packet::new_unchecked(&mut s[..]);
    repr.emit(&mut p)?;
    p.fill_checksum(ph);
    Ok(s)
}

/// Rewrites the L4 destination port of the IPv4 frame `frame` (options
/// allowed) and its checksum, as an attacker who flips it would.
fn set_dst_port(frame: &mut [u8], port: u16) -> Result<(), overlay::Error> {
    let l3 = frame
        .get_mut(ethernet::HEADER_LEN..)
        .ok_or(overlay::Error::Truncated)?;
    let mut ip = ipv4::Packet::new_checked(l3)?;
    let ph = PseudoHeader::V4 {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
    };
    let protocol = ip.protocol();
    let l4 = ip.payload_mut();
    match protocol {
        IpProtocol::TCP => {
            let mut t = tcp::Packet::new_checked(l4)?;
            t.set_dst_port(port);
            t.fill_checksum(&ph);
        }
        IpProtocol::UDP => {
            let mut u = udp::Packet::new_checked(l4)?;
            u.set_dst_port(port);
            u.fill_checksum(&ph);
        }
        _ => return Err(overlay::Error::Unsupported),
    }
    Ok(())
}

/// `frame` with its Ethernet source MAC replaced by `mac`: a captured frame
/// as re-sent from another host (nothing covers the outer Ethernet header,
/// and keeping the original MAC would move it on the switch).
pub fn resent_from(frame: &[u8], mac: MacAddr) -> Vec<u8> {
    let mut f = frame.to_vec();
    if let Ok(mut eth) = ethernet::Frame::new_checked(&mut f[..]) {
        eth.set_src_addr(mac);
    }
    f
}

/// What a capture shows of an inner (workload) IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InnerPacket {
    pub src_mac: MacAddr,
    pub flow: FlowKey,
    /// TCP flags and sequence number, for TCP.
    pub tcp: Option<(Flags, u32)>,
    /// The identity header, when one is present and well formed.
    pub header: Option<Repr>,
}

impl InnerPacket {
    /// A TCP segment with SYN set and ACK clear.
    pub fn is_syn(&self) -> bool {
        self.tcp.is_some_and(|(f, _)| f.is_syn_only())
    }

    /// Addressed to `ip:port` (any protocol with ports).
    pub fn is_to(&self, ip: Ipv4Addr, port: u16) -> bool {
        self.flow.dst == IpAddr::V4(ip) && self.flow.dst_port == port
    }
}

/// Reads an untagged Ethernet frame carrying IPv4 (identity option or not);
/// `None` for anything else.
pub fn inspect_inner(frame: &[u8]) -> Option<InnerPacket> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::IPV4 {
        return None;
    }
    let flow = FlowKey::from_inner_ethernet(frame).ok()?;
    let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
    let tcp = (flow.protocol == IpProtocol::TCP)
        .then(|| tcp::Packet::new_checked(ip.payload()).ok())
        .flatten()
        .map(|t| (t.flags(), t.seq_number()));
    let header = stamp::find_ipv4(frame).ok().flatten().map(|(_, r)| r);
    Some(InnerPacket {
        src_mac: eth.src_addr(),
        flow,
        tcp,
        header,
    })
}

/// What a capture on the underlay shows of a VXLAN frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnderlayPacket {
    pub src_mac: MacAddr,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub vni: Vni,
    pub inner: InnerPacket,
}

/// Reads a VXLAN frame (to `udp_port`) whose inner frame carries IPv4.
pub fn inspect_vxlan(frame: &[u8], udp_port: u16) -> Option<UnderlayPacket> {
    let d = overlay::decap(frame, udp_port).ok()?;
    Some(UnderlayPacket {
        src_mac: d.outer_src_mac,
        src_ip: d.outer_src,
        dst_ip: d.outer_dst,
        vni: d.vni,
        inner: inspect_inner(d.inner(frame))?,
    })
}

/// Errors of reading a capture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PcapError {
    #[error("not a pcap file (magic {0:#010x})")]
    NotPcap(u32),
    #[error("link type {0}, not Ethernet")]
    NotEthernet(u32),
}

/// Length of the pcap file header and of each record header.
const PCAP_HEADER: usize = 24;
const PCAP_RECORD: usize = 16;
const LINKTYPE_ETHERNET: u32 = 1;

/// The frames of a classic pcap file (micro- or nanosecond, either byte
/// order) of Ethernet frames, as far as it is complete: a file that
/// tcpdump is still writing may end inside a record, which is left out.
/// A file shorter than its header holds no frames yet.
pub fn pcap_frames(bytes: &[u8]) -> Result<Vec<&[u8]>, PcapError> {
    let Some(hdr) = bytes.first_chunk::<PCAP_HEADER>() else {
        return Ok(Vec::new());
    };
    let magic = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
    let little = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        m => return Err(PcapError::NotPcap(m)),
    };
    let word = |b: &[u8], at: usize| -> u32 {
        let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if little {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let linktype = word(hdr, 20);
    if linktype != LINKTYPE_ETHERNET {
        return Err(PcapError::NotEthernet(linktype));
    }
    let mut out = Vec::new();
    let mut rest = &bytes[PCAP_HEADER..];
    while let Some(rec) = rest.first_chunk::<PCAP_RECORD>() {
        let incl = word(rec, 8) as usize;
        let Some(frame) = rest.get(PCAP_RECORD..PCAP_RECORD + incl) else {
            break;
        };
        out.push(frame);
        rest = &rest[PCAP_RECORD + incl..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../tests/fixtures/identity-adversarial.toml");
    const API: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 21);
    const DB: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 23);
    const NOW: u64 = 1_760_000_000;
    const PORT: u16 = 6101;

    fn lab() -> Lab {
        config::parse_lab(FIXTURE, "identity-adversarial.toml").unwrap()
    }

    fn targets() -> IdentityTargets {
        IdentityTargets::from_lab(&lab(), Path::new("/run/x"), "n1", "n2", "x1", API, DB).unwrap()
    }

    fn secret() -> Secret {
        Secret::new(vec![0x42; 32]).unwrap()
    }

    fn forger() -> Forger {
        Forger::with_secret(targets(), secret()).unwrap()
    }

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    fn id_of(cfg: &WardenConfig, name: &str) -> IdentityId {
        cfg.document_id(cfg.document_index(name).unwrap()).unwrap()
    }

    /// The header, its flow as the receiver sees it, and the inner frame.
    fn parts(f: &[u8], port: u16) -> (Option<Repr>, FlowKey, Vec<u8>) {
        let d = overlay::decap(f, port).unwrap();
        let inner = d.inner(f).to_vec();
        let flow = FlowKey::from_inner_ethernet(&inner).unwrap();
        let repr = stamp::find_ipv4(&inner).unwrap().map(|(_, r)| r);
        (repr, flow, inner)
    }

    /// Whether the receiver's key for `epoch` verifies the header.
    fn verifies(repr: &Repr, flow: FlowKey, epoch: u32) -> bool {
        let t = targets();
        let key = derive_key(&secret(), t.sender_id, t.receiver_id, epoch);
        header::verify(&key, repr, &TagInput::new(flow, t.vni.get()))
    }

    #[test]
    fn targets_come_from_the_fixture() {
        let lab = lab();
        let t = targets();
        let n2 = &lab.warden("n2").unwrap().config;
        assert_eq!(t.receiver.mac, mac("02:00:00:00:aa:02"));
        assert_eq!(t.receiver.ip, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(t.sender.mac, mac("02:00:00:00:aa:01"));
        assert_eq!(t.sender.ip, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(t.rogue.mac, mac("02:00:00:00:aa:66"));
        assert_eq!(t.rogue.ip, Ipv4Addr::new(10, 0, 0, 66));
        assert_eq!((t.udp_port, t.vni.get()), (4789, 100));
        assert_eq!(t.sender_id, warden_id_of("node-1"));
        assert_eq!(t.receiver_id, warden_id_of("node-2"));
        assert_eq!(t.src.mac, mac("02:00:00:00:01:21"));
        assert_eq!(t.dst.mac, mac("02:00:00:00:01:23"));
        assert_eq!(t.src.identity, id_of(n2, "spiffe://lab/ns/payments/sa/api"));
        assert_eq!(t.dst.identity, id_of(n2, "spiffe://lab/ns/payments/sa/db"));
        assert_eq!(t.unauthorized, t.dst.identity);
        assert_eq!(t.window_secs, 3);
        assert_eq!(t.clock, EpochClock::default());
        assert_eq!(t.secret_file, Path::new("/run/x/secrets/n1-n2.key"));
    }

    #[test]
    fn labs_missing_a_piece_are_refused() {
        let lab = lab();
        let dir = Path::new("/run/x");
        let msg = |r: Result<IdentityTargets, ForgeError>| r.unwrap_err().to_string();
        let from = |s, r, x, src, dst| IdentityTargets::from_lab(&lab, dir, s, r, x, src, dst);
        assert!(msg(from("n1", "nope", "x1", API, DB)).contains("no warden nope"));
        assert!(msg(from("n1", "n2", "w1", API, DB)).contains("fixed `mac`"));
        assert!(msg(from("n1", "n2", "x1", DB, DB)).contains("no workload 10.1.0.23 on n1"));
        assert!(msg(from("n1", "n2", "x1", API, Ipv4Addr::new(10, 1, 0, 9)))
            .contains("no workload 10.1.0.9 on n2"));
        // web, on n1 too, is an identity n2 lets n1 assert.
        assert!(from("n1", "n2", "x1", Ipv4Addr::new(10, 1, 0, 22), DB).is_ok());
        let no_mac = FIXTURE.replace("  mac = \"02:00:00:00:aa:02\"\n", "");
        let lab2 = config::parse_lab(&no_mac, "x.toml").unwrap();
        let e = IdentityTargets::from_lab(&lab2, dir, "n1", "n2", "x1", API, DB).unwrap_err();
        assert!(e.to_string().contains("warden n2's underlay MAC"), "{e}");
    }

    #[test]
    fn every_forgery_is_addressed_like_the_peer() {
        let f = forger();
        let t = targets();
        for kind in Forgery::ALL {
            for seq in [0, 1, 19_999, 20_000] {
                let frame = f.build(kind, seq, PORT, NOW).unwrap();
                let u = inspect_vxlan(&frame, t.udp_port).unwrap();
                assert_eq!(u.src_mac, t.rogue.mac, "{kind:?}");
                assert_eq!((u.src_ip, u.dst_ip), (t.sender.ip, t.receiver.ip));
                assert_eq!(u.vni, t.vni);
                let eth = ethernet::Frame::new_checked(&frame[..]).unwrap();
                assert_eq!(eth.dst_addr(), t.receiver.mac);
                let i = u.inner;
                assert_eq!(i.src_mac, t.src.mac);
                assert!(i.is_to(t.dst.ip, PORT), "{kind:?}");
                assert_eq!(i.flow.src, IpAddr::V4(t.src.ip));
                assert_eq!(i.flow.src_port, SRC_PORT_BASE + (seq % SRC_PORTS) as u16);
                assert_eq!(i.flow.protocol, kind.protocol());
                assert_eq!(i.header.is_some(), kind != Forgery::Stripped, "{kind:?}");
                assert_eq!(
                    i.is_syn(),
                    kind.protocol() == IpProtocol::TCP && kind != Forgery::Stripped
                );
                // Checksums are right: only the identity header is wrong.
                let (_, _, inner) = parts(&frame, t.udp_port);
                let ip = ipv4::Packet::new_checked(&inner[ethernet::HEADER_LEN..]).unwrap();
                assert!(ip.verify_checksum(), "{kind:?}");
                let ph = PseudoHeader::V4 {
                    src: ip.src_addr(),
                    dst: ip.dst_addr(),
                };
                let ok = match kind.protocol() {
                    IpProtocol::UDP => udp::Packet::new_checked(ip.payload())
                        .unwrap()
                        .verify_checksum(&ph),
                    _ => tcp::Packet::new_checked(ip.payload())
                        .unwrap()
                        .verify_checksum(&ph),
                };
                assert!(ok, "{kind:?}");
                // Stripping the header gives the frame a workload would get.
                if i.header.is_some() {
                    let mut copy = inner.clone();
                    let start = stamp::strip_ipv4(&mut copy, 0).unwrap();
                    let plain = &copy[start..];
                    assert_eq!(plain.len(), inner.len() - IPV4_GROWTH);
                    let ip = ipv4::Packet::new_checked(&plain[ethernet::HEADER_LEN..]).unwrap();
                    assert!(ip.verify_checksum() && ip.header_len() == 20);
                }
            }
        }
    }

    #[test]
    fn each_forgery_fails_exactly_its_own_check() {
        let f = forger();
        let t = targets();
        let cur = t.clock.epoch_at(NOW);
        for kind in Forgery::ALL {
            let frame = f.build(kind, 7, PORT, NOW).unwrap();
            let (repr, flow, _) = parts(&frame, t.udp_port);
            let Some(repr) = repr else {
                assert_eq!(kind, Forgery::Stripped);
                assert_eq!(kind.expected_drop(), Some(DropReason::IdentityMissing));
                continue;
            };
            assert_eq!(repr.nonce, isn_of(kind, 7), "{kind:?}");
            assert!(!repr.is_announce());
            let fresh = header::timestamp_fresh(repr.timestamp, NOW, t.window_secs);
            let authorized = repr.id == t.src.identity;
            let epoch_ok = t.clock.resolve(repr.epoch, NOW).is_some();
            let tag_ok = epoch_ok && verifies(&repr, flow, cur);
            let got = if !epoch_ok {
                Some(DropReason::IdentityEpoch)
            } else if !tag_ok {
                Some(DropReason::IdentityBadTag)
            } else if !fresh {
                Some(DropReason::IdentityStale)
            } else if !authorized {
                Some(DropReason::IdentityNotAuthorized)
            } else {
                None
            };
            assert_eq!(got, kind.expected_drop(), "{kind:?}");
            // The defect is the only one: the other checks pass.
            match kind {
                Forgery::ExpiredEpoch => {
                    assert_eq!(u32::from(repr.epoch), (cur - 2) & 0xff);
                    assert!(verifies(&repr, flow, cur - 2));
                    assert!(fresh && authorized);
                }
                Forgery::Stale => {
                    assert_eq!(u64::from(repr.timestamp), NOW - u64::from(STALE_BY_SECS));
                    assert!(authorized);
                }
                Forgery::NotAuthorized => {
                    assert!(fresh);
                    assert_eq!(repr.id, t.unauthorized);
                }
                Forgery::FlippedTuple => {
                    let mut minted = flow;
                    minted.dst_port ^= FLIP_MASK;
                    assert!(verifies(&repr, minted, cur));
                    assert!(fresh && authorized);
                }
                Forgery::OtherPairKey => {
                    let other = derive_key(&f.other, t.sender_id, t.receiver_id, cur);
                    let input = TagInput::new(flow, t.vni.get());
                    assert!(header::verify(&other, &repr, &input));
                }
                Forgery::ForgedTag | Forgery::ForgedTagUdp => assert!(fresh && authorized),
                Forgery::Valid | Forgery::ValidUdp | Forgery::Stripped => {}
            }
        }
    }

    #[test]
    fn forged_tags_vary_and_frames_are_deterministic() {
        let f = forger();
        let tag = |seq| {
            let frame = f.build(Forgery::ForgedTag, seq, PORT, NOW).unwrap();
            inspect_vxlan(&frame, 4789)
                .unwrap()
                .inner
                .header
                .unwrap()
                .tag
        };
        assert_ne!(tag(1), tag(2));
        assert_eq!(
            f.build(Forgery::Stale, 3, PORT, NOW).unwrap(),
            f.build(Forgery::Stale, 3, PORT, NOW).unwrap()
        );
        // The wrong secret differs from the right one (same length).
        assert_ne!(
            f.build(Forgery::OtherPairKey, 3, PORT, NOW).unwrap(),
            f.build(Forgery::Valid, 3, PORT, NOW).unwrap()
        );
    }

    #[test]
    fn resending_changes_only_the_source_mac() {
        let f = forger();
        let frame = f.build(Forgery::Valid, 1, PORT, NOW).unwrap();
        let m = mac("02:00:00:00:00:99");
        let again = resent_from(&frame, m);
        assert_eq!(&again[6..12], &m.0);
        assert_eq!(again[..6], frame[..6]);
        assert_eq!(again[12..], frame[12..]);
        assert_eq!(resent_from(&[1, 2, 3], m), vec![1, 2, 3]);
    }

    #[test]
    fn inspect_ignores_what_is_not_ipv4() {
        assert_eq!(inspect_inner(&[0u8; 10]), None);
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(inspect_inner(&arp), None);
        assert_eq!(inspect_vxlan(&arp, 4789), None);
        let f = forger().build(Forgery::Valid, 1, PORT, NOW).unwrap();
        assert_eq!(inspect_vxlan(&f, 4790), None);
        assert!(inspect_vxlan(&f[..f.len() - 30], 4789).is_none());
    }

    fn pcap(little: bool, nanos: bool, linktype: u32, frames: &[&[u8]]) -> Vec<u8> {
        let w = |v: u32| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let h = |v: u16| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let mut out = Vec::new();
        out.extend_from_slice(&w(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
        out.extend_from_slice(&h(2));
        out.extend_from_slice(&h(4));
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&w(262_144));
        out.extend_from_slice(&w(linktype));
        for (i, f) in frames.iter().enumerate() {
            out.extend_from_slice(&w(1_700_000_000 + i as u32));
            out.extend_from_slice(&w(5));
            out.extend_from_slice(&w(f.len() as u32));
            out.extend_from_slice(&w(f.len() as u32 + 7));
            out.extend_from_slice(f);
        }
        out
    }

    #[test]
    fn pcap_files_are_read_to_their_last_whole_record() {
        let a = [1u8; 60];
        let b = [2u8; 98];
        for (little, nanos) in [(true, false), (true, true), (false, false), (false, true)] {
            let file = pcap(little, nanos, 1, &[&a, &b]);
            assert_eq!(pcap_frames(&file).unwrap(), vec![&a[..], &b[..]]);
            // Being written: a partial record or record header is left out.
            for cut in [1, 10, 16, 50] {
                let part = &file[..file.len() - cut];
                assert_eq!(pcap_frames(part).unwrap(), vec![&a[..]], "cut {cut}");
            }
        }
        assert_eq!(pcap_frames(&[]).unwrap(), Vec::<&[u8]>::new());
        assert_eq!(pcap_frames(&[0xd4; 10]).unwrap(), Vec::<&[u8]>::new());
        assert_eq!(pcap_frames(&[0u8; 24]).unwrap_err(), PcapError::NotPcap(0));
        assert_eq!(
            pcap_frames(&pcap(true, false, 113, &[&a])).unwrap_err(),
            PcapError::NotEthernet(113)
        );
    }

    #[test]
    fn a_missing_secret_file_is_named() {
        let mut t = targets();
        t.secret_file = PathBuf::from("/nonexistent/secrets/n1-n2.key");
        let e = Forger::new(t).unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent/secrets/n1-n2.key"),
            "{e}"
        );
    }

    #[test]
    fn names_and_reasons() {
        let names: std::collections::BTreeSet<_> = Forgery::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), Forgery::ALL.len());
        for k in Forgery::ALL {
            if let Some(r) = k.expected_drop() {
                assert!(IDENTITY_REASONS.contains(&r), "{k:?}");
            }
        }
    }
}
