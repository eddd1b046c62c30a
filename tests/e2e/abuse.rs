//! The abuse suite: what a hostile caller gets from volume and concurrency.
//!
//! Concurrent guessing: attempts are counted before their password is checked, so a burst of
//! wrong passwords gets at most the lockout's threshold of checks, and a right password that
//! arrives once the lock is earned is refused. A lock earned from one network does not lock
//! the owner out on another; failures from many networks slow the whole account, for a
//! bounded time. The per-address rate limits are off here, so that what holds is the lockout.
//! With `LATCHKEY_TEST_REDIS_URL` set, the counters and sessions live in Redis.
//!
//! Each client network is a loopback address of its own: Linux routes all of 127.0.0.0/8 to
//! the loopback interface, so a browser bound to 127.0.0.2 reaches the gateway on 127.0.0.1
//! as another client.

use crate::common::*;
use latchkey::Settings;
use reqwest::redirect::Policy;
use std::net::IpAddr;
use std::time::Duration;

const CALLBACK: &str = "http://127.0.0.1:7777/callback";
const WRONG: &str = "wrong password";

/// Per-address rate limits off; Redis when the suite has one.
fn unthrottled(s: &mut Settings) {
    s.redis_url = test_redis_url();
    s.rate_limit_login_per_min = 0;
    s.rate_limit_authorize_per_min = 0;
}

fn fresh_email() -> String {
    format!("{}@example.com", uuid::Uuid::new_v4().simple())
}

/// A login form, opened on a fresh authorization by a browser at `from`.
#[derive(Clone)]
struct LoginForm {
    browser: reqwest::Client,
    csrf: String,
    url: String,
}

async fn login_form(app: &TestApp, client_id: &str, from: &str) -> LoginForm {
    let browser = reqwest::Client::builder()
        .redirect(Policy::none())
        .cookie_store(true)
        .local_address(from.parse::<IpAddr>().expect("an IP address"))
        .build()
        .expect("client");
    let p = pkce();
    let page = authorize(app, &browser, &auth_params(client_id, CALLBACK, &p)).await;
    assert_eq!(page.status(), 200, "the login page");
    let html = page.text().await.expect("html");
    LoginForm {
        browser,
        csrf: csrf(&html),
        url: app.url("/authorize/login"),
    }
}

/// What a sign-in came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// The consent page: signed in.
    SignedIn,
    /// "Invalid email or password.": the password was checked.
    Failed,
    /// "Too many failed sign-in attempts": refused unchecked.
    Locked,
    /// Anything else, by status.
    Other(u16),
}

impl LoginForm {
    async fn submit(self, email: String, password: String) -> Answer {
        let res = self
            .browser
            .post(&self.url)
            .form(&[
                ("csrf_token", self.csrf.as_str()),
                ("email", email.as_str()),
                ("password", password.as_str()),
            ])
            .send()
            .await
            .expect("POST /authorize/login");
        let status = res.status().as_u16();
        let html = res.text().await.expect("html");
        match status {
            200 if html.contains("name=\"decision\"") => Answer::SignedIn,
            401 if html.contains("Invalid email or password.") => Answer::Failed,
            401 if html.contains("Too many failed sign-in attempts") => Answer::Locked,
            s => Answer::Other(s),
        }
    }
}

/// Signs in as `email` from `from`, on a fresh authorization.
async fn sign_in(
    app: &TestApp,
    client_id: &str,
    from: &str,
    email: &str,
    password: &str,
) -> Answer {
    login_form(app, client_id, from)
        .await
        .submit(email.to_owned(), password.to_owned())
        .await
}

