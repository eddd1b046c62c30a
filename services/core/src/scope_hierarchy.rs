//! Scope hierarchies (MCP 2026-07-28): an operator's declaration, on one protected resource,
//! that holding one scope grants others as well (`files:write` grants `files:read`, `admin`
//! grants `files:write` and so, transitively, `files:read`).
//!
//! Where the hierarchy is applied, and why only there: when a token is minted (see
//! [`crate::AuthCore`]'s `token_scope`). The token's `scope` then names every scope it grants,
//! implied ones included, and every verifier makes the same plain check against it
//! ([`crate::token::check_for_resource`]): `VerifyToken`, ForwardAuth through it, and
//! `latchkey-resource-server` in its local mode, which holds the JWKS but no hierarchy.
//! Introspection and the token response report that same `scope`. Applying the hierarchy again
//! at verification would make the remote and local verifiers disagree whenever it changed, and
//! would let a change reach tokens already issued, past what their `scope` says.
//!
//! Nothing here comes from a client: only an operator declares a hierarchy (the CLI, the
//! AdminService, the configuration), and it can name only scopes its resource accepts.

use crate::error::{AuthError, Reason};
use crate::scope::{OFFLINE_ACCESS, ScopeSet};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

/// The most implications (pairs of a scope and one scope it implies) one resource declares.
pub const MAX_IMPLICATIONS: usize = 256;

/// Why a declared hierarchy is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HierarchyFault {
    /// `scope=` with nothing after it.
    ImpliesNothing(String),
    /// A scope the resource does not accept (its own `scopes`, or every scope this server
    /// supports when it lists none). A hierarchy never names more than the operator declared.
    NotAccepted(String),
    /// `offline_access` asks for a refresh token and grants no access: it neither implies nor
    /// is implied, so a hierarchy cannot hand out refresh tokens.
    OfflineAccess,
    /// The implications loop: the path from a scope back to itself.
    Cycle(Vec<String>),
    /// More than [`MAX_IMPLICATIONS`] implications.
    TooMany,
}

impl fmt::Display for HierarchyFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ImpliesNothing(s) => write!(f, "scope implication names nothing for {s}"),
            Self::NotAccepted(s) => write!(
                f,
                "scope implication names a scope the resource does not accept: {s}"
            ),
            Self::OfflineAccess => {
                f.write_str("offline_access cannot imply a scope or be implied by one")
            }
            Self::Cycle(path) => {
                write!(f, "scope implications form a cycle: {}", path.join(" -> "))
            }
            Self::TooMany => write!(
                f,
                "too many scope implications (at most {MAX_IMPLICATIONS})"
            ),
        }
    }
}

fn refused(fault: HierarchyFault) -> AuthError {
    AuthError::InvalidScope(Reason::ScopeHierarchy(fault))
}

/// One resource's scope hierarchy: what the operator declared, and what each scope implies
/// transitively, computed once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeHierarchy {
    /// Each scope and the scopes it implies directly, as declared.
    declared: BTreeMap<String, BTreeSet<String>>,
    /// Each declared scope and every scope it implies, directly or not (never itself).
    implied: BTreeMap<String, BTreeSet<String>>,
}

