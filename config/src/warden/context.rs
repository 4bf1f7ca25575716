//! [`Tables`]: what the validators after `[[vni]]` and `[[port]]` resolve
//! their references against.

use serde_spanned::Spanned;

use super::{vnis, PortConfig, VniConfig};
use crate::error::ErrorKind;
use crate::validate::{invalid, one_of, Invalid};
use crate::value::VniValue;
use overlay::Ipv4Cidr;

/// The declared ports and VNIs, with the source text for duplicate
/// messages.
pub(super) struct Tables<'a> {
    pub text: &'a str,
    pub ports: &'a [PortConfig],
    /// The `[[port]]` names, by port index (for "expected one of").
    pub port_names: Vec<&'a str>,
    pub vnis: &'a [VniConfig],
}

impl<'a> Tables<'a> {
    pub(super) fn new(text: &'a str, ports: &'a [PortConfig], vnis: &'a [VniConfig]) -> Self {
        Tables {
            text,
            ports,
            port_names: ports.iter().map(|p| p.name.as_str()).collect(),
            vnis,
        }
    }

    /// Index of the port `name` refers to (`what` names the reference).
    pub(super) fn find_port(
        &self,
        name: &Spanned<String>,
        what: &'static str,
    ) -> Result<usize, Invalid> {
        self.port_names
            .iter()
            .position(|n| n == name.get_ref())
            .ok_or_else(|| {
                invalid(
                    name.span(),
                    ErrorKind::UnknownReference {
                        what,
                        name: name.get_ref().clone(),
                        expected: one_of("[[port]] names", &self.port_names),
                    },
                )
            })
    }

    /// The declared VNI `v` refers to (`context` names the reference).
    pub(super) fn declared(
        &self,
        v: &Spanned<VniValue>,
        context: &'static str,
    ) -> Result<&'a VniConfig, Invalid> {
        vnis::declared(self.vnis, v, context)
    }

    /// The gateway subnet of the declared VNI `v` refers to; an error when
    /// it has none.
    pub(super) fn with_gateway(
        &self,
        v: &Spanned<VniValue>,
        context: &'static str,
    ) -> Result<Ipv4Cidr, Invalid> {
        let c = self.declared(v, context)?;
        c.gateway.ok_or_else(|| {
            invalid(
                v.span(),
                ErrorKind::VniWithoutGateway { context, vni: c.id },
            )
        })
    }
}
