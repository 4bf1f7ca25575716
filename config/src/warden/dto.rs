//! The serde DTOs of the warden instance config: the file as written, one
//! struct per table, unknown fields rejected. Only single values are
//! checked here (by the `value` types); the validators next to this module
//! check the rest.

use std::ops::Range;

use serde::Deserialize;
use serde_spanned::Spanned;

use super::Backend;
use crate::error::ErrorKind;
use crate::identities::{
    GbpDto, IdentityDto, IdentityMapDto, PeerFields, PeerKindDto, WorkloadDto,
};
use crate::validate::{invalid, Invalid};
use crate::value::{CidrValue, IfName, Ipv4Value, MacValue, VniValue};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WardenDto {
    #[serde(default)]
    pub(super) instance: Option<InstanceDto>,
    pub(super) underlay: Spanned<UnderlayDto>,
    #[serde(default)]
    pub(super) identity: Option<Spanned<IdentityDto>>,
    #[serde(default)]
    pub(super) port: Vec<Spanned<PortDto>>,
    #[serde(default)]
    pub(super) peer: Vec<Spanned<PeerDto>>,
    #[serde(default)]
    pub(super) vni: Vec<Spanned<VniDto>>,
    #[serde(default)]
    pub(super) fdb: Vec<Spanned<FdbDto>>,
    #[serde(default)]
    pub(super) neighbor: Vec<Spanned<NeighborDto>>,
    #[serde(default)]
    pub(super) route: Vec<Spanned<RouteDto>>,
    #[serde(default)]
    pub(super) workload: Vec<Spanned<WorkloadDto>>,
    #[serde(default)]
    pub(super) identity_map: Vec<Spanned<IdentityMapDto>>,
    #[serde(default)]
    pub(super) policy: Option<Spanned<crate::policy::PolicyDto>>,
    #[serde(default)]
    pub(super) flow_log: Option<FlowLogDto>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FlowLogDto {
    pub(super) path: Spanned<String>,
    pub(super) max_bytes: Option<Spanned<u64>>,
    pub(super) keep: Option<Spanned<u32>>,
    pub(super) rate: Option<Spanned<u32>>,
}

/// `[[allow]]`, the allow hook that `[policy]` replaced: looked for before
/// the file is read for real so that it gets its own message instead of
/// "unknown field". Ignores everything else (a file that does not parse
/// here fails the real read with its own error).
#[derive(Debug, Deserialize)]
struct AllowProbe {
    #[serde(default)]
    allow: Option<Spanned<serde::de::IgnoredAny>>,
}

#[derive(Debug, Deserialize)]
struct LabAllowProbe {
    #[serde(default)]
    warden: Vec<LabWardenAllowProbe>,
}

#[derive(Debug, Deserialize)]
struct LabWardenAllowProbe {
    #[serde(default)]
    config: Option<AllowProbe>,
}

/// Where `text` (a warden config, or a lab when `lab`) still has an
/// `[[allow]]` table, as the error that says what replaced it.
pub(crate) fn removed_allow(text: &str, lab: bool) -> Option<Invalid> {
    let span = if lab {
        toml::from_str::<LabAllowProbe>(text)
            .ok()?
            .warden
            .into_iter()
            .find_map(|w| w.config?.allow)?
            .span()
    } else {
        toml::from_str::<AllowProbe>(text).ok()?.allow?.span()
    };
    let prefix = if lab { "warden.config." } else { "" };
    Some(invalid(span, ErrorKind::AllowReplaced { prefix }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InstanceDto {
    pub(super) name: Option<Spanned<String>>,
    pub(super) control_socket: Option<Spanned<String>>,
    pub(super) metrics: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UnderlayDto {
    pub(super) port: Spanned<String>,
    pub(super) address: Spanned<CidrValue>,
    pub(super) gateway: Option<Spanned<Ipv4Value>>,
    pub(super) udp_port: Option<Spanned<u16>>,
    pub(super) mtu: Option<Spanned<u16>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PortDto {
    pub(super) name: Spanned<String>,
    pub(super) backend: Backend,
    pub(super) interface: Spanned<IfName>,
    pub(super) netns: Option<Spanned<String>>,
    pub(super) vni: Option<Spanned<VniValue>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PeerDto {
    pub(super) address: Spanned<Ipv4Value>,
    #[serde(default)]
    pub(super) vnis: Vec<Spanned<VniValue>>,
    pub(super) name: Option<String>,
    pub(super) kind: Option<Spanned<PeerKindDto>>,
    pub(super) warden_id: Option<Spanned<String>>,
    pub(super) secret_file: Option<Spanned<String>>,
    pub(super) identities: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) gbp: Option<Spanned<Vec<Spanned<GbpDto>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VniDto {
    pub(super) id: Spanned<VniValue>,
    pub(super) name: Option<String>,
    pub(super) gateway: Option<Spanned<CidrValue>>,
    pub(super) gateway_mac: Option<Spanned<MacValue>>,
    pub(super) mac_aging_secs: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FdbDto {
    pub(super) vni: Spanned<VniValue>,
    pub(super) mac: Spanned<MacValue>,
    pub(super) peer: Option<Spanned<Ipv4Value>>,
    pub(super) port: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NeighborDto {
    pub(super) vni: Spanned<VniValue>,
    pub(super) ip: Spanned<Ipv4Value>,
    pub(super) mac: Spanned<MacValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RouteDto {
    pub(super) destination: Spanned<CidrValue>,
    pub(super) vni: Spanned<VniValue>,
    pub(super) via: Option<Spanned<Ipv4Value>>,
}

/// Facts about the ports that the lab validator needs to point at.
#[derive(Debug, Clone)]
pub(crate) struct PortSpans {
    /// Span of each port's `interface` value, by port index.
    pub interface: Vec<Range<usize>>,
    /// Span of each port's `netns` value, by port index.
    pub netns: Vec<Option<Range<usize>>>,
    /// Span of `[instance] control_socket` (or `name`) when the file sets one.
    pub control_socket: Option<Range<usize>>,
}

impl WardenDto {
    /// Spans the lab validator reports against.
    pub(crate) fn spans(&self) -> PortSpans {
        PortSpans {
            interface: self
                .port
                .iter()
                .map(|p| p.get_ref().interface.span())
                .collect(),
            netns: self
                .port
                .iter()
                .map(|p| p.get_ref().netns.as_ref().map(Spanned::span))
                .collect(),
            control_socket: self
                .instance
                .as_ref()
                .and_then(|i| i.control_socket.as_ref().or(i.name.as_ref()))
                .map(Spanned::span),
        }
    }
}

impl PeerDto {
    /// The identity fields, for `identities::peer_kind`.
    pub(super) fn identity_fields(&self) -> PeerFields<'_> {
        PeerFields {
            kind: self.kind.as_ref(),
            warden_id: self.warden_id.as_ref(),
            secret_file: self.secret_file.as_ref(),
            identities: self.identities.as_ref(),
            gbp: self.gbp.as_ref(),
        }
    }
}
