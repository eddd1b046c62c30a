//! Ed25519 signature checks, batched across concurrent requests.
//!
//! Checking one signature costs a double scalar multiplication; checking n of them together
//! costs one multiscalar multiplication of size 2n+1, which on x86-64 does 32 signatures in
//! about half the time it takes to check them one by one (`cargo bench -p latchkey-core
//! --bench tokens`). Under load, many first-seen tokens wait for their check at once, so
//! each check joins a batch:
//!
//! - A check queues itself. If no drainer is on its way, it sends one: a task that yields
//!   once to the runtime, so that the requests already read from the sockets can queue their
//!   checks too, then takes up to [`MAX_BATCH`] checks and answers their waiters, yielding
//!   between batches until the queue is empty. A worker is never held for more than one
//!   batch, and no waiter depends on another request's future being polled.
//! - Alone (concurrency 1), a check is a batch of one, done with the single-signature
//!   equation; it costs one task and one yield more than checking inline.
//! - A batch that fails is checked again one signature at a time, so a forged token fails
//!   alone and never costs a good one its answer. After a failed batch, the next
//!   [`SINGLES_AFTER_FAILURE`] batches are checked one by one: a stream of forged tokens
//!   then costs about what it cost before batching, not one batch plus every check again.
//! - If the drainer is dropped before it has run (the runtime is shutting down), it checks
//!   what is queued where it is dropped: a waiter is always answered.
//!
//! ed25519-dalek's batch equation is, like its single one, cofactorless, with 128-bit
//! random coefficients; both take S only in canonical form, and both hash the R bytes as
//! sent. With keys generated here, a signature that passes either one takes the private key
//! to produce.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// The largest batch checked at once: past this size the saving per signature stops
/// growing, and a batch holds its worker for longer.
pub const MAX_BATCH: usize = 32;

/// How many batches are checked one by one after a batch fails.
pub const SINGLES_AFTER_FAILURE: u32 = 64;

struct Job {
    key: VerifyingKey,
    message: Box<[u8]>,
    signature: Signature,
    answer: oneshot::Sender<bool>,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// A drainer is on its way: it will take every job queued now or later, until the queue
    /// is empty.
    draining: bool,
    /// Batches still to check one by one after a failure.
    singles_left: u32,
}

/// Shared by every request; see the module documentation.
#[derive(Default)]
pub struct SignatureBatch {
    queue: Mutex<Queue>,
}

impl SignatureBatch {
    /// Whether `signature` is `key`'s signature of `message`.
    pub async fn verify(
        self: &Arc<Self>,
        key: &VerifyingKey,
        message: &[u8],
        signature: &Signature,
    ) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Nobody to batch with, nor to hand the work to.
            return key.verify(message, signature).is_ok();
        };
        let (answer, answered) = oneshot::channel();
        let send_drainer = {
            let mut queue = self.lock();
            queue.jobs.push(Job {
                key: *key,
                message: message.into(),
                signature: *signature,
                answer,
            });
            !std::mem::replace(&mut queue.draining, true)
        };
        if send_drainer {
            let drainer = Drainer(Some(self.clone()));
            runtime.spawn(drainer.run());
        }
        // Every queued job is answered by a drainer, or by its drop; a dropped sender would
        // be a bug, and is refused rather than accepted.
        answered.await.unwrap_or(false)
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one batch and answers it. Returns whether jobs remain, in which case the caller
    /// is still the drainer.
    fn drain_one(&self) -> bool {
        let (batch, singles, more) = {
            let mut queue = self.lock();
            let n = queue.jobs.len().min(MAX_BATCH);
            let batch: Vec<Job> = queue.jobs.drain(..n).collect();
            let singles = queue.singles_left > 0;
            queue.singles_left = queue.singles_left.saturating_sub(1);
            let more = !queue.jobs.is_empty();
            queue.draining = more;
            (batch, singles, more)
        };
        if !check(batch, singles) {
            self.lock().singles_left = SINGLES_AFTER_FAILURE;
        }
        more
    }
}

/// The task that drains the queue. Dropped before it has finished (the runtime is shutting
/// down), it drains the queue where it is dropped.
struct Drainer(Option<Arc<SignatureBatch>>);