impl ScopeHierarchy {
    /// Parses and checks an operator's declaration: pairs of a scope and the space-separated
    /// scopes it implies (`("files:write", "files:read")`); a scope may appear in several
    /// pairs. Every scope named must be in `accepted` (the resource's scopes, or every scope
    /// the server supports when the resource lists none); `offline_access` takes no part;
    /// there are at most [`MAX_IMPLICATIONS`] implications; and they form no cycle.
    pub fn declare<'a>(
        declarations: impl IntoIterator<Item = (&'a str, &'a str)>,
        accepted: &ScopeSet,
    ) -> Result<Self, AuthError> {
        let mut declared: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut count = 0usize;
        for (scope, implied) in declarations {
            let scope = single_scope(scope)?;
            let implied = ScopeSet::parse(implied)?;
            if implied.is_empty() {
                return Err(refused(HierarchyFault::ImpliesNothing(scope)));
            }
            for s in std::iter::once(scope.as_str()).chain(implied.iter()) {
                if s == OFFLINE_ACCESS {
                    return Err(refused(HierarchyFault::OfflineAccess));
                }
                if !accepted.contains(s) {
                    return Err(refused(HierarchyFault::NotAccepted(s.to_owned())));
                }
            }
            let entry = declared.entry(scope).or_default();
            for s in implied.iter() {
                if entry.insert(s.to_owned()) {
                    count += 1;
                }
            }
            if count > MAX_IMPLICATIONS {
                return Err(refused(HierarchyFault::TooMany));
            }
        }
        Self::from_declared(declared).map_err(refused)
    }

    /// A hierarchy read back from storage, where it was stored once [`Self::declare`]
    /// accepted it: the structure is checked again (a cycle, `offline_access`, the bound), not
    /// the scopes the resource accepts, which token minting filters by anyway.
    pub fn from_declared(
        declared: BTreeMap<String, BTreeSet<String>>,
    ) -> Result<Self, HierarchyFault> {
        let count: usize = declared.values().map(BTreeSet::len).sum();
        if count > MAX_IMPLICATIONS {
            return Err(HierarchyFault::TooMany);
        }
        for (scope, implied) in &declared {
            if implied.is_empty() {
                return Err(HierarchyFault::ImpliesNothing(scope.clone()));
            }
            if scope == OFFLINE_ACCESS || implied.contains(OFFLINE_ACCESS) {
                return Err(HierarchyFault::OfflineAccess);
            }
        }
        let mut implied = BTreeMap::new();
        for scope in declared.keys() {
            implied.insert(scope.clone(), reachable(&declared, scope)?);
        }
        Ok(Self { declared, implied })
    }

    /// What the operator declared: each scope and the scopes it implies directly.
    pub fn declared(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.declared
    }

    pub fn is_empty(&self) -> bool {
        self.declared.is_empty()
    }

    /// `granted` and every scope its members imply, transitively. An implied scope outside
    /// `accepted` is left out: a hierarchy stored under an earlier configuration never adds a
    /// scope the server or the resource no longer accepts.
    pub fn expand(&self, granted: &ScopeSet, accepted: &ScopeSet) -> ScopeSet {
        let mut out = granted.clone();
        for scope in granted.iter() {
            for s in self.implied.get(scope).into_iter().flatten() {
                if accepted.contains(s) {
                    out = out.with(s);
                }
            }
        }
        out
    }
}

/// One scope token, as `ScopeSet::parse` accepts them.
fn single_scope(s: &str) -> Result<String, AuthError> {
    let set = ScopeSet::parse(s)?;
    let mut it = set.iter();
    match (it.next(), it.next()) {
        (Some(one), None) => Ok(one.to_owned()),
        _ => Err(AuthError::InvalidScope(Reason::Malformed(
            "scope implication: one scope before '='",
        ))),
    }
}

