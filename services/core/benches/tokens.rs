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

/// 32 first-seen tokens checked at once through the signature batch, as under load: compare
/// with 32 times `verify_access_token`'s signature share.
fn batch(c: &mut Criterion) {
    use ed25519_dalek::{Signer, SigningKey};
    use latchkey_core::signature_batch::SignatureBatch;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let key = SigningKey::from_bytes(&rand::random());
    let public = key.verifying_key();
    let signed: Vec<(Vec<u8>, ed25519_dalek::Signature)> = (0..32)
        .map(|i| {
            let m = format!("{i:0>560}").into_bytes();
            let s = key.sign(&m);
            (m, s)
        })
        .collect();
    let batch = std::sync::Arc::new(SignatureBatch::default());
    c.bench_function("check_32_signatures_batched", |b| {
        b.iter(|| {
            rt.block_on(futures_join_all(
                signed.iter().map(|(m, s)| batch.verify(&public, m, s)),
            ))
        })
    });
    c.bench_function("check_32_signatures_one_by_one", |b| {
        use ed25519_dalek::Verifier;
        b.iter(|| {
            signed
                .iter()
                .all(|(m, s)| public.verify(black_box(m), s).is_ok())
        })
    });
}

/// Polls every future in turn on one task, as requests share one core.
async fn futures_join_all<F: std::future::Future<Output = bool>>(
    futures: impl Iterator<Item = F>,
) -> bool {
    let mut pending: Vec<_> = futures.map(Box::pin).collect();
    let mut done = vec![None; pending.len()];
    std::future::poll_fn(|cx| {
        for (i, f) in pending.iter_mut().enumerate() {
            if done[i].is_none()
                && let std::task::Poll::Ready(ok) = f.as_mut().poll(cx)
            {
                done[i] = Some(ok);
            }
        }
        if done.iter().all(Option::is_some) {
            std::task::Poll::Ready(done.iter().all(|d| *d == Some(true)))
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

criterion_group!(benches, bench, batch);
criterion_main!(benches);
