//! Which addresses this service may send requests to on a user's behalf.
//!
//! A registry record is an address typed by a user, and the registry's own
//! answers (token realms) name more addresses. Without a policy, "verify"
//! and browsing would let any API user make this service call whatever it
//! can reach: the cloud's metadata service on a link-local address, or our
//! own admin port. Link-local addresses are refused by default; loopback is
//! refused where the service runs in a cluster (a laptop lab runs its
//! registry on localhost); operators add ranges of their own. Private
//! ranges stay allowed: in-house Harbors live there.
//!
//! Checked before any connection: IP literals before the request is sent,
//! host names in the resolver, which connects only to addresses it allowed
//! (so a name cannot pass the check and then resolve elsewhere).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Where requests to registries may not go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPolicy {
    /// 127.0.0.0/8, ::1, and the unspecified addresses (which reach this host).
    pub allow_loopback: bool,
    /// 169.254.0.0/16 and fe80::/10, where metadata services answer.
    pub allow_link_local: bool,
    /// More ranges to refuse.
    pub deny: Vec<IpNet>,
}

impl Default for AddressPolicy {
    /// The embedded default: a laptop lab may run its registry on loopback.
    fn default() -> Self {
        Self {
            allow_loopback: true,
            allow_link_local: false,
            deny: Vec::new(),
        }
    }
}

/// A request this policy refused, before any connection was made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} {reason}: requests to it are refused")]
pub struct AddressRefused {
    pub host: String,
    /// Where it resolved to; `None` when it was not looked up at all.
    pub ip: Option<IpAddr>,
    /// Says what the address is, e.g. "is 169.254.169.254, a link-local address".
    pub reason: String,
}

/// The host name could not be resolved (or resolved to nothing): the
/// client tells it apart by this type, never by an error's text.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {host}")]
pub struct LookupFailed {
    pub host: String,
    #[source]
    pub source: Option<std::io::Error>,
}

impl AddressPolicy {
    /// Why `ip` is refused, or `None` when requests may go there.
    pub fn refusal(&self, ip: IpAddr) -> Option<String> {
        // `::ffff:169.254.169.254` is the IPv4 address in disguise.
        let ip = ip.to_canonical();
        let (loopback, link_local) = match ip {
            IpAddr::V4(v4) => (v4.is_loopback() || v4.is_unspecified(), v4.is_link_local()),
            IpAddr::V6(v6) => (
                v6.is_loopback() || v6.is_unspecified(),
                v6.is_unicast_link_local(),
            ),
        };
        if link_local && !self.allow_link_local {
            return Some("a link-local address (where cloud metadata services answer)".into());
        }
        if loopback && !self.allow_loopback {
            return Some("a loopback address (this host itself)".into());
        }
        self.deny
            .iter()
            .find(|net| net.contains(&ip))
            .map(|net| format!("in the refused range {net}"))
    }

    /// A policy that refuses every address: names need not be looked up
    /// (an air-gapped install, or a test that must reach nothing at all).
    pub fn refuses_everything(&self) -> bool {
        let whole = |net: &&IpNet| net.prefix_len() == 0;
        self.deny
            .iter()
            .filter(whole)
            .any(|n| matches!(n, IpNet::V4(_)))
            && self
                .deny
                .iter()
                .filter(whole)
                .any(|n| matches!(n, IpNet::V6(_)))
    }

    /// Refuses an IP-literal host (which skips the resolver) up front.
    pub fn check_literal(&self, url: &url::Url) -> Result<(), AddressRefused> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        match self.refusal(ip) {
            None => Ok(()),
            Some(reason) => Err(AddressRefused {
                host: url.host_str().unwrap_or_default().to_owned(),
                ip: Some(ip),
                reason: format!("is {ip}, {reason}"),
            }),
        }
    }
}