/// Every scope `from` implies, breadth first. Reaching `from` again is a cycle, reported as
/// the shortest path back to it. Each scope is visited once, so this ends after at most
/// as many steps as there are implications.
fn reachable(
    declared: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
) -> Result<BTreeSet<String>, HierarchyFault> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    // Who first led to each scope, to name the cycle's path.
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue: VecDeque<&str> = VecDeque::from([from]);
    while let Some(current) = queue.pop_front() {
        for next in declared.get(current).into_iter().flatten() {
            if next == from {
                // Walk the parents back from `current`; each scope has one, and the walk
                // ends at `from` within as many steps as scopes were seen.
                let mut back = Vec::new();
                let mut at = current;
                while at != from && back.len() <= seen.len() {
                    back.push(at.to_owned());
                    at = parent.get(at).copied().unwrap_or(from);
                }
                let mut path = vec![from.to_owned()];
                path.extend(back.into_iter().rev());
                path.push(from.to_owned());
                return Err(HierarchyFault::Cycle(path));
            }
            if seen.insert(next.clone()) {
                parent.insert(next.as_str(), current);
                queue.push_back(next.as_str());
            }
        }
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCEPTED: &str = "files:read files:write files:delete admin audit";

    fn accepted() -> ScopeSet {
        ScopeSet::parse(ACCEPTED).expect("valid")
    }

    fn set(s: &str) -> ScopeSet {
        ScopeSet::parse(s).expect("valid")
    }

    fn files() -> ScopeHierarchy {
        ScopeHierarchy::declare(
            [("files:write", "files:read"), ("admin", "files:write")],
            &accepted(),
        )
        .expect("a valid hierarchy")
    }

    fn fault(result: Result<ScopeHierarchy, AuthError>, why: &str) -> String {
        match result {
            Ok(h) => panic!("{why}: expected a refusal, got {h:?}"),
            Err(e) => {
                assert_eq!(e.code(), "invalid_scope");
                e.description()
            }
        }
    }

    #[test]
    fn implication_is_transitive() {
        let h = files();
        assert_eq!(
            h.expand(&set("admin"), &accepted()).to_string(),
            "admin files:read files:write"
        );
        assert_eq!(
            h.expand(&set("files:write"), &accepted()).to_string(),
            "files:read files:write"
        );
        assert_eq!(
            h.expand(&set("files:read audit"), &accepted()).to_string(),
            "audit files:read",
            "a scope that implies nothing stays as it is"
        );
        assert_eq!(
            h.expand(&set("files:write offline_access"), &accepted())
                .to_string(),
            "files:read files:write offline_access",
            "offline_access passes through untouched"
        );
    }

    #[test]
    fn a_scope_may_imply_several_and_be_declared_twice() {
        let h = ScopeHierarchy::declare(
            [
                ("admin", "files:write audit"),
                ("admin", "files:delete"),
                ("files:delete", "files:read"),
            ],
            &accepted(),
        )
        .expect("valid");
        assert_eq!(
            h.expand(&set("admin"), &accepted()).to_string(),
            "admin audit files:delete files:read files:write"
        );
        assert_eq!(h.declared()["admin"].len(), 3);
    }

    #[test]
    fn a_cycle_is_refused_and_named() {
        let cases: [(&[(&str, &str)], &str); 4] = [
            (
                &[("files:write", "files:read"), ("files:read", "files:write")],
                "files:read -> files:write -> files:read",
            ),
            (
                &[
                    ("admin", "files:write"),
                    ("files:write", "files:read"),
                    ("files:read", "admin"),
                ],
                "admin -> files:write -> files:read -> admin",
            ),
            (&[("admin", "admin")], "admin -> admin"),
            (
                &[("audit", "files:read"), ("admin", "audit admin")],
                "admin -> admin",
            ),
        ];
        for (declared, path) in cases {
            let d = fault(
                ScopeHierarchy::declare(declared.iter().copied(), &accepted()),
                path,
            );
            assert!(d.contains("cycle"), "{d}");
            assert!(d.contains(path), "{path}: {d}");
        }
    }

    #[test]
    fn a_declaration_naming_a_scope_the_resource_does_not_accept_is_refused() {
        let narrow = set("files:read files:write");
        let cases: [(&str, &str, &str); 4] = [
            ("files:write", "files:delete", "files:delete"),
            ("admin", "files:write", "admin"),
            ("files:write", "files:read mcp:tools", "mcp:tools"),
            ("files:write", "files:read", ""),
        ];
        for (scope, implied, unknown) in cases {
            let got = ScopeHierarchy::declare([(scope, implied)], &narrow);
            if unknown.is_empty() {
                assert!(got.is_ok(), "{scope}={implied}");
                continue;
            }
            let d = fault(got, unknown);
            assert!(
                d.contains("does not accept") && d.ends_with(unknown),
                "{scope}={implied}: {d}"
            );
        }
    }

    #[test]
    fn offline_access_takes_no_part_in_a_hierarchy() {
        let with_offline = accepted().with(OFFLINE_ACCESS);
        for (scope, implied) in [("admin", "offline_access"), ("offline_access", "admin")] {
            let d = fault(
                ScopeHierarchy::declare([(scope, implied)], &with_offline),
                scope,
            );
            assert!(d.contains("offline_access"), "{scope}={implied}: {d}");
        }
    }

    #[test]
    fn malformed_declarations_are_refused() {
        for (scope, implied, why) in [
            ("files:write", "", "implies nothing"),
            ("files:write", "   ", "implies only spaces"),
            ("files:write admin", "files:read", "two scopes before ="),
            ("", "files:read", "no scope before ="),
            ("files:write", "files:\"read", "a quote in a scope"),
        ] {
            fault(
                ScopeHierarchy::declare([(scope, implied)], &accepted()),
                why,
            );
        }
    }

    #[test]
    fn a_hierarchy_is_bounded() {
        let many: Vec<String> = (0..=MAX_IMPLICATIONS).map(|i| format!("s{i}")).collect();
        let accepted = ScopeSet::parse(&many.join(" ")).expect("valid").with("top");
        let decls: Vec<(&str, &str)> = many.iter().map(|s| ("top", s.as_str())).collect();
        let d = fault(
            ScopeHierarchy::declare(decls.iter().copied(), &accepted),
            "one past the bound",
        );
        assert!(d.contains("too many"), "{d}");
        let fits = &decls[..MAX_IMPLICATIONS];
        assert!(ScopeHierarchy::declare(fits.iter().copied(), &accepted).is_ok());
    }

    #[test]
    fn expansion_adds_only_what_is_still_accepted() {
        let h = files();
        let now = set("files:write admin");
        assert_eq!(
            h.expand(&set("admin"), &now).to_string(),
            "admin files:write",
            "files:read is no longer accepted, so it is not added"
        );
    }

    #[test]
    fn a_stored_hierarchy_is_checked_again_for_its_structure() {
        let mut cyclic = BTreeMap::new();
        cyclic.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
        cyclic.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
        assert!(matches!(
            ScopeHierarchy::from_declared(cyclic),
            Err(HierarchyFault::Cycle(_))
        ));
        let round = ScopeHierarchy::from_declared(files().declared().clone()).expect("valid");
        assert_eq!(round, files());
    }
}
