//! HTTP Basic client credentials (RFC 6749 §2.3.1), read the same way at both edges that
//! accept them: the gateway's `Authorization` header and the gRPC `authorization` metadata.
//!
//! RFC 6749 §2.3.1: the client identifier and the secret are each encoded with the
//! `application/x-www-form-urlencoded` algorithm before they are joined with a colon, so each
//! part is percent-decoded (and `+` is a space). Nothing else in a part is special: in
//! particular `&` and `=` are ordinary characters, never separators.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Why a `Basic` value could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasicError {
    /// Another scheme, such as `Bearer`.
    NotBasic,
    /// Bad base64, no colon, or a part that is not UTF-8 once decoded.
    Malformed,
}

/// Decodes the value of an `Authorization` header or metadata entry as `Basic` credentials.
pub fn decode_basic(value: &str) -> Result<(String, String), BasicError> {
    let (scheme, encoded) = value.split_once(' ').ok_or(BasicError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(BasicError::NotBasic);
    }
    let encoded = encoded.trim();
    // Decoded on the stack when it fits (every credential of ours does), on the heap otherwise
    // (a Client ID Metadata Document URL may be 2,048 characters).
    let mut stack = [0u8; 384];
    let heap;
    let decoded: &[u8] = match STANDARD.decode_slice(encoded, &mut stack) {
        Ok(n) => &stack[..n],
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            heap = STANDARD
                .decode(encoded)
                .map_err(|_| BasicError::Malformed)?;
            &heap
        }
        Err(base64::DecodeSliceError::DecodeError(_)) => return Err(BasicError::Malformed),
    };
    let decoded = std::str::from_utf8(decoded).map_err(|_| BasicError::Malformed)?;
    let (id, secret) = decoded.split_once(':').ok_or(BasicError::Malformed)?;
    Ok((form_decode(id)?, form_decode(secret)?))
}

/// Encodes credentials for a `Basic` value, the inverse of [`decode_basic`].
pub fn encode_basic(client_id: &str, client_secret: &str) -> String {
    let part = |s: &str| percent_encoding::utf8_percent_encode(s, FORM).to_string();
    let joined = format!("{}:{}", part(client_id), part(client_secret));
    format!("Basic {}", STANDARD.encode(joined))
}

/// Everything but the characters the form encoding leaves alone (`*-._` and alphanumerics).
const FORM: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

fn form_decode(part: &str) -> Result<String, BasicError> {
    // Most credentials are plain (ours are base64url): nothing to decode, one copy.
    if !part.contains(['+', '%']) {
        return Ok(part.to_owned());
    }
    let spaced = part.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| BasicError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    #[test]
    fn each_part_is_percent_decoded_and_nothing_else_is_special() {
        let cases = [
            ("my%20id:s%3Acret+x", ("my id", "s:cret x")),
            // `&` and `=` are data, not query separators.
            ("id&junk:secret", ("id&junk", "secret")),
            ("id=1:sec=ret&a=b", ("id=1", "sec=ret&a=b")),
            ("id:", ("id", "")),
            ("id:a:b", ("id", "a:b")),
            ("%00id:x", ("\0id", "x")),
        ];
        for (raw, (id, secret)) in cases {
            assert_eq!(
                decode_basic(&basic(raw)),
                Ok((id.to_owned(), secret.to_owned())),
                "{raw}"
            );
        }
    }

    #[test]
    fn malformed_values_are_refused() {
        let cases = [
            ("Basic !!!", BasicError::Malformed, "not base64"),
            ("Bearer abc", BasicError::NotBasic, "another scheme"),
            ("Basic", BasicError::Malformed, "no credentials"),
        ];
        for (value, want, why) in cases {
            assert_eq!(decode_basic(value), Err(want), "{why}");
        }
        assert_eq!(
            decode_basic(&basic("no-colon")),
            Err(BasicError::Malformed),
            "no colon"
        );
        assert_eq!(
            decode_basic(&basic("%FF:x")),
            Err(BasicError::Malformed),
            "not UTF-8 once decoded"
        );
    }

    #[test]
    fn encoding_round_trips() {
        // The last is longer than the stack buffer decoding starts with: a Client ID Metadata
        // Document URL of the longest length a client id may have.
        let long_id = format!("https://client.example/{}", "a".repeat(2048 - 23));
        for (id, secret) in [
            ("a b", "c:d+e%f"),
            ("plain", "Zm9v_-.~"),
            ("ü", "&="),
            (long_id.as_str(), "s"),
        ] {
            assert_eq!(
                decode_basic(&encode_basic(id, secret)),
                Ok((id.to_owned(), secret.to_owned()))
            );
        }
        // Bytes that are not UTF-8 are refused whichever buffer they were decoded into.
        for len in [10, 2000] {
            let mut raw = vec![b'a'; len];
            raw.extend_from_slice(b":\xff");
            raw[0] = 0xff;
            let value = format!("Basic {}", STANDARD.encode(&raw));
            assert_eq!(decode_basic(&value), Err(BasicError::Malformed), "{len}");
        }
    }
}
