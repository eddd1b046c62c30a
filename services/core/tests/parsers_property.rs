//! Property tests of the core's parsers of untrusted input, and of Basic credentials as both
//! edges read them: none panics on any input (NUL, control characters and any Unicode
//! included), and what they accept means what it says. `LATCHKEY_PROPTEST_CASES` sets the
//! cases per property (default 256).

use latchkey_core::redirect_uri::{find_match, validate_for_registration};
use latchkey_core::scope::ScopeSet;
use latchkey_proto::credentials::{decode_basic, encode_basic};
use proptest::prelude::*;
use proptest::test_runner::Config;

fn config() -> Config {
    Config {
        cases: std::env::var("LATCHKEY_PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..Config::default()
    }
}

/// URI-ish text: mostly shaped like a redirect URI, with hostile characters mixed in.
fn uri_like() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (
            prop::sample::select(&["https://", "http://", "com.example.app:/", "javascript:", "http://127.0.0.1:", "http://[::1]:", "http://localhost:", ""][..]),
            "[a-zA-Z0-9.:/@%#?&=\\[\\]\\\\ \\x00\\t\\n-]{0,40}",
        )
            .prop_map(|(a, b)| format!("{a}{b}")),
        1 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_redirect_uri_accepted_at_registration_matches_itself_and_nothing_that_differs_beyond_a_loopback_port(
        uri in uri_like(),
        other in uri_like(),
        public in any::<bool>(),
    ) {
        if let Ok(stored) = validate_for_registration(&uri, public) {
            prop_assert_eq!(&stored, &uri, "stored unchanged");
            prop_assert!(!stored.chars().any(char::is_control), "no control characters stored");
            let registered = vec![stored.clone()];
            prop_assert_eq!(find_match(&registered, &uri), Some(stored.as_str()));
            if let Some(m) = find_match(&registered, &other) {
                // Only the exact string, or the same loopback URI on another port.
                let strip_port = |s: &str| {
                    let mut u = url::Url::parse(s).expect("matched URIs parse");
                    let _ = u.set_port(None);
                    u.to_string()
                };
                prop_assert!(
                    m == other || strip_port(m) == strip_port(&other),
                    "{other:?} matched {m:?}"
                );
                prop_assert!(other.starts_with("http://") || m == other);
            }
        }
    }

    #[test]
    fn a_scope_string_parses_to_nqchar_tokens_and_round_trips(s in "[ -~\\x00-\\x1f\\u{80}-\\u{10ffff}]{0,60}") {
        if let Ok(set) = ScopeSet::parse(&s) {
            for t in set.iter() {
                prop_assert!(!t.is_empty());
                prop_assert!(t.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)), "{t:?}");
            }
            prop_assert_eq!(ScopeSet::parse(&set.to_string()).expect("canonical form parses"), set);
        }
    }

    #[test]
    fn basic_credentials_decode_what_they_encode_and_never_panic_on_junk(
        id in any::<String>(),
        secret in any::<String>(),
        junk in prop::collection::vec(any::<u8>(), 0..120),
    ) {
        prop_assert_eq!(decode_basic(&encode_basic(&id, &secret)), Ok((id, secret)));
        let _ = decode_basic(&String::from_utf8_lossy(&junk));
        use base64::Engine;
        let _ = decode_basic(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(&junk)));
    }
}