impl Drainer {
    async fn run(mut self) {
        loop {
            tokio::task::yield_now().await;
            let more = self.0.as_ref().is_some_and(|b| b.drain_one());
            if !more {
                self.0 = None;
                return;
            }
        }
    }
}

impl Drop for Drainer {
    fn drop(&mut self) {
        if let Some(batch) = self.0.take() {
            while batch.drain_one() {}
        }
    }
}

/// Answers every job; `singles` checks them one by one. Returns false if a batch failed.
fn check(jobs: Vec<Job>, singles: bool) -> bool {
    let batch_passed = match jobs.as_slice() {
        [] | [_] => None,
        _ if singles => None,
        many => {
            let messages: Vec<&[u8]> = many.iter().map(|j| &*j.message).collect();
            let signatures: Vec<Signature> = many.iter().map(|j| j.signature).collect();
            let keys: Vec<VerifyingKey> = many.iter().map(|j| j.key).collect();
            Some(ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok())
        }
    };
    for job in jobs {
        let good =
            batch_passed == Some(true) || job.key.verify(&job.message, &job.signature).is_ok();
        // The waiter may have gone (its request was cancelled); nothing to tell then.
        let _ = job.answer.send(good);
    }
    batch_passed != Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use std::task::{Context, Poll, Waker};

    fn key() -> SigningKey {
        SigningKey::from_bytes(&rand::random())
    }

    /// `n` concurrent checks through `batch`; the ones in `forged` carry another key's
    /// signature.
    async fn run_on(batch: &Arc<SignatureBatch>, n: usize, forged: &[usize]) -> Vec<bool> {
        let (ours, theirs) = (key(), key());
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

    async fn run(n: usize, forged: &[usize]) -> Vec<bool> {
        run_on(&Arc::new(SignatureBatch::default()), n, forged).await
    }

    fn assert_answers(answers: Vec<bool>, forged: &[usize]) {
        for (i, ok) in answers.into_iter().enumerate() {
            assert_eq!(ok, !forged.contains(&i), "check {i}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_lone_check_answers_both_ways() {
        assert_eq!(run(1, &[]).await, [true]);
        assert_eq!(run(1, &[0]).await, [false]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_batch_of_good_signatures_passes() {
        let batch = Arc::new(SignatureBatch::default());
        assert!(run_on(&batch, 100, &[]).await.into_iter().all(|ok| ok));
        let queue = batch.lock();
        assert!(queue.jobs.is_empty() && !queue.draining);
        assert_eq!(queue.singles_left, 0, "no batch failed");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn one_forged_signature_fails_alone_in_its_batch() {
        let forged = [3, 40, 99];
        assert_answers(run(100, &forged).await, &forged);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_batch_turns_the_next_batches_to_single_checks() {
        let batch = Arc::new(SignatureBatch::default());
        assert_answers(run_on(&batch, 32, &[7]).await, &[7]);
        assert_eq!(batch.lock().singles_left, SINGLES_AFTER_FAILURE);
        assert_answers(run_on(&batch, 64, &[]).await, &[]);
        assert_eq!(
            batch.lock().singles_left,
            SINGLES_AFTER_FAILURE - 2,
            "two batches of 32, checked one by one"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_batches_on_many_workers_answer_every_check() {
        let forged: Vec<usize> = (0..500).filter(|i| i % 37 == 5).collect();
        assert_answers(run(500, &forged).await, &forged);
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

    #[test]
    fn a_drainer_dropped_before_it_runs_still_answers() {
        let k = key();
        let public = k.verifying_key();
        let message = b"token".to_vec();
        let signature = k.sign(&message);
        let batch = Arc::new(SignatureBatch::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let mut check = Box::pin(batch.verify(&public, &message, &signature));
        let mut cx = Context::from_waker(Waker::noop());
        {
            let _inside = runtime.enter();
            assert!(check.as_mut().poll(&mut cx).is_pending(), "queued");
        }
        // Shutting the runtime down drops the drainer task before it ever ran.
        drop(runtime);
        assert_eq!(check.as_mut().poll(&mut cx), Poll::Ready(true));
        assert!(!batch.lock().draining);
    }
}
