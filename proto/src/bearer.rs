//! Bearer tokens at an HTTP edge (RFC 6750), read and refused the same way wherever a
//! request carries one: ForwardAuth in the gateway and `latchkey-resource-server`. Whether the
//! token is good is the AuthService's (or the core's) decision; this is only the header.

/// More than one `Authorization` field in one request (RFC 6750 §3.1 `invalid_request`): a
/// proxy and the backend could otherwise read different tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepeatedAuthorization;

/// RFC 6750 §2.1: the token of the request's `Authorization` fields (each `None` when it is
/// not text), from that header only, and from exactly one such header.
pub fn token<'a>(
    fields: impl IntoIterator<Item = Option<&'a str>>,
) -> Result<Option<&'a str>, RepeatedAuthorization> {
    let mut fields = fields.into_iter();
    let Some(first) = fields.next() else {
        return Ok(None);
    };
    if fields.next().is_some() {
        return Err(RepeatedAuthorization);
    }
    Ok(first
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty()))
}

/// A `WWW-Authenticate: Bearer` challenge (RFC 6750 §3, RFC 9728 §5.1).
#[derive(Debug, Default, Clone, Copy)]
pub struct Challenge<'a> {
    pub realm: Option<&'a str>,
    /// Where the resource's RFC 9728 metadata is, for MCP clients to discover the server.
    pub resource_metadata: Option<&'a str>,
    /// The RFC 6750 §3.1 code; none when the request had no credentials.
    pub error: Option<&'a str>,
    pub error_description: Option<&'a str>,
    /// Every scope the operation needs, space-separated. `offline_access` is left out: it
    /// names no access to a resource, and MCP (2026-07-28) keeps it out of challenges.
    pub scope: Option<&'a str>,
}

impl Challenge<'_> {
    /// The header value. Quoted values keep only printable ASCII without quotes or
    /// backslashes, so nothing a client sent can break out of its parameter.
    pub fn header_value(&self) -> String {
        let mut parts = Vec::new();
        let mut param = |name: &str, v: &str| parts.push(format!("{name}=\"{}\"", quoted(v)));
        if let Some(r) = self.realm {
            param("realm", r);
        }
        if let Some(m) = self.resource_metadata.filter(|m| !m.is_empty()) {
            param("resource_metadata", m);
        }
        if let Some(code) = self.error {
            param("error", code);
        }
        if let Some(description) = self.error_description {
            param("error_description", description);
        }
        if let Some(s) = self.scope {
            let s: Vec<&str> = s
                .split(' ')
                .filter(|t| !t.is_empty() && *t != "offline_access")
                .collect();
            if !s.is_empty() {
                param("scope", &s.join(" "));
            }
        }
        format!("Bearer {}", parts.join(", "))
    }
}

fn quoted(v: &str) -> String {
    v.chars()
        .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_one_bearer_authorization_field() {
        /// (the request's Authorization fields, what is read, why)
        type Case<'a> = (
            &'a [Option<&'a str>],
            Result<Option<&'a str>, RepeatedAuthorization>,
            &'a str,
        );
        let cases: &[Case] = &[
            (&[], Ok(None), "no header"),
            (&[Some("Bearer abc")], Ok(Some("abc")), "bearer"),
            (
                &[Some("bearer  abc ")],
                Ok(Some("abc")),
                "scheme is case-insensitive",
            ),
            (&[Some("Basic abc")], Ok(None), "another scheme"),
            (&[Some("Bearer ")], Ok(None), "empty token"),
            (&[None], Ok(None), "not text"),
            (
                &[Some("Bearer a"), Some("Bearer b")],
                Err(RepeatedAuthorization),
                "two fields",
            ),
        ];
        for (fields, want, why) in cases {
            assert_eq!(token(fields.iter().copied()), *want, "{why}");
        }
    }

    #[test]
    fn challenges_quote_safely_and_leave_out_what_is_absent() {
        let c = Challenge {
            realm: Some("latchkey"),
            resource_metadata: Some("https://mcp.example.com/.well-known/oauth-protected-resource"),
            error: Some("invalid_token"),
            error_description: Some("bad \"sig\"\\"),
            scope: Some("mcp:tools"),
        };
        assert_eq!(
            c.header_value(),
            "Bearer realm=\"latchkey\", resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource\", error=\"invalid_token\", error_description=\"bad sig\", scope=\"mcp:tools\""
        );
        for (scope, header) in [
            ("", "Bearer "),
            ("offline_access", "Bearer "),
            (
                "mcp:tools offline_access  mcp:prompts",
                "Bearer scope=\"mcp:tools mcp:prompts\"",
            ),
        ] {
            let c = Challenge {
                scope: Some(scope),
                ..Default::default()
            };
            assert_eq!(c.header_value(), header, "{scope:?}");
        }
    }
}