/// Polls `cond` every 5 ms until it holds, for at most 30 s.
async fn until(mut cond: impl FnMut() -> bool) {
    for _ in 0..6000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the condition did not hold within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_wrong_passwords_get_at_most_the_threshold_of_checks_and_a_right_one_inside_the_burst_is_refused()
 {
    let threshold = 5;
    let app = spawn_app_with(|s| {
        unthrottled(s);
        s.lockout_threshold = threshold;
    })
    .await;
    let email = fresh_email();
    app.add_user(&email).await;
    let client_id = app.public_client(CALLBACK).await;
    // Separate authorizations, as an attacker would use to get past the per-session limit.
    let mut forms = Vec::new();
    for _ in 0..51 {
        forms.push(login_form(&app, &client_id, "127.0.0.1").await);
    }
    let owner_form = forms.pop().expect("51 forms");
    let checks_before = app.core().password_checks();

    let burst: Vec<_> = forms
        .into_iter()
        .map(|f| tokio::spawn(f.submit(email.clone(), WRONG.into())))
        .collect();
    // Inside the burst, as soon as the lock is earned: the right password.
    until(|| app.core().password_checks() - checks_before >= u64::from(threshold)).await;
    let owner = owner_form.submit(email.clone(), PASSWORD.into()).await;
    let mut answers = Vec::new();
    for task in burst {
        answers.push(task.await.expect("the request ends"));
    }

    let checks = app.core().password_checks() - checks_before;
    assert!(
        checks <= u64::from(threshold),
        "{checks} passwords checked for a lockout threshold of {threshold}"
    );
    let failed = answers.iter().filter(|a| **a == Answer::Failed).count();
    let locked = answers.iter().filter(|a| **a == Answer::Locked).count();
    assert!(failed <= threshold as usize, "{answers:?}");
    assert_eq!(
        failed + locked,
        50,
        "every other answer is the lock: {answers:?}"
    );
    assert_eq!(
        owner,
        Answer::Locked,
        "a right password once the lock is earned does not sign in"
    );
}

#[tokio::test]
async fn a_lock_earned_from_one_network_leaves_the_owner_signing_in_from_another() {
    let app = spawn_app_with(|s| {
        unthrottled(s);
        s.lockout_threshold = 2;
    })
    .await;
    let email = fresh_email();
    app.add_user(&email).await;
    let client_id = app.public_client(CALLBACK).await;
    for n in 1..=2 {
        assert_eq!(
            sign_in(&app, &client_id, "127.0.0.2", &email, WRONG).await,
            Answer::Failed,
            "failure {n}"
        );
    }

    let attacker = sign_in(&app, &client_id, "127.0.0.2", &email, PASSWORD).await;
    let owner = sign_in(&app, &client_id, "127.0.0.1", &email, PASSWORD).await;

    assert_eq!(attacker, Answer::Locked, "the attacker's network is locked");
    assert_eq!(owner, Answer::SignedIn, "the owner's network is not");
}

#[tokio::test]
async fn a_lock_in_one_deployment_leaves_the_same_account_of_another_on_one_redis_alone() {
    if test_redis_url().is_none() {
        eprintln!("LATCHKEY_TEST_REDIS_URL is unset: the shared-Redis case runs in CI");
        return;
    }
    let locking = |s: &mut Settings| {
        unthrottled(s);
        s.lockout_threshold = 2;
    };
    let (a, b) = (spawn_app_with(locking).await, spawn_app_with(locking).await);
    let email = fresh_email();
    a.add_user(&email).await;
    b.add_user(&email).await;
    let (in_a, in_b) = (
        a.public_client(CALLBACK).await,
        b.public_client(CALLBACK).await,
    );
    for n in 1..=2 {
        assert_eq!(
            sign_in(&a, &in_a, "127.0.0.2", &email, WRONG).await,
            Answer::Failed,
            "failure {n}"
        );
    }

    let locked = sign_in(&a, &in_a, "127.0.0.2", &email, PASSWORD).await;
    let other = sign_in(&b, &in_b, "127.0.0.2", &email, PASSWORD).await;

    assert_eq!(locked, Answer::Locked, "locked where the failures were");
    assert_eq!(
        other,
        Answer::SignedIn,
        "another issuer's account is its own"
    );
}

#[tokio::test]
async fn failures_from_many_networks_delay_the_account_everywhere_for_a_bounded_time() {
    let app = spawn_app_with(|s| {
        unthrottled(s);
        s.lockout_threshold = 100;
        s.lockout_account_threshold = 3;
        s.lockout_account_base_secs = 30;
        s.lockout_account_max_secs = 30;
    })
    .await;
    let email = fresh_email();
    app.add_user(&email).await;
    let ghost = fresh_email();
    let client_id = app.public_client(CALLBACK).await;
    for (who, networks) in [
        (&email, ["127.0.0.2", "127.0.0.3", "127.0.0.4"]),
        (&ghost, ["127.0.0.5", "127.0.0.6", "127.0.0.7"]),
    ] {
        for from in networks {
            assert_eq!(
                sign_in(&app, &client_id, from, who, WRONG).await,
                Answer::Failed,
                "{from}"
            );
        }
    }

    let owner = sign_in(&app, &client_id, "127.0.0.1", &email, PASSWORD).await;
    let nobody = sign_in(&app, &client_id, "127.0.0.1", &ghost, PASSWORD).await;
    app.advance(30);
    let owner_later = sign_in(&app, &client_id, "127.0.0.1", &email, PASSWORD).await;

    assert_eq!(owner, Answer::Locked, "the whole account waits");
    assert_eq!(
        nobody,
        Answer::Locked,
        "an unknown account waits the same way"
    );
    assert_eq!(owner_later, Answer::SignedIn, "for a bounded time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_on_one_authorization_share_its_five_attempts() {
    let app = spawn_app_with(|s| {
        unthrottled(s);
        // The account lockout off: the per-session limit is what acts.
        s.lockout_threshold = 0;
        s.lockout_account_threshold = 0;
    })
    .await;
    let email = fresh_email();
    app.add_user(&email).await;
    let client_id = app.public_client(CALLBACK).await;
    let form = login_form(&app, &client_id, "127.0.0.1").await;
    let checks_before = app.core().password_checks();

    let posts: Vec<_> = (0..20)
        .map(|_| tokio::spawn(form.clone().submit(email.clone(), WRONG.into())))
        .collect();
    let mut answers = Vec::new();
    for post in posts {
        answers.push(post.await.expect("the request ends"));
    }

    let checks = app.core().password_checks() - checks_before;
    assert!(
        checks <= 5,
        "{checks} passwords checked on one authorization"
    );
    assert!(
        answers.iter().filter(|a| **a == Answer::Failed).count() <= 5,
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, Answer::Failed | Answer::Other(400 | 403))),
        "the rest end the authorization: {answers:?}"
    );
}