/// The system resolver, keeping only the addresses the policy allows.
#[derive(Debug, Clone)]
pub struct PolicyResolver(pub Arc<AddressPolicy>);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            if policy.refuses_everything() {
                return Err(Box::new(AddressRefused {
                    host,
                    ip: None,
                    reason: "was not looked up: every address range is refused".into(),
                }) as _);
            }
            let looked_up = tokio::net::lookup_host((host.clone(), 0)).await;
            let resolved: Vec<SocketAddr> = match looked_up {
                Ok(found) => found.collect(),
                Err(source) => {
                    return Err(Box::new(LookupFailed {
                        host,
                        source: Some(source),
                    }) as _);
                }
            };
            if resolved.is_empty() {
                return Err(Box::new(LookupFailed { host, source: None }) as _);
            }
            let mut refused = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match policy.refusal(addr.ip()) {
                    None => true,
                    Some(reason) => {
                        refused.get_or_insert((addr.ip(), reason));
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some((ip, reason))) => Err(Box::new(AddressRefused {
                    host,
                    ip: Some(ip),
                    reason: format!("is {ip}, {reason}"),
                }) as _),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn link_local_is_refused_by_default_private_ranges_are_not() {
        let policy = AddressPolicy::default();
        for refused in ["169.254.169.254", "fe80::1", "::ffff:169.254.169.254"] {
            assert!(policy.refusal(ip(refused)).is_some(), "{refused}");
        }
        for allowed in [
            "10.0.0.5",
            "192.168.1.10",
            "172.16.0.1",
            "127.0.0.1",
            "::1",
            "139.198.16.232",
        ] {
            assert_eq!(policy.refusal(ip(allowed)), None, "{allowed}");
        }
    }

    #[test]
    fn loopback_and_listed_ranges_when_configured() {
        let policy = AddressPolicy {
            allow_loopback: false,
            allow_link_local: false,
            deny: vec!["10.0.0.0/8".parse().expect("net")],
        };
        for refused in [
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "0.0.0.0",
            "::",
            "::ffff:127.0.0.1",
            "10.1.2.3",
        ] {
            assert!(policy.refusal(ip(refused)).is_some(), "{refused}");
        }
        assert_eq!(policy.refusal(ip("192.168.1.10")), None);
        let open = AddressPolicy {
            allow_link_local: true,
            ..AddressPolicy::default()
        };
        assert_eq!(open.refusal(ip("169.254.169.254")), None);
    }

    #[test]
    fn literal_hosts_are_checked_names_are_left_to_the_resolver() {
        let policy = AddressPolicy::default();
        let url = |u: &str| url::Url::parse(u).expect("url");
        assert!(
            policy
                .check_literal(&url("http://169.254.169.254/v2/"))
                .is_err()
        );
        assert!(
            policy
                .check_literal(&url("http://[fe80::1]:5000/v2/"))
                .is_err()
        );
        assert!(
            policy
                .check_literal(&url("https://harbor.example.com/v2/"))
                .is_ok()
        );
        assert!(
            policy
                .check_literal(&url("http://10.0.0.5:5000/v2/"))
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_policy_refusing_every_range_does_not_look_names_up() {
        let cidrs = |list: &[&str]| -> Vec<IpNet> {
            list.iter().map(|c| c.parse().expect("cidr")).collect()
        };
        let all = AddressPolicy {
            deny: cidrs(&["0.0.0.0/0", "::/0"]),
            ..AddressPolicy::default()
        };
        assert!(all.refuses_everything());
        for partial in [&["0.0.0.0/0"][..], &["::/0", "10.0.0.0/8"]] {
            let policy = AddressPolicy {
                deny: cidrs(partial),
                ..AddressPolicy::default()
            };
            assert!(!policy.refuses_everything(), "{partial:?}");
        }
        // A name that cannot exist: refused by policy, not by a failed lookup.
        let name: Name = "never-looked-up.invalid".parse().expect("name");
        let refused = match PolicyResolver(Arc::new(all)).resolve(name).await {
            Err(error) => error.to_string(),
            Ok(_) => panic!("resolved under a deny-all policy"),
        };
        assert!(refused.contains("was not looked up"), "{refused}");
    }
}
