//! The evaluation broker: the leader's in-memory queue of evaluations waiting for a scheduler.
//!
//! ```text
//!  enqueue(eval) ──▶ [Wait > 0: timer] [WaitUntil: delay heap] ──┐
//!                                                               ▼
//!               job slot free? ──yes──▶ ready[type] (priority, then CreateIndex)
//!                     └─no──▶ pending[job] (priority, then newest ModifyIndex)
//!  dequeue(types) ──▶ (eval, token) ── unack[id] with a nack deadline ──┬─ ack  → free job slot,
//!                                                                      │        promote newest pending,
//!                                                                      │        older pending → cancelable
//!                                                                      └─ nack / timeout → retry after
//!                                                                          1 s, then (n-1)·20 s; after the
//!                                                                          delivery limit → `_failed` queue
//! ```
//!
//! Vocabulary: a *job slot* is the one evaluation per job that is ready or in flight, so two
//! schedulers never work on the same job at once. A *token* identifies one delivery: acks, nacks
//! and plan submissions must present it, which rejects work from a delivery that timed out.
//! *Requeue*: an evaluation re-enqueued (by the blocked tracker) while its delivery is still
//! outstanding waits for that delivery's ack.
//!
//! [`BrokerCore`] is pure bookkeeping: it takes `now` (monotonic, for nack and `Wait` timers;
//! Unix nanoseconds, for `WaitUntil`) and a token, and never sleeps. [`EvalBroker`] wraps it in a
//! mutex, wakes waiting workers, and runs one timer task that calls [`BrokerCore::tick`] at the
//! next deadline.
//!
//! Guarantees: at most one evaluation per job is ready or unacked; an evaluation is delivered at
//! most `delivery_limit` times before it lands in `_failed`; disabling flushes everything (the
//! leader refills the broker from the state store when it leads again).
//!
//! Limitations: dequeue ties between schedulers of equal priority go to the first requested
//! type (Nomad picks at random); enqueue→dequeue timing metrics are not kept.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_types::Evaluation;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The queue name of evaluations that exhausted their deliveries.
pub const FAILED_QUEUE: &str = "_failed";

/// Broker tunables (`reference/server-and-scheduler.md` §17).
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// An unacked delivery is nacked after this long.
    pub nack_timeout: Duration,
    /// Deliveries before an evaluation goes to `_failed`.
    pub delivery_limit: u32,
    /// Delay before the second delivery.
    pub initial_nack_delay: Duration,
    /// Delay step for later deliveries: (n-1) × this.
    pub subsequent_nack_delay: Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            nack_timeout: Duration::from_secs(60),
            delivery_limit: 3,
            initial_nack_delay: Duration::from_secs(1),
            subsequent_nack_delay: Duration::from_secs(20),
        }
    }
}

/// Why an ack, nack or token check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// The broker is disabled (not the leader).
    #[error("eval broker disabled")]
    Disabled,
    /// No outstanding delivery of this evaluation.
    #[error("evaluation ID {0:?} not found")]
    NotOutstanding(String),
    /// The token belongs to another delivery.
    #[error("evaluation ID {0:?} token does not match")]
    TokenMismatch(String),
}

type JobKey = (String, String);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ReadyKey {
    neg_priority: i64,
    create_index: u64,
    seq: u64,
}

#[derive(Debug)]
struct Unacked {
    eval: Arc<Evaluation>,
    token: String,
    /// `None` while paused (the plan sits in the plan queue).
    deadline: Option<Instant>,
}

/// Counters for metrics and `/v1/agent/self`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerStats {
    /// Ready evaluations in all queues.
    pub total_ready: usize,
    /// Delivered, not yet acked.
    pub total_unacked: usize,
    /// Waiting behind another evaluation of the same job.
    pub total_pending: usize,
    /// Waiting for `Wait`, `WaitUntil` or a nack delay.
    pub total_waiting: usize,
    /// Superseded pending evaluations to be written as canceled.
    pub total_cancelable: usize,
    /// Ready per scheduler type.
    pub by_scheduler: BTreeMap<String, usize>,
}

