//! The caching headers of a response and how long it stays fresh (RFC 9111 §4.2). Storing
//! documents, and bounding their lifetime, is the cache's business, not this crate's.

use std::time::{Duration, SystemTime};

/// The headers a cache needs, as the server sent them (absent when missing or not text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheHeaders {
    /// Every `Cache-Control` field line, joined with `, `.
    pub cache_control: Option<String>,
    pub expires: Option<String>,
    pub age: Option<String>,
    pub date: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// How long a response may be used without asking the server again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// `Cache-Control: no-store`: the server asks that it not be kept.
    NoStore,
    /// Fresh for this long from now; zero when stale already (`no-cache`, an `Expires` in the
    /// past or unreadable, an `Age` past `max-age`).
    Fresh(Duration),
    /// The server said nothing; the cache chooses.
    Unspecified,
}

/// RFC 9111 §1.2.2: a delta-seconds too large to hold is taken as 2^31 seconds.
const DELTA_SECONDS_CAP: u64 = 1 << 31;

impl CacheHeaders {
    /// The freshness of the response, received at `now`.
    ///
    /// `no-store` wins, then `no-cache`, then `max-age` (RFC 9111 §5.2.2.1), then `Expires`
    /// less `Date` (§5.3; the server's clock on both sides, so a skewed clock here does not
    /// matter). The age taken off is the `Age` header only: `now - Date` would mix two
    /// clocks. `s-maxage` and `private` are for shared caches serving many users; Latchkey's
    /// cache serves only Latchkey, so they are not read.
    pub fn freshness(&self, now: SystemTime) -> Freshness {
        let directives = self
            .cache_control
            .as_deref()
            .map(parse_cache_control)
            .unwrap_or_default();
        let has = |name: &str| directives.iter().any(|(n, _)| n == name);
        if has("no-store") {
            return Freshness::NoStore;
        }
        if has("no-cache") {
            return Freshness::Fresh(Duration::ZERO);
        }
        let age = self
            .age
            .as_deref()
            .and_then(delta_seconds)
            .unwrap_or(Duration::ZERO);

        let max_ages: Vec<_> = directives.iter().filter(|(n, _)| n == "max-age").collect();
        let lifetime = match max_ages.as_slice() {
            // A missing or repeated value makes max-age invalid, and an invalid one stale.
            [(_, Some(v))] => delta_seconds(v).unwrap_or(Duration::ZERO),
            [_, ..] => Duration::ZERO,
            [] => match &self.expires {
                None => return Freshness::Unspecified,
                Some(expires) => match httpdate::parse_http_date(expires) {
                    // §5.3: an invalid Expires, such as "0", means already expired.
                    Err(_) => Duration::ZERO,
                    Ok(expires) => {
                        let date = self
                            .date
                            .as_deref()
                            .and_then(|d| httpdate::parse_http_date(d).ok())
                            .unwrap_or(now);
                        expires.duration_since(date).unwrap_or(Duration::ZERO)
                    }
                },
            },
        };
        Freshness::Fresh(lifetime.saturating_sub(age))
    }
}

/// RFC 9111 §1.2.2 delta-seconds; a quoted value is accepted (§5.2: recipients should).
fn delta_seconds(value: &str) -> Option<Duration> {
    let digits = value.trim().trim_matches('"');
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs = digits.parse::<u64>().unwrap_or(DELTA_SECONDS_CAP);
    Some(Duration::from_secs(secs.min(DELTA_SECONDS_CAP)))
}

/// `Cache-Control` directives as lower-case names with their raw values.
fn parse_cache_control(value: &str) -> Vec<(String, Option<String>)> {
    value
        .split(',')
        .filter_map(|d| {
            let d = d.trim();
            if d.is_empty() {
                return None;
            }
            Some(match d.split_once('=') {
                Some((n, v)) => (n.trim().to_ascii_lowercase(), Some(v.trim().to_owned())),
                None => (d.to_ascii_lowercase(), None),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        httpdate::parse_http_date(s).expect("test date")
    }

    fn headers(cc: Option<&str>, expires: Option<&str>, age: Option<&str>) -> CacheHeaders {
        CacheHeaders {
            cache_control: cc.map(str::to_owned),
            expires: expires.map(str::to_owned),
            age: age.map(str::to_owned),
            date: Some("Tue, 01 Jul 2025 12:00:00 GMT".to_owned()),
            ..CacheHeaders::default()
        }
    }

    #[test]
    fn freshness_follows_cache_control_then_expires() {
        let now = at("Tue, 01 Jul 2025 12:00:30 GMT");
        let secs = |s| Freshness::Fresh(Duration::from_secs(s));
        let in_an_hour = Some("Tue, 01 Jul 2025 13:00:00 GMT");
        // (Cache-Control, Expires, Age, expected, what the case shows)
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Freshness,
            &'a str,
        );
        let cases: &[Case] = &[
            (None, None, None, Freshness::Unspecified, "nothing said"),
            (Some("max-age=600"), None, None, secs(600), "max-age"),
            (
                Some("public, MAX-AGE=\"600\""),
                None,
                None,
                secs(600),
                "quoted, any case",
            ),
            (
                Some("max-age=600"),
                None,
                Some("100"),
                secs(500),
                "Age taken off",
            ),
            (
                Some("max-age=600"),
                None,
                Some("900"),
                secs(0),
                "older than max-age",
            ),
            (
                Some("max-age=600"),
                None,
                Some("x"),
                secs(600),
                "bad Age ignored",
            ),
            (
                Some("max-age=abc"),
                None,
                None,
                secs(0),
                "invalid max-age is stale",
            ),
            (
                Some("max-age=1, max-age=2"),
                None,
                None,
                secs(0),
                "repeated max-age",
            ),
            (
                Some("max-age"),
                None,
                None,
                secs(0),
                "max-age without a value",
            ),
            (
                Some("max-age=99999999999999999999"),
                None,
                None,
                secs(1 << 31),
                "capped",
            ),
            (
                Some("no-store, max-age=600"),
                None,
                None,
                Freshness::NoStore,
                "no-store",
            ),
            (Some("no-cache"), in_an_hour, None, secs(0), "no-cache"),
            (
                Some("max-age=60"),
                in_an_hour,
                None,
                secs(60),
                "max-age beats Expires",
            ),
            (
                Some("public"),
                in_an_hour,
                None,
                secs(3600),
                "Expires less Date",
            ),
            (
                None,
                in_an_hour,
                Some("600"),
                secs(3000),
                "Expires less Age",
            ),
            (None, Some("0"), None, secs(0), "invalid Expires is expired"),
            (
                None,
                Some("Tue, 01 Jul 2025 11:00:00 GMT"),
                None,
                secs(0),
                "past",
            ),
        ];
        for (cc, expires, age, want, what) in cases {
            assert_eq!(headers(*cc, *expires, *age).freshness(now), *want, "{what}");
        }
    }

    #[test]
    fn expires_without_a_date_counts_from_now() {
        let now = at("Tue, 01 Jul 2025 12:30:00 GMT");
        let h = CacheHeaders {
            expires: Some("Tue, 01 Jul 2025 13:00:00 GMT".to_owned()),
            ..CacheHeaders::default()
        };
        assert_eq!(
            h.freshness(now),
            Freshness::Fresh(Duration::from_secs(1800))
        );
    }
}
