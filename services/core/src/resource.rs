//! Resource indicators (RFC 8707): normalization, and the choice of audience for a grant.

use crate::error::{AuthError, Reason};
use url::{Host, Url};

/// A normalized resource URI: lower-case scheme and host, no fragment, and for a host-only
/// resource no trailing slash (`https://h` and `https://h/` name one resource; Claude Code
/// sends the slash). It is the `aud` of every access token issued for it, so the normal form
/// must be stable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Resource(String);

impl Resource {
    /// Parses and normalizes a resource indicator.
    ///
    /// RFC 8707 §2: an absolute URI, which MUST NOT include a fragment. Only https, or http to
    /// the loopback interface, can be a protected resource here.
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        let bad = |why| AuthError::InvalidTarget(Reason::ResourceMalformed(why));
        if s.len() > 2000 {
            return Err(bad("too long"));
        }
        let url = Url::parse(s).map_err(|_| bad("not an absolute URI"))?;
        if url.fragment().is_some() || s.contains('#') {
            return Err(bad("must not contain a fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must not contain credentials"));
        }
        let loopback = match url.host() {
            Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            None => return Err(bad("needs a host")),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err(bad("must be https, or http on a loopback host")),
        }
        // The url crate lower-cases scheme and host and drops default ports. It also turns an
        // empty path into "/"; a host-only resource is written without it.
        Ok(Self(canonical(url.as_str()).to_owned()))
    }

    /// RFC 9728 §3.1: where this resource's metadata lives, as a path on the resource's
    /// origin and as an absolute URL. The well-known segment goes between the host and the
    /// path; a path of just "/" is dropped, any other is kept as it is, and so is a query.
    pub fn metadata_location(&self) -> (String, String) {
        let Ok(u) = url::Url::parse(&self.0) else {
            return (String::new(), String::new());
        };
        let path = match u.path() {
            "/" => "",
            p => p,
        };
        let served = format!("/.well-known/oauth-protected-resource{path}");
        let mut absolute = format!("{}{served}", u.origin().ascii_serialization());
        if let Some(q) = u.query() {
            absolute.push('?');
            absolute.push_str(q);
        }
        (served, absolute)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The RFC 9728 §2 protected resource metadata document: this resource, its
    /// authorization server, bearer tokens in the header only (RFC 6750 §2.1), and its scopes
    /// (left out when there are none to name). `offline_access` is never among them: it names
    /// no access to the resource, and MCP (2026-07-28) keeps it out. The gateway serves this
    /// for resources behind ForwardAuth, and `latchkey-resource-server` for its own.
    pub fn metadata_document(&self, issuer: &str, scopes: &[&str]) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "resource": self.0,
            "authorization_servers": [issuer],
            "bearer_methods_supported": ["header"],
        });
        let scopes: Vec<&str> = scopes
            .iter()
            .copied()
            .filter(|s| *s != crate::scope::OFFLINE_ACCESS)
            .collect();
        if !scopes.is_empty() {
            doc["scopes_supported"] = serde_json::json!(scopes);
        }
        doc
    }

    /// Restores a resource that was normalized before it was stored (by an earlier version,
    /// a host-only one may still carry its trailing slash).
    pub fn from_stored(s: String) -> Self {
        match canonical(&s).len() {
            n if n < s.len() => Self(s[..n].to_owned()),
            _ => Self(s),
        }
    }
}

/// A normalized resource without the trailing slash of a host-only one: `https://h/` is
/// `https://h`, while `https://h/mcp/` and `https://h/?q` keep theirs.
fn canonical(s: &str) -> &str {
    let Some((_, rest)) = s.split_once("://") else {
        return s;
    };
    match rest.find('/') {
        Some(i) if i + 1 == rest.len() => &s[..s.len() - 1],
        _ => s,
    }
}