/// The broker's bookkeeping, without clocks or locks.
#[derive(Debug)]
pub struct BrokerCore {
    config: BrokerConfig,
    enabled: bool,
    seq: u64,
    /// id → times dequeued (also: the set of evaluations the broker knows).
    evals: HashMap<String, u32>,
    job_evals: HashMap<JobKey, String>,
    pending: HashMap<JobKey, Vec<Arc<Evaluation>>>,
    ready: HashMap<String, BTreeMap<ReadyKey, Arc<Evaluation>>>,
    unack: HashMap<String, Unacked>,
    requeue: HashMap<String, Arc<Evaluation>>,
    /// `Wait` timers and nack re-delivery delays: (due, seq) → (eval, queue).
    timers: BTreeMap<(Instant, u64), (Arc<Evaluation>, String)>,
    /// `WaitUntil` (Unix nanos, seq) → eval.
    delayed: BTreeMap<(i64, u64), Arc<Evaluation>>,
    cancelable: Vec<Arc<Evaluation>>,
}

fn job_key(e: &Evaluation) -> JobKey {
    (e.namespace.clone(), e.job_id.clone())
}

impl BrokerCore {
    /// A disabled broker.
    pub fn new(config: BrokerConfig) -> Self {
        BrokerCore {
            config,
            enabled: false,
            seq: 0,
            evals: HashMap::new(),
            job_evals: HashMap::new(),
            pending: HashMap::new(),
            ready: HashMap::new(),
            unack: HashMap::new(),
            requeue: HashMap::new(),
            timers: BTreeMap::new(),
            delayed: BTreeMap::new(),
            cancelable: Vec::new(),
        }
    }

