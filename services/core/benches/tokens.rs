//! Minting and verifying an access token: the two costs on every token request and every
//! resource-server check. Run with `cargo bench -p latchkey-core --bench tokens`.

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use latchkey_core::keys::{self, KeyRing};
use latchkey_core::token::{self, AccessTokenClaims};
use std::hint::black_box;

fn claims() -> AccessTokenClaims {
    let now = Utc::now().timestamp();
    AccessTokenClaims {
        iss: "http://localhost:8080".into(),
        sub: "6b0c3c8e-8a4d-4d55-9d8e-0d3f3e0a1b2c".into(),
        aud: "https://mcp.example.com/mcp".into(),
        client_id: "041obFvgookzmpCv42i6SA".into(),
        scope: "mcp:prompts mcp:resources mcp:tools".into(),
        iat: now,
        exp: now + 3600,
        jti: "Zk3q9aQ0cHhUe1l4bW9kZQ".into(),
        sid: Some("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into()),
        nbf: None,
    }
}

fn bench(c: &mut Criterion) {
    let ring =
        KeyRing::new(&[keys::generate(Utc::now(), Utc::now(), None).expect("key")]).expect("ring");
    let claims = claims();
    c.bench_function("mint_access_token", |b| {
        b.iter(|| token::mint(&ring, black_box(&claims)).expect("mint"))
    });
    let jwt = token::mint(&ring, &claims).expect("mint");
    c.bench_function("verify_access_token", |b| {
        b.iter(|| {
            token::verify(
                &ring,
                black_box(&jwt),
                "http://localhost:8080",
                Utc::now().timestamp(),
                5,
            )
            .expect("verify")
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