/// Whether two normalized resources (a token's `aud`, a stored grant's resource, a resource
/// server's own) name the same resource.
pub fn same(a: &str, b: &str) -> bool {
    a == b || canonical(a) == canonical(b)
}

/// A protected resource registered with this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedResource {
    pub resource: Resource,
    /// The scopes this resource accepts; `None` means every supported scope.
    pub scopes: Option<crate::scope::ScopeSet>,
    pub is_default: bool,
    /// Which of its scopes imply others (MCP 2026-07-28); applied when a token is minted.
    pub implies: crate::scope_hierarchy::ScopeHierarchy,
}

/// Chooses the audience of a grant from the request's `resource` parameters.
///
/// With registered resources, the request must name one of them (or none, meaning the
/// default). With none registered and `open` (development), any well-formed resource is
/// accepted, and a request without one is bound to `fallback` (the issuer). With none
/// registered and not `open` (production), there is no audience to give.
pub fn resolve<'a>(
    requested: &[String],
    registered: &'a [ProtectedResource],
    open: bool,
    fallback: &str,
) -> Result<(Resource, Option<&'a ProtectedResource>), AuthError> {
    let requested = match requested {
        [] => None,
        [one] => Some(Resource::parse(one)?),
        _ => return Err(AuthError::InvalidTarget(Reason::MultipleResources)),
    };
    if registered.is_empty() {
        if !open {
            return Err(no_resource_registered());
        }
        return Ok((
            requested.unwrap_or_else(|| Resource(fallback.to_owned())),
            None,
        ));
    }
    let found = match &requested {
        Some(r) => registered.iter().find(|p| &p.resource == r),
        None => registered
            .iter()
            .find(|p| p.is_default)
            .or(registered.first()),
    };
    match found {
        Some(p) => Ok((p.resource.clone(), Some(p))),
        None => Err(AuthError::InvalidTarget(Reason::ResourceUnknown(
            requested.map(|r| r.0).unwrap_or_default(),
        ))),
    }
}

fn no_resource_registered() -> AuthError {
    AuthError::InvalidTarget(Reason::NoResourceRegistered)
}