    /// Whether the broker accepts work.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Enables or disables; disabling flushes every queue, timer and delivery.
    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
        if !enabled {
            let config = self.config.clone();
            *self = BrokerCore::new(config);
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Adds an evaluation. `token` is non-empty only when the blocked tracker re-enqueues an
    /// evaluation whose delivery is still outstanding: it then waits for that delivery's ack.
    pub fn enqueue(&mut self, eval: Arc<Evaluation>, token: &str, now: Instant, now_unix: i64) {
        if !self.enabled {
            return;
        }
        if self.evals.contains_key(&eval.id) {
            if !token.is_empty() && self.unack.get(&eval.id).is_some_and(|u| u.token == token) {
                self.requeue.insert(token.to_string(), eval);
            }
            return;
        }
        self.evals.insert(eval.id.clone(), 0);
        if eval.wait > 0 {
            let seq = self.next_seq();
            let due = now + Duration::from_nanos(eval.wait as u64);
            let queue = eval.eval_type.clone();
            self.timers.insert((due, seq), (eval, queue));
            return;
        }
        if let Some(until) = eval.wait_until
            && until.0 > now_unix
        {
            let seq = self.next_seq();
            self.delayed.insert((until.0, seq), eval);
            return;
        }
        let queue = eval.eval_type.clone();
        self.enqueue_locked(eval, &queue);
    }

    fn enqueue_locked(&mut self, eval: Arc<Evaluation>, queue: &str) {
        let key = job_key(&eval);
        match self.job_evals.get(&key) {
            None => {
                self.job_evals.insert(key, eval.id.clone());
            }
            Some(id) if *id != eval.id => {
                self.pending.entry(key).or_default().push(eval);
                return;
            }
            Some(_) => {}
        }
        let seq = self.next_seq();
        let k = ReadyKey {
            neg_priority: -eval.priority,
            create_index: eval.create_index,
            seq,
        };
        self.ready.entry(queue.to_string()).or_default().insert(k, eval);
    }

    /// Hands out the highest-priority ready evaluation of the given scheduler types.
    pub fn dequeue(
        &mut self,
        schedulers: &[&str],
        token: String,
        now: Instant,
    ) -> Option<(Arc<Evaluation>, String)> {
        if !self.enabled {
            return None;
        }
        let mut best: Option<(&str, ReadyKey)> = None;
        for s in schedulers {
            if let Some((k, _)) = self.ready.get(*s).and_then(|q| q.first_key_value())
                && best.as_ref().is_none_or(|(_, b)| k.neg_priority < b.neg_priority)
            {
                best = Some((s, k.clone()));
            }
        }
        let (queue, key) = best?;
        let eval = self.ready.get_mut(queue)?.remove(&key)?;
        *self.evals.entry(eval.id.clone()).or_insert(0) += 1;
        self.unack.insert(
            eval.id.clone(),
            Unacked {
                eval: eval.clone(),
                token: token.clone(),
                deadline: Some(now + self.config.nack_timeout),
            },
        );
        Some((eval, token))
    }

    fn check_token(&self, id: &str, token: &str) -> Result<(), BrokerError> {
        match self.unack.get(id) {
            None => Err(BrokerError::NotOutstanding(id.to_string())),
            Some(u) if u.token != token => Err(BrokerError::TokenMismatch(id.to_string())),
            Some(_) => Ok(()),
        }
    }

    /// Whether `token` is the current delivery of `id` (plan submissions check this).
    pub fn outstanding(&self, id: &str, token: &str) -> Result<(), BrokerError> {
        if !self.enabled {
            return Err(BrokerError::Disabled);
        }
        self.check_token(id, token)
    }

    /// Restarts the nack timer of a delivery (every planner call does).
    pub fn outstanding_reset(&mut self, id: &str, token: &str, now: Instant) -> Result<(), BrokerError> {
        self.outstanding(id, token)?;
        let timeout = self.config.nack_timeout;
        if let Some(u) = self.unack.get_mut(id)
            && u.deadline.is_some()
        {
            u.deadline = Some(now + timeout);
        }
        Ok(())
    }

    /// Stops the nack timer while the delivery's plan waits for the applier.
    pub fn pause_nack_timeout(&mut self, id: &str, token: &str) -> Result<(), BrokerError> {
        self.outstanding(id, token)?;
        if let Some(u) = self.unack.get_mut(id) {
            u.deadline = None;
        }
        Ok(())
    }

    /// Restarts the nack timer after the plan was applied.
    pub fn resume_nack_timeout(&mut self, id: &str, token: &str, now: Instant) -> Result<(), BrokerError> {
        self.outstanding(id, token)?;
        let timeout = self.config.nack_timeout;
        if let Some(u) = self.unack.get_mut(id) {
            u.deadline = Some(now + timeout);
        }
        Ok(())
    }

    /// The scheduler finished the evaluation.
    pub fn ack(&mut self, id: &str, token: &str, now: Instant, now_unix: i64) -> Result<(), BrokerError> {
        if !self.enabled {
            return Err(BrokerError::Disabled);
        }
        let requeued = self.requeue.remove(token);
        self.check_token(id, token)?;
        let Some(u) = self.unack.remove(id) else {
            return Err(BrokerError::NotOutstanding(id.to_string()));
        };
        self.evals.remove(id);
        let key = job_key(&u.eval);
        self.job_evals.remove(&key);
        if let Some(mut waiting) = self.pending.remove(&key)
            && !waiting.is_empty()
        {
            // The highest priority, then the newest, goes next; the rest are superseded.
            waiting.sort_by_key(|e| std::cmp::Reverse((e.priority, e.modify_index)));
            let next = waiting.remove(0);
            self.cancelable.extend(waiting);
            let queue = next.eval_type.clone();
            self.enqueue_locked(next, &queue);
        }
        if let Some(e) = requeued {
            self.enqueue(e, "", now, now_unix);
        }
        Ok(())
    }

    /// The scheduler gave up (or the nack timer fired): deliver again later, or fail.
    pub fn nack(&mut self, id: &str, token: &str, now: Instant) -> Result<(), BrokerError> {
        if !self.enabled {
            return Err(BrokerError::Disabled);
        }
        self.requeue.remove(token);
        self.check_token(id, token)?;
        let Some(u) = self.unack.remove(id) else {
            return Err(BrokerError::NotOutstanding(id.to_string()));
        };
        let n = self.evals.get(id).copied().unwrap_or(0);
        if n >= self.config.delivery_limit {
            self.enqueue_locked(u.eval, FAILED_QUEUE);
            return Ok(());
        }
        let delay = match n {
            0 => Duration::ZERO,
            1 => self.config.initial_nack_delay,
            n => self.config.subsequent_nack_delay * (n - 1),
        };
        let queue = u.eval.eval_type.clone();
        if delay.is_zero() {
            self.enqueue_locked(u.eval, &queue);
        } else {
            let seq = self.next_seq();
            self.timers.insert((now + delay, seq), (u.eval, queue));
        }
        Ok(())
    }

    /// Fires due timers: nack timeouts, `Wait` and re-delivery delays, passed `WaitUntil`s.
    /// Returns how many evaluations became ready (to wake workers).
    pub fn tick(&mut self, now: Instant, now_unix: i64) -> usize {
        if !self.enabled {
            return 0;
        }
        let mut woke = 0;
        let expired: Vec<(String, String)> = self
            .unack
            .iter()
            .filter(|(_, u)| u.deadline.is_some_and(|d| d <= now))
            .map(|(id, u)| (id.clone(), u.token.clone()))
            .collect();
        for (id, token) in expired {
            if self.nack(&id, &token, now).is_ok() {
                woke += 1;
            }
        }
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (eval, queue) = entry.remove();
            self.enqueue_locked(eval, &queue);
            woke += 1;
        }
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now_unix {
                break;
            }
            let eval = entry.remove();
            let queue = eval.eval_type.clone();
            self.enqueue_locked(eval, &queue);
            woke += 1;
        }
        woke
    }

    /// When the next timer is due: (monotonic deadline, Unix-nanos deadline).
    pub fn next_deadline(&self) -> (Option<Instant>, Option<i64>) {
        let mono = self
            .unack
            .values()
            .filter_map(|u| u.deadline)
            .chain(self.timers.keys().next().map(|(d, _)| *d))
            .min();
        let unix = self.delayed.keys().next().map(|(d, _)| *d);
        (mono, unix)
    }

    /// Takes up to `max` superseded evaluations (the leader writes them as canceled).
    pub fn take_cancelable(&mut self, max: usize) -> Vec<Arc<Evaluation>> {
        let n = max.min(self.cancelable.len());
        self.cancelable.drain(..n).collect()
    }

    /// Removes a delayed evaluation that is no longer needed.
    pub fn drop_delayed(&mut self, id: &str) {
        self.delayed.retain(|_, e| e.id != id);
        self.timers.retain(|_, (e, _)| e.id != id);
        if !self.unack.contains_key(id) {
            self.evals.remove(id);
        }
    }

    /// Counters.
    pub fn stats(&self) -> BrokerStats {
        let mut by_scheduler = BTreeMap::new();
        for (k, q) in &self.ready {
            by_scheduler.insert(k.clone(), q.len());
        }
        BrokerStats {
            total_ready: self.ready.values().map(|q| q.len()).sum(),
            total_unacked: self.unack.len(),
            total_pending: self.pending.values().map(|p| p.len()).sum(),
            total_waiting: self.timers.len() + self.delayed.len(),
            total_cancelable: self.cancelable.len(),
            by_scheduler,
        }
    }

    /// IDs of ready evaluations in a queue, in delivery order (tests, debugging).
    pub fn ready_ids(&self, queue: &str) -> Vec<String> {
        self.ready
            .get(queue)
            .map(|q| q.values().map(|e| e.id.clone()).collect())
            .unwrap_or_default()
    }

    /// Whether the broker tracks this evaluation at all.
    pub fn knows(&self, id: &str) -> bool {
        self.evals.contains_key(id)
    }
}

