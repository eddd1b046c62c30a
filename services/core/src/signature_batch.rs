//! Ed25519 signature checks, batched across concurrent requests.
//!
//! Checking one signature costs a double scalar multiplication; checking n of them together
//! costs one multiscalar multiplication of size 2n+1, which on x86-64 does 8 signatures in
//! about 60% of the time and 16 in about 55% of the time it takes to check them one by one.
//! Under load, many first-seen tokens wait for their check at once, so each check joins a
//! batch:
//!
//! - The first request to find the queue empty leads. It yields once to the runtime, so that
//!   the requests already read from the sockets can queue their checks behind it, then takes
//!   up to [`MAX_BATCH`] checks from the queue and answers their waiters. Whatever it leaves
//!   is taken by a task of its own, after a yield, so that no worker is held for longer than
//!   one batch. While the queue is not empty, one such drainer is always on its way.
//! - Alone (concurrency 1), a check is a batch of one, done with the single-signature
//!   equation; the only cost is that one yield.
//! - A batch that fails is checked again one signature at a time, so one bad token costs
//!   its neighbours a second check, and never their answer.
//! - A leader whose request is cancelled while it waits still checks the queue as it is
//!   dropped: a waiter never hangs.
//!
//! The batch equation is cofactored (ed25519-dalek's `verify_batch`, with coefficients
//! derived from every input), the single one is not. They disagree only on signatures whose
//! nonce point has a small-order component; for keys generated here, producing one that
//! passes either equation still takes the private key. Malleated signatures cannot pass
//! anyway, since S must be canonical in both.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The largest batch checked at once: past this size the saving per signature stops
/// growing, and a batch holds its worker for longer.
pub const MAX_BATCH: usize = 32;

struct Job {
    key: VerifyingKey,
    message: Box<[u8]>,
    signature: Signature,
    answer: oneshot::Sender<bool>,
}

/// Shared by every request; see the module documentation.
#[derive(Default)]
pub struct SignatureBatch {
    queue: Mutex<Vec<Job>>,
}

impl SignatureBatch {
    /// Whether `signature` is `key`'s signature of `message`.
    pub async fn verify(
        self: &Arc<Self>,
        key: &VerifyingKey,
        message: &[u8],
        signature: &Signature,
    ) -> bool {
        let (answer, answered) = oneshot::channel();
        let leads = {
            let mut queue = self.lock();
            queue.push(Job {
                key: *key,
                message: message.into(),
                signature: *signature,
                answer,
            });
            queue.len() == 1
        };
        if leads {
            let lead = Leader(self);
            tokio::task::yield_now().await;
            drop(lead);
        }
        // The sender is always used: by a drainer, or by its drop. A dropped sender would be
        // a bug; refuse rather than accept.
        answered.await.unwrap_or(false)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Job>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one batch from the queue and answers it; sends a drainer after the rest.
    fn drain(self: &Arc<Self>) {
        let (batch, more) = {
            let mut queue = self.lock();
            let n = queue.len().min(MAX_BATCH);
            let batch: Vec<Job> = queue.drain(..n).collect();
            (batch, !queue.is_empty())
        };
        if more {
            // Sent before this batch is checked, so another worker can take the next one
            // meanwhile.
            let this = self.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(async move {
                        tokio::task::yield_now().await;
                        this.drain();
                    });
                }
                // Outside a runtime there is nobody to hand over to.
                Err(_) => {
                    check(batch);
                    return this.drain();
                }
            }
        }
        check(batch);
    }
}

/// The leader's duty, done when it is dropped: after its yield, or when its request is
/// cancelled during the yield.
struct Leader<'a>(&'a Arc<SignatureBatch>);

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.0.drain();
    }
}

fn check(jobs: Vec<Job>) {
    let all_good = match jobs.as_slice() {
        [] => return,
        [one] => one.key.verify(&one.message, &one.signature).is_ok(),
        many => {
            let messages: Vec<&[u8]> = many.iter().map(|j| &*j.message).collect();
            let signatures: Vec<Signature> = many.iter().map(|j| j.signature).collect();
            let keys: Vec<VerifyingKey> = many.iter().map(|j| j.key).collect();
            ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
        }
    };
    let single = jobs.len() == 1;
    for job in jobs {
        let good = if all_good {
            true
        } else if single {
            false
        } else {
            job.key.verify(&job.message, &job.signature).is_ok()
        };
        // The waiter may have gone (its request was cancelled); nothing to tell then.
        let _ = job.answer.send(good);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn key() -> SigningKey {
        SigningKey::from_bytes(&rand::random())
    }

    /// `n` concurrent checks on a one-thread runtime, so they share batches; the ones in
    /// `forged` carry another key's signature.
    async fn run(n: usize, forged: &[usize]) -> Vec<bool> {
        let (ours, theirs) = (key(), key());
        let batch = Arc::new(SignatureBatch::default());
        let mut tasks = Vec::new();
        for i in 0..n {
            let message = format!("token {i}").into_bytes();
            let signer = if forged.contains(&i) { &theirs } else { &ours };
            let signature = signer.sign(&message);
            let (batch, key) = (batch.clone(), ours.verifying_key());
            tasks.push(tokio::spawn(async move {
                batch.verify(&key, &message, &signature).await
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("the check does not panic"));
        }
        out
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_lone_check_answers_both_ways() {
        assert_eq!(run(1, &[]).await, [true]);
        assert_eq!(run(1, &[0]).await, [false]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_batch_of_good_signatures_passes() {
        assert!(run(100, &[]).await.into_iter().all(|ok| ok));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn one_forged_signature_fails_alone_in_its_batch() {
        let forged = [3, 40, 99];
        let answers = run(100, &forged).await;
        for (i, ok) in answers.into_iter().enumerate() {
            assert_eq!(ok, !forged.contains(&i), "check {i}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_batches_on_many_workers_answer_every_check() {
        let forged: Vec<usize> = (0..500).filter(|i| i % 37 == 5).collect();
        let answers = run(500, &forged).await;
        for (i, ok) in answers.into_iter().enumerate() {
            assert_eq!(ok, !forged.contains(&i), "check {i}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_tampered_message_fails() {
        let k = key();
        let batch = Arc::new(SignatureBatch::default());
        let signature = k.sign(b"sub=alice");
        assert!(
            !batch
                .verify(&k.verifying_key(), b"sub=mallory", &signature)
                .await
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_cancelled_leader_still_answers_the_checks_queued_behind_it() {
        let k = key();
        let batch = Arc::new(SignatureBatch::default());
        let message = b"token".to_vec();
        let signature = k.sign(&message);
        // The leader queues its check and yields; it is then dropped mid-yield.
        let public = k.verifying_key();
        let mut leader = Box::pin(batch.verify(&public, &message, &signature));
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(leader.as_mut().poll(&mut cx).is_pending());
        let follower = {
            let (batch, key, message) = (batch.clone(), k.verifying_key(), message.clone());
            tokio::spawn(async move { batch.verify(&key, &message, &signature).await })
        };
        tokio::task::yield_now().await;
        drop(leader);
        let answered = tokio::time::timeout(std::time::Duration::from_secs(5), follower).await;
        assert!(matches!(answered, Ok(Ok(true))), "{answered:?}");
    }
}
