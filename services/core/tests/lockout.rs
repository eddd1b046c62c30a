//! Sign-in throttling under concurrency: attempts are counted before their password is
//! checked, per authorization session, per account and network, and per account; a lock on
//! one network leaves the account open on another; failures from everywhere slow the whole
//! account with a growing delay that answers like a lock; and a full in-memory table keeps
//! its locks.

mod common;

use common::*;
use latchkey_core::authorize::{LoginOutcome, Prompt};
use latchkey_core::client_network::ClientNetwork;
use latchkey_core::lockout::{Backoff, Limit, LockoutPolicy, LockoutStore, MemoryLockout, Verdict};
use latchkey_core::{AuthResult, testing::TestCore};
use std::sync::Arc;
use std::time::Duration;

const WRONG: &str = "wrong password!";
const LOGIN_FAILED: &str = "Invalid email or password.";
const LOCKED_OUT: &str = "Too many failed sign-in attempts. Try again later.";

/// The network of `address`.
fn net(address: &str) -> Option<ClientNetwork> {
    Some(ClientNetwork::parse(address).expect("an IP address"))
}

/// A core whose lockout is `network` per account and network, and `account` per account.
async fn core_locking(network: Backoff, account: Backoff) -> TestCore {
    let t = core_with(|s| {
        s.lockout.network = network;
        s.lockout.account = account;
    })
    .await;
    client("app").seed(&t).await;
    seed_user(&t, EMAIL).await;
    t
}

const OFF: Backoff = Backoff {
    threshold: 0,
    base_secs: 1,
    max_secs: 1,
};

/// Signs in on a fresh authorization, as someone at `from`.
async fn attempt(t: &TestCore, email: &str, password: &str, from: &str) -> LoginOutcome {
    let p = start(t, authorization_request("app")).await;
    t.core
        .submit_login(&p.session_id, &p.csrf_token, email, password, Some(from))
        .await
        .expect("a sign-in is answered")
}