/// The broker as the server uses it: shared, with waiting dequeues and a timer task.
#[derive(Debug)]
pub struct EvalBroker {
    core: Mutex<BrokerCore>,
    ready: Notify,
    timers_changed: Notify,
}

fn now_unix() -> i64 {
    crate::now_unix()
}

impl EvalBroker {
    /// A disabled broker.
    pub fn new(config: BrokerConfig) -> Arc<Self> {
        Arc::new(EvalBroker {
            core: Mutex::new(BrokerCore::new(config)),
            ready: Notify::new(),
            timers_changed: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BrokerCore> {
        // A panic while holding the lock would be a bug in BrokerCore; keep serving anyway.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the core (tests and stats).
    pub fn with_core<T>(&self, f: impl FnOnce(&mut BrokerCore) -> T) -> T {
        f(&mut self.lock())
    }

    /// Enables (leader) or disables (flushes).
    pub fn set_enabled(&self, enabled: bool) {
        self.lock().set_enabled(enabled);
        self.ready.notify_waiters();
        self.timers_changed.notify_one();
    }

    /// Whether the broker accepts work.
    pub fn enabled(&self) -> bool {
        self.lock().enabled()
    }

    /// Adds evaluations (see [`BrokerCore::enqueue`]).
    pub fn enqueue_all(&self, evals: impl IntoIterator<Item = (Arc<Evaluation>, String)>) {
        {
            let mut core = self.lock();
            let now = Instant::now();
            let unix = now_unix();
            for (e, token) in evals {
                core.enqueue(e, &token, now, unix);
            }
        }
        self.ready.notify_waiters();
        self.timers_changed.notify_one();
    }

    /// Adds one evaluation.
    pub fn enqueue(&self, eval: Arc<Evaluation>) {
        self.enqueue_all([(eval, String::new())]);
    }

    /// Waits up to `timeout` for an evaluation of one of `schedulers`.
    pub async fn dequeue(&self, schedulers: &[&str], timeout: Duration) -> Option<(Arc<Evaluation>, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let token = uuid::Uuid::new_v4().to_string();
                let got = self.lock().dequeue(schedulers, token, Instant::now());
                if got.is_some() {
                    self.timers_changed.notify_one();
                    return got;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Acknowledges a delivery.
    pub fn ack(&self, id: &str, token: &str) -> Result<(), BrokerError> {
        let r = self.lock().ack(id, token, Instant::now(), now_unix());
        self.ready.notify_waiters();
        self.timers_changed.notify_one();
        r
    }

    /// Negatively acknowledges a delivery.
    pub fn nack(&self, id: &str, token: &str) -> Result<(), BrokerError> {
        let r = self.lock().nack(id, token, Instant::now());
        self.ready.notify_waiters();
        self.timers_changed.notify_one();
        r
    }

    /// See [`BrokerCore::outstanding_reset`].
    pub fn outstanding_reset(&self, id: &str, token: &str) -> Result<(), BrokerError> {
        self.lock().outstanding_reset(id, token, Instant::now())
    }

    /// See [`BrokerCore::pause_nack_timeout`].
    pub fn pause_nack_timeout(&self, id: &str, token: &str) -> Result<(), BrokerError> {
        self.lock().pause_nack_timeout(id, token)
    }

    /// See [`BrokerCore::resume_nack_timeout`].
    pub fn resume_nack_timeout(&self, id: &str, token: &str) -> Result<(), BrokerError> {
        let r = self.lock().resume_nack_timeout(id, token, Instant::now());
        self.timers_changed.notify_one();
        r
    }

    /// Superseded evaluations to cancel.
    pub fn take_cancelable(&self, max: usize) -> Vec<Arc<Evaluation>> {
        self.lock().take_cancelable(max)
    }

    /// Counters.
    pub fn stats(&self) -> BrokerStats {
        self.lock().stats()
    }

    /// The timer loop: fires nack timeouts and delays. Runs until the broker is dropped.
    pub async fn run_timers(self: Arc<Self>) {
        loop {
            let changed = self.timers_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (mono, unix) = {
                let mut core = self.lock();
                let woke = core.tick(Instant::now(), now_unix());
                if woke > 0 {
                    self.ready.notify_waiters();
                }
                core.next_deadline()
            };
            let mut sleep_until = Instant::now() + Duration::from_secs(1);
            if let Some(m) = mono {
                sleep_until = sleep_until.min(m);
            }
            if let Some(u) = unix {
                let wait = Duration::from_nanos(u.saturating_sub(now_unix()).max(0) as u64);
                sleep_until = sleep_until.min(Instant::now() + wait);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(sleep_until) => {}
                _ = &mut changed => {}
            }
            if Arc::strong_count(&self) == 1 {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, job: &str, priority: i64, create: u64) -> Arc<Evaluation> {
        Arc::new(Evaluation {
            id: id.into(),
            namespace: "default".into(),
            job_id: job.into(),
            priority,
            eval_type: "service".into(),
            status: "pending".into(),
            create_index: create,
            modify_index: create,
            ..Default::default()
        })
    }

    fn core() -> (BrokerCore, Instant) {
        let mut b = BrokerCore::new(BrokerConfig::default());
        b.set_enabled(true);
        (b, Instant::now())
    }

    #[test]
    fn priority_then_fifo_and_one_per_job() {
        let (mut b, now) = core();
        b.enqueue(ev("a", "j1", 50, 10), "", now, 0);
        b.enqueue(ev("b", "j2", 70, 11), "", now, 0);
        b.enqueue(ev("c", "j3", 50, 9), "", now, 0);
        b.enqueue(ev("d", "j1", 90, 12), "", now, 0); // same job: waits behind "a"
        assert_eq!(b.ready_ids("service"), vec!["b", "c", "a"]);
        assert_eq!(b.stats().total_pending, 1);
        let (e, _) = b.dequeue(&["service"], "t1".into(), now).unwrap();
        assert_eq!(e.id, "b");
        // Duplicate enqueue is dropped.
        b.enqueue(ev("c", "j3", 50, 9), "", now, 0);
        assert_eq!(b.ready_ids("service"), vec!["c", "a"]);
    }

    #[test]
    fn ack_promotes_newest_pending_and_cancels_the_rest() {
        let (mut b, now) = core();
        b.enqueue(ev("a", "j", 50, 1), "", now, 0);
        b.enqueue(ev("b", "j", 50, 2), "", now, 0);
        b.enqueue(ev("c", "j", 50, 3), "", now, 0);
        let (e, tok) = b.dequeue(&["service"], "t".into(), now).unwrap();
        assert_eq!(e.id, "a");
        assert!(
            b.dequeue(&["service"], "t2".into(), now).is_none(),
            "job slot is held"
        );
        assert_eq!(
            b.ack("a", "wrong", now, 0),
            Err(BrokerError::TokenMismatch("a".into()))
        );
        b.ack("a", &tok, now, 0).unwrap();
        assert_eq!(b.ready_ids("service"), vec!["c"]);
        let cancel: Vec<String> = b.take_cancelable(10).iter().map(|e| e.id.clone()).collect();
        assert_eq!(cancel, vec!["b"]);
    }

    #[test]
    fn nack_delays_then_fails_after_delivery_limit() {
        let (mut b, now) = core();
        b.enqueue(ev("a", "j", 50, 1), "", now, 0);
        let (_, t1) = b.dequeue(&["service"], "t1".into(), now).unwrap();
        b.nack("a", &t1, now).unwrap();
        assert!(b.ready_ids("service").is_empty(), "first redelivery waits 1 s");
        assert_eq!(b.tick(now + Duration::from_millis(999), 0), 0);
        assert_eq!(b.tick(now + Duration::from_secs(1), 0), 1);
        let (_, t2) = b.dequeue(&["service"], "t2".into(), now).unwrap();
        b.nack("a", &t2, now).unwrap();
        assert_eq!(
            b.tick(now + Duration::from_secs(19), 0),
            0,
            "second redelivery waits 20 s"
        );
        assert_eq!(b.tick(now + Duration::from_secs(20), 0), 1);
        let (_, t3) = b.dequeue(&["service"], "t3".into(), now).unwrap();
        b.nack("a", &t3, now).unwrap();
        assert_eq!(b.ready_ids(FAILED_QUEUE), vec!["a"]);
        // The job slot is still held by the failed evaluation.
        b.enqueue(ev("z", "j", 50, 5), "", now, 0);
        assert!(b.ready_ids("service").is_empty());
    }

    #[test]
    fn nack_timeout_fires_and_pausing_stops_it() {
        let (mut b, now) = core();
        b.enqueue(ev("a", "j1", 50, 1), "", now, 0);
        b.enqueue(ev("b", "j2", 50, 2), "", now, 0);
        let (_, ta) = b.dequeue(&["service"], "ta".into(), now).unwrap();
        let (_, tb) = b.dequeue(&["service"], "tb".into(), now).unwrap();
        b.pause_nack_timeout("b", &tb).unwrap();
        b.tick(now + Duration::from_secs(61), 0);
        assert_eq!(
            b.outstanding("a", &ta),
            Err(BrokerError::NotOutstanding("a".into()))
        );
        assert!(b.outstanding("b", &tb).is_ok(), "paused delivery survives");
        // A late ack of the timed-out delivery is refused.
        assert!(b.ack("a", &ta, now, 0).is_err());
    }

    #[test]
    fn wait_until_and_requeue_with_token() {
        let (mut b, now) = core();
        let mut e = (*ev("a", "j", 50, 1)).clone();
        e.wait_until = Some(drover_types::time::Timestamp(1_000));
        b.enqueue(Arc::new(e), "", now, 500);
        assert!(b.ready_ids("service").is_empty());
        b.tick(now, 999);
        assert!(b.ready_ids("service").is_empty());
        b.tick(now, 1_000);
        assert_eq!(b.ready_ids("service"), vec!["a"]);
        let (e, tok) = b.dequeue(&["service"], "t".into(), now).unwrap();
        // Re-enqueued while outstanding (a missed unblock): held until the ack.
        b.enqueue(e.clone(), &tok, now, 0);
        assert!(b.ready_ids("service").is_empty());
        b.ack("a", &tok, now, 2_000).unwrap();
        assert_eq!(b.ready_ids("service"), vec!["a"]);
    }

    #[test]
    fn disable_flushes() {
        let (mut b, now) = core();
        b.enqueue(ev("a", "j", 50, 1), "", now, 0);
        b.set_enabled(false);
        b.enqueue(ev("b", "j2", 50, 1), "", now, 0);
        b.set_enabled(true);
        assert_eq!(b.stats(), BrokerStats::default());
    }

    #[tokio::test(start_paused = true)]
    async fn async_dequeue_waits_for_enqueue_and_times_out() {
        let b = EvalBroker::new(BrokerConfig::default());
        b.set_enabled(true);
        assert!(
            b.dequeue(&["service"], Duration::from_millis(100))
                .await
                .is_none()
        );
        let b2 = b.clone();
        let h = tokio::spawn(async move { b2.dequeue(&["service"], Duration::from_secs(5)).await });
        tokio::task::yield_now().await;
        b.enqueue(ev("a", "j", 50, 1));
        let (e, _) = h.await.unwrap().unwrap();
        assert_eq!(e.id, "a");
    }
}