/// Chooses the audience of a grant without a user from the resources an operator listed on
/// the client. A request without `resource` means the only listed one, or the default
/// resource when it is listed. Once resources are registered, a listed one that has since
/// been deleted is refused.
pub fn resolve_listed<'a>(
    requested: &[String],
    listed: &[String],
    registered: &'a [ProtectedResource],
    open: bool,
) -> Result<(Resource, Option<&'a ProtectedResource>), AuthError> {
    if registered.is_empty() && !open {
        return Err(no_resource_registered());
    }
    let chosen = match requested {
        [] => match listed {
            [only] => Resource::from_stored(only.clone()),
            _ => registered
                .iter()
                .find(|p| p.is_default && listed.iter().any(|l| same(l, p.resource.as_str())))
                .map(|p| p.resource.clone())
                .ok_or(AuthError::InvalidTarget(Reason::ResourceAmbiguous))?,
        },
        [one] => {
            // Sent exactly as registered or as listed, it is already canonical (both are
            // stored parsed): no need to parse it again.
            let r = match registered.iter().find(|p| p.resource.as_str() == one) {
                Some(p) => p.resource.clone(),
                None if listed.iter().any(|l| l == one) => Resource::from_stored(one.clone()),
                None => Resource::parse(one)?,
            };
            if !listed.iter().any(|l| same(l, r.as_str())) {
                return Err(AuthError::InvalidTarget(Reason::ResourceUnknown(r.0)));
            }
            r
        }
        _ => return Err(AuthError::InvalidTarget(Reason::MultipleResources)),
    };
    if registered.is_empty() {
        return Ok((chosen, None));
    }
    match registered.iter().find(|p| p.resource == chosen) {
        Some(p) => Ok((chosen, Some(p))),
        None => Err(AuthError::InvalidTarget(Reason::ResourceUnknown(chosen.0))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_grant_without_a_user_gets_only_a_listed_resource() {
        let reg = vec![
            ProtectedResource {
                resource: Resource::parse("https://a.example.com/mcp").expect("valid"),
                scopes: None,
                is_default: false,
                implies: Default::default(),
            },
            ProtectedResource {
                resource: Resource::parse("https://b.example.com/mcp").expect("valid"),
                scopes: None,
                is_default: true,
                implies: Default::default(),
            },
        ];
        let a = "https://a.example.com/mcp".to_owned();
        let b = "https://b.example.com/mcp".to_owned();
        let gone = "https://gone.example.com/mcp".to_owned();
        /// (requested, listed, with registered resources, the audience or None for
        /// invalid_target, why)
        type Case<'a> = (Vec<String>, Vec<String>, bool, Option<&'a str>, &'a str);
        let cases: Vec<Case> = vec![
            (
                vec![],
                vec![a.clone()],
                true,
                Some(&a),
                "the only listed one",
            ),
            (
                vec![],
                vec![a.clone(), b.clone()],
                true,
                Some(&b),
                "the listed default",
            ),
            (
                vec![],
                vec![a.clone(), gone.clone()],
                true,
                None,
                "several, no listed default",
            ),
            (
                vec![a.clone()],
                vec![a.clone()],
                true,
                Some(&a),
                "named and listed",
            ),
            (
                vec!["HTTPS://A.example.com/mcp".into()],
                vec![a.clone()],
                true,
                Some(&a),
                "normalized",
            ),
            (
                vec![b.clone()],
                vec![a.clone()],
                true,
                None,
                "registered but not listed",
            ),
            (
                vec![gone.clone()],
                vec![gone.clone()],
                true,
                None,
                "listed but since deleted",
            ),
            (
                vec![gone.clone()],
                vec![gone.clone()],
                false,
                Some(&gone),
                "development: listed",
            ),
            (
                vec![a.clone(), b.clone()],
                vec![a.clone(), b.clone()],
                true,
                None,
                "two at once",
            ),
        ];
        for (requested, listed, with_registered, want, why) in cases {
            let registered = if with_registered { reg.as_slice() } else { &[] };
            match (resolve_listed(&requested, &listed, registered, true), want) {
                (Ok((r, _)), Some(w)) => assert_eq!(r.as_str(), w, "{why}"),
                (Err(e), None) => assert_eq!(e.code(), "invalid_target", "{why}"),
                (got, _) => panic!("{why}: {got:?}"),
            }
        }
    }

    #[test]
    fn the_metadata_document_never_lists_offline_access() {
        let r = Resource::parse("https://mcp.example.com/mcp").expect("valid");
        let doc = r.metadata_document("https://as.example.com", &["mcp:tools", "offline_access"]);
        assert_eq!(doc["scopes_supported"], serde_json::json!(["mcp:tools"]));
        let doc = r.metadata_document("https://as.example.com", &["offline_access"]);
        assert!(doc.get("scopes_supported").is_none(), "{doc}");
    }

    #[test]
    fn the_metadata_location_follows_rfc_9728() {
        for (resource, path, url) in [
            (
                "https://mcp.example.com",
                "/.well-known/oauth-protected-resource",
                "https://mcp.example.com/.well-known/oauth-protected-resource",
            ),
            (
                "https://mcp.example.com/mcp",
                "/.well-known/oauth-protected-resource/mcp",
                "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
            ),
            (
                "https://mcp.example.com/mcp/",
                "/.well-known/oauth-protected-resource/mcp/",
                "https://mcp.example.com/.well-known/oauth-protected-resource/mcp/",
            ),
            (
                "https://mcp.example.com:8443/a/b?tenant=1",
                "/.well-known/oauth-protected-resource/a/b",
                "https://mcp.example.com:8443/.well-known/oauth-protected-resource/a/b?tenant=1",
            ),
        ] {
            let r = Resource::parse(resource).expect("resource");
            assert_eq!(
                r.metadata_location(),
                (path.to_owned(), url.to_owned()),
                "{resource}"
            );
        }
    }

    use super::*;

    #[test]
    fn normalizes_scheme_and_host_but_keeps_the_path() {
        let cases = [
            ("HTTPS://MCP.Example.COM/Mcp", "https://mcp.example.com/Mcp"),
            ("https://mcp.example.com", "https://mcp.example.com"),
            ("https://mcp.example.com/", "https://mcp.example.com"),
            (
                "https://mcp.example.com/?v=1",
                "https://mcp.example.com/?v=1",
            ),
            (
                "https://mcp.example.com/mcp/",
                "https://mcp.example.com/mcp/",
            ),
            (
                "https://mcp.example.com:443/mcp",
                "https://mcp.example.com/mcp",
            ),
            ("http://localhost:3000/mcp", "http://localhost:3000/mcp"),
        ];
        for (input, want) in cases {
            assert_eq!(
                Resource::parse(input).expect(input).as_str(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn a_host_only_resource_is_one_resource_with_or_without_its_slash() {
        assert!(same("https://h.example", "https://h.example/"));
        assert!(same("https://h.example/", "https://h.example/"));
        assert!(!same("https://h.example/mcp", "https://h.example/mcp/"));
        assert!(!same("https://h.example/?a", "https://h.example?a"));
        assert!(!same("https://h.example", "https://g.example/"));
        assert_eq!(
            Resource::from_stored("https://h.example/".into()).as_str(),
            "https://h.example"
        );
        assert_eq!(
            Resource::from_stored("https://h.example/mcp/".into()).as_str(),
            "https://h.example/mcp/"
        );
    }

    #[test]
    fn rejects_fragments_relative_and_plain_http() {
        for bad in [
            "https://mcp.example.com/mcp#x",
            "/mcp",
            "http://mcp.example.com/mcp",
            "urn:x:y",
        ] {
            assert_eq!(
                Resource::parse(bad).expect_err(bad).code(),
                "invalid_target",
                "{bad}"
            );
        }
    }

    /// `resolve_listed` takes a requested resource byte-equal to a registered or a listed one
    /// as it is, without parsing it. That is sound only if every normal form is its own normal form:
    /// then the fast path and `parse` give the same audience for every input, and an input
    /// that differs in any byte (case, port, slash, fragment, spaces, Unicode) is parsed.
    #[test]
    fn a_normal_form_parses_to_itself_so_the_stored_fast_paths_agree_with_parsing() {
        let inputs = [
            "https://mcp.example.com/mcp",
            "HTTPS://MCP.Example.COM:443/mcp",
            "https://mcp.example.com/",
            "https://mcp.example.com",
            "https://mcp.example.com/mcp/",
            "https://mcp.example.com/?",
            "https://mcp.example.com?v=1",
            "https://mcp.example.com/a/./b/../c",
            "https://mcp.example.com/a/%2e%2E/c",
            "https://mcp.example.com\\mcp",
            "https://mcp.example.com/m\tcp",
            "https://mcp.example.com/m cp?q=a b",
            "https://b\u{fc}cher.example/mcp",
            "https://xn--bcher-kva.example/mcp",
            "https://mcp.example.com./mcp",
            "https://[::1]:8443/mcp",
            "https://127.0.0.1/mcp",
            "https://0x7f.1/mcp",
            "https://mcp.example.com/%7Euser/caf\u{e9}",
            "https://mcp.example.com//mcp",
            "http://LOCALHOST:80/mcp",
            "http://[::1]/",
            " https://mcp.example.com/mcp ",
        ];
        for input in inputs {
            let normal = Resource::parse(input).expect(input);
            let again = Resource::parse(normal.as_str());
            assert_eq!(again.ok(), Some(normal.clone()), "{input} -> {normal:?}");
            let registered = [ProtectedResource {
                resource: normal.clone(),
                scopes: None,
                is_default: false,
                implies: Default::default(),
            }];
            let listed = [normal.as_str().to_owned()];
            for requested in [input, normal.as_str()] {
                let (by_listing, _) =
                    resolve_listed(&[requested.to_owned()], &listed, &registered, false)
                        .expect(requested);
                let (by_parsing, _) =
                    resolve(&[requested.to_owned()], &registered, false, "x").expect(requested);
                assert_eq!(by_listing, by_parsing, "{requested}");
                assert_eq!(by_listing, normal, "{requested}");
                // With nothing registered (development), the fast path is the listing's.
                let (open, _) =
                    resolve_listed(&[requested.to_owned()], &listed, &[], true).expect(requested);
                assert_eq!(open, normal, "{requested}");
            }
        }
        // What parsing refuses is refused, even next to a registered resource it resembles.
        let registered = [ProtectedResource {
            resource: Resource::parse("https://mcp.example.com/mcp").expect("valid"),
            scopes: None,
            is_default: false,
            implies: Default::default(),
        }];
        let listed = ["https://mcp.example.com/mcp".to_owned()];
        for bad in [
            "https://mcp.example.com/mcp#",
            "https://mcp.example.com/mcp#frag",
            "https://user@mcp.example.com/mcp",
            "http://mcp.example.com/mcp",
            "https://mcp.example.com/MCP",
            "https://mcp.example.com/mcp/",
        ] {
            for registered in [&registered[..], &[]] {
                let err =
                    resolve_listed(&[bad.to_owned()], &listed, registered, true).expect_err(bad);
                assert_eq!(err.code(), "invalid_target", "{bad}");
            }
        }
    }

    #[test]
    fn registered_resources_restrict_the_audience() {
        let reg = vec![
            ProtectedResource {
                resource: Resource::parse("https://a.example.com/mcp").expect("valid"),
                scopes: None,
                is_default: false,
                implies: Default::default(),
            },
            ProtectedResource {
                resource: Resource::parse("https://b.example.com/mcp").expect("valid"),
                scopes: None,
                is_default: true,
                implies: Default::default(),
            },
        ];
        let (r, _) = resolve(&[], &reg, false, "http://issuer").expect("default");
        assert_eq!(r.as_str(), "https://b.example.com/mcp");
        let (r, _) =
            resolve(&["https://A.example.com/mcp".into()], &reg, false, "x").expect("named");
        assert_eq!(r.as_str(), "https://a.example.com/mcp");
        let err =
            resolve(&["https://c.example.com/mcp".into()], &reg, false, "x").expect_err("unknown");
        assert_eq!(err.code(), "invalid_target");
        let err = resolve(
            &[
                "https://a.example.com/mcp".into(),
                "https://b.example.com/mcp".into(),
            ],
            &reg,
            false,
            "x",
        )
        .expect_err("two");
        assert_eq!(err.code(), "invalid_target");
    }

    #[test]
    fn without_registered_resources_any_valid_one_is_accepted_in_development_only() {
        let x = ["https://x.example.com/mcp".to_owned()];
        let (r, _) = resolve(&x, &[], true, "http://localhost:8080").expect("ok");
        assert_eq!(r.as_str(), "https://x.example.com/mcp");
        let (r, _) = resolve(&[], &[], true, "http://localhost:8080").expect("fallback");
        assert_eq!(r.as_str(), "http://localhost:8080");
        // Production: the last resource deleted while serving leaves no audience to give.
        for requested in [&x[..], &[]] {
            let err = resolve(requested, &[], false, "http://localhost:8080").expect_err("closed");
            assert_eq!(err.code(), "invalid_target");
            let err = resolve_listed(requested, &x, &[], false).expect_err("closed");
            assert_eq!(err.code(), "invalid_target");
        }
    }
}