/// Polls until `cond` holds, for at most ten seconds.
async fn until(mut cond: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("the condition did not hold within ten seconds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_wrong_passwords_get_at_most_the_threshold_of_checks_and_then_a_right_one_is_refused()
 {
    let threshold = 5;
    let t = core_locking(
        Backoff {
            threshold,
            base_secs: 60,
            max_secs: 600,
        },
        OFF,
    )
    .await;
    // Separate authorizations, as an attacker would use to get past the per-session limit.
    let mut prompts: Vec<Prompt> = Vec::new();
    for _ in 0..51 {
        prompts.push(start(&t, authorization_request("app")).await);
    }
    let right = prompts.pop().expect("51 prompts");

    let burst: Vec<_> = prompts
        .into_iter()
        .map(|p| {
            let core = Arc::clone(&t.core);
            tokio::spawn(async move {
                core.submit_login(
                    &p.session_id,
                    &p.csrf_token,
                    EMAIL,
                    WRONG,
                    Some("192.0.2.1"),
                )
                .await
            })
        })
        .collect();
    // Inside the burst, once the lock is earned: the owner's right password.
    until(|| t.core.password_checks() >= u64::from(threshold)).await;
    let owner = t
        .core
        .submit_login(
            &right.session_id,
            &right.csrf_token,
            EMAIL,
            PASSWORD,
            Some("192.0.2.1"),
        )
        .await
        .expect("answered");
    let mut answers: Vec<AuthResult<LoginOutcome>> = Vec::new();
    for task in burst {
        answers.push(task.await.expect("the task ends"));
    }

    assert_eq!(
        t.core.password_checks(),
        u64::from(threshold),
        "only the attempts before the lock are checked"
    );
    let errors: Vec<&str> = answers
        .iter()
        .map(|a| a.as_ref().expect("answered").error.expect("refused"))
        .collect();
    assert_eq!(
        errors.iter().filter(|e| **e == LOGIN_FAILED).count(),
        threshold as usize,
        "{errors:?}"
    );
    assert_eq!(
        errors.iter().filter(|e| **e == LOCKED_OUT).count(),
        50 - threshold as usize
    );
    assert!(!owner.prompt.authenticated, "the right password is refused");
    assert_eq!(owner.error, Some(LOCKED_OUT));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_posts_on_one_authorization_share_its_five_attempts() {
    let t = core_locking(OFF, OFF).await;
    let p = start(&t, authorization_request("app")).await;

    let posts: Vec<_> = (0..20)
        .map(|_| {
            let (core, p) = (Arc::clone(&t.core), p.clone());
            tokio::spawn(async move {
                core.submit_login(
                    &p.session_id,
                    &p.csrf_token,
                    EMAIL,
                    WRONG,
                    Some("192.0.2.1"),
                )
                .await
            })
        })
        .collect();
    let mut denied = 0;
    for post in posts {
        match post.await.expect("the task ends") {
            Ok(out) => assert_eq!(out.error, Some(LOGIN_FAILED)),
            Err(e) => {
                // The sixth and later are refused; so is any that finds the session dropped.
                assert!(
                    matches!(e.code(), "access_denied" | "invalid_request"),
                    "{e}"
                );
                denied += 1;
            }
        }
    }

    assert!(
        t.core.password_checks() <= 5,
        "{} passwords checked on one authorization",
        t.core.password_checks()
    );
    assert!(denied >= 15, "{denied} refused");
}

#[tokio::test]
async fn a_lock_earned_on_one_network_leaves_the_account_open_on_another() {
    let t = core_locking(
        Backoff {
            threshold: 2,
            base_secs: 60,
            max_secs: 600,
        },
        OFF,
    )
    .await;
    // (where the failures come from, where the owner signs in, locked there?, why)
    let cases = [
        ("192.0.2.1", "192.0.2.1", true, "the same IPv4 address"),
        ("192.0.2.1", "198.51.100.7", false, "another IPv4 address"),
        (
            "2001:db8:1:2::1",
            "2001:db8:1:2::99",
            true,
            "another address in the same IPv6 /64",
        ),
        (
            "2001:db8:1:2::1",
            "2001:db8:1:3::1",
            false,
            "another IPv6 /64",
        ),
        (
            "::ffff:203.0.113.9",
            "203.0.113.9",
            true,
            "the IPv4-mapped form of the same address",
        ),
    ];
    for (attacker, owner, locked, why) in cases {
        for _ in 0..2 {
            assert_eq!(
                attempt(&t, EMAIL, WRONG, attacker).await.error,
                Some(LOGIN_FAILED),
                "{why}"
            );
        }
        assert_eq!(
            attempt(&t, EMAIL, PASSWORD, attacker).await.error,
            Some(LOCKED_OUT),
            "{why}: the attacker's network is locked"
        );
        let out = attempt(&t, EMAIL, PASSWORD, owner).await;
        assert_eq!(out.prompt.authenticated, !locked, "{why}");
        // Let every lock pass before the next case.
        advance(&t, 3600);
    }
}

#[tokio::test]
async fn failures_from_many_networks_slow_the_whole_account_with_a_growing_delay() {
    let t = core_locking(
        Backoff {
            threshold: 100,
            base_secs: 60,
            max_secs: 600,
        },
        Backoff {
            threshold: 3,
            base_secs: 10,
            max_secs: 30,
        },
    )
    .await;
    let ghost = "nobody@example.com";
    for (i, who) in [EMAIL, ghost].into_iter().enumerate() {
        for n in 1..=3 {
            let from = format!("198.51.{i}.{n}");
            assert_eq!(
                attempt(&t, who, WRONG, &from).await.error,
                Some(LOGIN_FAILED)
            );
        }
    }
    let checks = t.core.password_checks();

    // From a network that never failed, the right password waits like any other.
    let delayed = attempt(&t, EMAIL, PASSWORD, "203.0.113.1").await;
    assert_eq!(delayed.error, Some(LOCKED_OUT), "a delay answers as a lock");
    assert_eq!(
        attempt(&t, ghost, PASSWORD, "203.0.113.1").await.error,
        Some(LOCKED_OUT),
        "an unknown account is slowed the same way"
    );
    assert_eq!(t.core.password_checks(), checks, "nothing was checked");
    // The delay grows with each failure after it: 10 s, then 20, then 30 (the cap).
    for (wait, why) in [(10, "the first delay"), (20, "doubled"), (30, "capped")] {
        advance(&t, wait - 1);
        assert_eq!(
            attempt(&t, EMAIL, WRONG, "203.0.113.2").await.error,
            Some(LOCKED_OUT),
            "{why}: one second early"
        );
        advance(&t, 1);
        assert_eq!(
            attempt(&t, EMAIL, WRONG, "203.0.113.2").await.error,
            Some(LOGIN_FAILED),
            "{why}: on time"
        );
    }
    advance(&t, 30);
    let owner = attempt(&t, EMAIL, PASSWORD, "203.0.113.1").await;
    assert!(
        owner.prompt.authenticated,
        "the owner signs in once it passes"
    );
    assert_eq!(
        attempt(&t, EMAIL, WRONG, "203.0.113.2").await.error,
        Some(LOGIN_FAILED),
        "a success forgets the account's failures"
    );
}

fn policy() -> LockoutPolicy {
    LockoutPolicy {
        network: Backoff {
            threshold: 2,
            base_secs: 60,
            max_secs: 600,
        },
        account: OFF,
        window_secs: 3600,
    }
}

#[tokio::test]
async fn a_full_table_refuses_new_keys_and_a_flood_of_them_never_unlocks_a_locked_account() {
    // Room for two attempts' counters (each needs its account-and-network and its account).
    let store = MemoryLockout::with_capacity(4).with_quota(4);
    let (p, home) = (policy(), net("192.0.2.1"));
    for now in 0..2 {
        store
            .admit("victim", home.as_ref(), now, &p)
            .await
            .expect("ok");
    }
    store
        .admit("stranger", home.as_ref(), 2, &p)
        .await
        .expect("ok");
    assert_eq!(store.len(), 4, "full");

    // A flood of new accounts, from new networks, every second of the victim's lock.
    for second in 3..61 {
        let flood = store
            .admit(
                &format!("new-{second}"),
                net(&format!("10.0.0.{second}")).as_ref(),
                second,
                &p,
            )
            .await
            .expect("ok");
        assert_eq!(
            flood,
            Verdict::Refused {
                limit: Limit::Capacity,
                wait_secs: 1
            },
            "at {second} s: fails closed"
        );
        assert!(
            matches!(
                store
                    .admit("victim", home.as_ref(), second, &p)
                    .await
                    .expect("ok"),
                Verdict::Refused {
                    limit: Limit::Network,
                    ..
                }
            ),
            "at {second} s: the victim is still locked"
        );
    }
    assert_eq!(store.len(), 4, "never over the cap");
    assert!(
        matches!(
            store
                .admit("stranger", home.as_ref(), 60, &p)
                .await
                .expect("ok"),
            Verdict::Check { .. }
        ),
        "an account already counted is still counted"
    );

    // Once the window has passed and no lock is in force, the spent counters make room.
    let later = 60 + 3600 + 60;
    assert_eq!(
        store
            .admit("newcomer", home.as_ref(), later, &p)
            .await
            .expect("ok"),
        Verdict::Check { locks: false }
    );
}

#[tokio::test]
async fn a_network_that_made_its_share_of_counters_is_refused_new_ones_and_nobody_else() {
    // Room for 50 attempts' counters, 5 attempts' worth per network once half full.
    let store = MemoryLockout::with_capacity(100).with_quota(10);
    let p = policy();
    let (flooder, v6_flooder) = (net("192.0.2.66"), "2001:db8:66");
    // Below half full the quota does not bite: one network makes 25 attempts' counters.
    for n in 0..25 {
        let v = store
            .admit(&format!("early-{n}"), net("198.51.100.99").as_ref(), 1, &p)
            .await
            .expect("ok");
        assert!(matches!(v, Verdict::Check { .. }), "below half: {n}");
    }
    assert_eq!(store.len(), 50, "half full");
    let mut admitted = 0;
    for n in 0..20 {
        let v = store
            .admit(&format!("stranger-{n}"), flooder.as_ref(), 1, &p)
            .await
            .expect("ok");
        admitted += usize::from(matches!(v, Verdict::Check { .. }));
    }
    assert_eq!(admitted, 5, "its share, and no more");
    // The /64s of one /48 share one quota.
    let mut admitted = 0;
    for n in 0..20 {
        let v = store
            .admit(
                &format!("ghost-{n}"),
                net(&format!("{v6_flooder}:{n:x}::1")).as_ref(),
                1,
                &p,
            )
            .await
            .expect("ok");
        admitted += usize::from(matches!(v, Verdict::Check { .. }));
    }
    assert_eq!(admitted, 5, "one /48, one share");
    // Everyone else still signs in, and the flooder's existing counters still count.
    assert!(matches!(
        store
            .admit("owner", net("198.51.100.7").as_ref(), 1, &p)
            .await
            .expect("ok"),
        Verdict::Check { .. }
    ));
    assert!(matches!(
        store
            .admit("stranger-0", flooder.as_ref(), 1, &p)
            .await
            .expect("ok"),
        Verdict::Check { .. }
    ));
    assert!(matches!(
        store
            .admit("stranger-19", flooder.as_ref(), 1, &p)
            .await
            .expect("ok"),
        Verdict::Refused {
            limit: Limit::Capacity,
            ..
        }
    ));
    // Once its counters are spent, the network gets its share back.
    let later = 1 + 3600 + 1;
    assert!(matches!(
        store
            .admit("stranger-19", flooder.as_ref(), later, &p)
            .await
            .expect("ok"),
        Verdict::Check { .. }
    ));
}

#[tokio::test]
async fn admission_counts_before_the_check_and_a_release_forgets_only_its_own_network() {
    let store = MemoryLockout::default();
    let p = policy();
    let (home, away) = (net("192.0.2.1"), net("198.51.100.1"));
    store.admit("a", away.as_ref(), 0, &p).await.expect("ok");
    store.admit("a", away.as_ref(), 0, &p).await.expect("ok");
    store.admit("a", home.as_ref(), 0, &p).await.expect("ok");

    store.release("a", home.as_ref()).await.expect("ok");

    assert!(
        matches!(
            store.admit("a", away.as_ref(), 1, &p).await.expect("ok"),
            Verdict::Refused {
                limit: Limit::Network,
                wait_secs: 59
            }
        ),
        "the owner's success does not unlock the attacker's network"
    );
    assert_eq!(
        store.admit("a", home.as_ref(), 1, &p).await.expect("ok"),
        Verdict::Check { locks: false }
    );
}

#[tokio::test]
async fn a_sign_in_from_an_address_that_is_no_ip_address_is_refused_before_anything_is_counted() {
    let t = core_locking(OFF, OFF).await;
    let p = start(&t, authorization_request("app")).await;

    let bad = t
        .core
        .submit_login(
            &p.session_id,
            &p.csrf_token,
            EMAIL,
            PASSWORD,
            Some("not an address"),
        )
        .await;
    let good = t
        .core
        .submit_login(
            &p.session_id,
            &p.csrf_token,
            EMAIL,
            PASSWORD,
            Some("192.0.2.1"),
        )
        .await
        .expect("answered");

    assert_eq!(err_code(bad, "a malformed address"), "invalid_request");
    assert_eq!(t.core.password_checks(), 1, "only the good one was checked");
    assert!(good.prompt.authenticated);
}
