//! Of concurrent redemptions of one code or one refresh token, exactly one wins, on
//! whichever database the suite runs on.

use crate::common::*;
use futures::future::join_all;

const RACERS: usize = 8;

#[tokio::test]
async fn concurrent_code_redemptions_have_exactly_one_winner() {
    let app = spawn_app().await;
    let f = flow(&app).await;
    let form = f.exchange_form();
    let results = join_all((0..RACERS).map(|_| app.token(&form))).await;
    let winners = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(winners, 1, "{results:?}");
    for (s, body) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!((*s, body["error"].as_str()), (400, Some("invalid_grant")));
    }
}

#[tokio::test]
async fn concurrent_refresh_rotations_have_exactly_one_winner() {
    let app = spawn_app().await;
    let f = flow(&app).await;
    let t = f.exchange(&app).await;
    let rt = t["refresh_token"].as_str().expect("rt").to_owned();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt.as_str()),
        ("client_id", f.client_id.as_str()),
    ];
    let results = join_all((0..RACERS).map(|_| app.token(&form))).await;
    let winners = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(winners, 1, "{results:?}");
}
