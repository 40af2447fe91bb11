use super::*;
use crate::retry::{Attempt, Partial, RetryConfig};
use crate::sending::{Sending, Transport};
use crate::test_support::Acks;
use centimane_core::{AckStatus, Batch, Entry, SharedBatch, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::timeout;

fn id() -> ComponentId {
    "otlp/test".parse().unwrap()
}

/// A request whose payload is `records` repeated, so it can be recognised when it comes out.
fn item(acks: &Acks, token: u64, records: u64) -> Item {
    Item {
        payload: Bytes::from(vec![records as u8; 4]),
        records,
        acks: acks.token(token).into(),
    }
}

fn memory(queue_size: u64, sizer: Sizer) -> (Queue, Arc<ExporterStats>) {
    let stats = Arc::new(ExporterStats::default());
    let config = SendingQueueConfig {
        queue_size,
        sizer,
        ..SendingQueueConfig::default()
    };
    let (queue, _) = Queue::open(&id(), &config, None, stats.clone()).unwrap();
    (queue, stats)
}

fn persistent_config(queue_size: u64) -> SendingQueueConfig {
    SendingQueueConfig {
        queue_size,
        storage: Some("file_storage".parse().unwrap()),
        ..SendingQueueConfig::default()
    }
}

fn persistent(dir: &Path, queue_size: u64) -> Queue {
    let stats = Arc::new(ExporterStats::default());
    Queue::open(&id(), &persistent_config(queue_size), Some(dir), stats)
        .unwrap()
        .0
}

const SHORT: Duration = Duration::from_millis(50);

async fn pop_records(queue: &Queue) -> (Lease, u64) {
    let lease = timeout(Duration::from_secs(5), queue.pop(&CancellationToken::new()))
        .await
        .expect("a request within 5s")
        .expect("the queue is open");
    let records = lease.records;
    assert_eq!(lease.payload.as_ref(), [records as u8; 4]);
    (lease, records)
}

#[test]
fn config() {
    assert_eq!(parse(None), Ok(SendingQueueConfig::default()));
    let c = parse(Some(serde_json::json!({
        "enabled": true, "num_consumers": 2, "queue_size": 5000, "sizer": "items",
        "storage": "file_storage/queue",
    })))
    .unwrap();
    assert_eq!(c.num_consumers, 2);
    assert_eq!(c.queue_size, 5000);
    assert_eq!(c.sizer, Sizer::Items);
    assert_eq!(c.storage, Some("file_storage/queue".parse().unwrap()));
    for (block, want) in [
        (
            serde_json::json!({"num_consumers": 0}),
            "`sending_queue.num_consumers`",
        ),
        (
            serde_json::json!({"queue_size": 0}),
            "`sending_queue.queue_size`",
        ),
        (
            serde_json::json!({"queue_size": -5}),
            "`sending_queue.queue_size`",
        ),
        (
            serde_json::json!({"sizer": "pages"}),
            "`sending_queue.sizer`",
        ),
        (
            serde_json::json!({"storag": "x"}),
            "did you mean `sending_queue.storage`",
        ),
    ] {
        let err = parse(Some(block.clone())).unwrap_err();
        assert!(err.contains(want), "{block}: {err}");
    }
}

#[test]
fn a_storage_that_is_not_an_extension_is_a_startup_error() {
    let stats = Arc::new(ExporterStats::default());
    let err = Queue::open(&id(), &persistent_config(1), None, stats)
        .err()
        .unwrap();
    assert!(err.contains("`file_storage`"), "{err}");
}

#[tokio::test]
async fn memory_queue_waits_for_room_and_counts_requests_in_flight() {
    let (queue, stats) = memory(2, Sizer::Requests);
    let acks = Acks::new();
    let abandon = CancellationToken::new();
    assert!(queue.push(item(&acks, 0, 1), &abandon).await);
    assert!(queue.push(item(&acks, 1, 2), &abandon).await);
    let third = queue.push(item(&acks, 2, 3), &abandon);
    tokio::pin!(third);
    assert!(timeout(SHORT, &mut third).await.is_err(), "full");
    let (first, records) = pop_records(&queue).await;
    assert_eq!(records, 1);
    assert!(
        timeout(SHORT, &mut third).await.is_err(),
        "a request being sent still holds its room"
    );
    queue.finish(first, &Outcome::Accepted(None)).await;
    assert!(third.await);
    assert_eq!(stats.snapshot().queued, 2);
    assert_eq!(acks.wait_for(1).await, [(0, AckStatus::Delivered)]);

    let (second, records) = pop_records(&queue).await;
    assert_eq!(records, 2);
    queue.finish(second, &Outcome::GaveUp("down".into())).await;
    queue.close();
    let (third, records) = pop_records(&queue).await;
    assert_eq!(records, 3, "a closed queue still hands out what it holds");
    queue.finish(third, &Outcome::Rejected("bad".into())).await;
    assert!(queue.pop(&abandon).await.is_none());
    assert_eq!(
        acks.wait_for(3).await,
        [
            (0, AckStatus::Delivered),
            (1, AckStatus::Failed),
            (2, AckStatus::Delivered)
        ]
    );
    assert_eq!(stats.snapshot().queued, 0);
}

#[tokio::test]
async fn items_and_bytes_sizers_and_an_oversized_request() {
    let acks = Acks::new();
    let abandon = CancellationToken::new();
    let (queue, _) = memory(10, Sizer::Items);
    assert!(queue.push(item(&acks, 0, 6), &abandon).await);
    assert!(
        timeout(SHORT, queue.push(item(&acks, 1, 6), &abandon))
            .await
            .is_err(),
        "6 + 6 records do not fit in 10"
    );
    let (lease, _) = pop_records(&queue).await;
    queue.finish(lease, &Outcome::Accepted(None)).await;
    assert!(
        queue.push(item(&acks, 2, 50), &abandon).await,
        "larger than the whole queue, but the queue is empty"
    );

    let (queue, stats) = memory(6, Sizer::Bytes);
    assert!(queue.push(item(&acks, 3, 1), &abandon).await);
    assert_eq!(stats.snapshot().queued, 4, "4 payload bytes");
    assert!(
        timeout(SHORT, queue.push(item(&acks, 4, 1), &abandon))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn abandoning_a_waiting_push_drops_the_request_unsettled() {
    let (queue, _) = memory(1, Sizer::Requests);
    let acks = Acks::new();
    let abandon = CancellationToken::new();
    assert!(queue.push(item(&acks, 0, 1), &abandon).await);
    let waiting = queue.push(item(&acks, 1, 1), &abandon);
    abandon.cancel();
    assert!(!waiting.await);
    assert!(queue.pop(&abandon).await.is_none());
    drop(queue);
    let mut seen = acks.wait_for(2).await;
    seen.sort_by_key(|(id, _)| *id);
    assert_eq!(seen, [(0, AckStatus::Failed), (1, AckStatus::Failed)]);
}

#[tokio::test]
async fn persistent_queue_acks_once_stored_and_keeps_what_was_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let acks = Acks::new();
    let abandon = CancellationToken::new();
    {
        let queue = persistent(dir.path(), 10);
        for n in 1..=3 {
            assert!(queue.push(item(&acks, n, n), &abandon).await);
        }
        // Stored durably: the receiver may commit, although nothing was sent yet.
        assert_eq!(
            acks.wait_for(3).await,
            [
                (1, AckStatus::Delivered),
                (2, AckStatus::Delivered),
                (3, AckStatus::Delivered)
            ]
        );
        let (first, records) = pop_records(&queue).await;
        assert_eq!(records, 1);
        queue.finish(first, &Outcome::Accepted(None)).await;
        let (_in_flight, records) = pop_records(&queue).await;
        assert_eq!(records, 2);
        // Dropped here without finishing: what a crash mid-send leaves.
    }
    let queue = persistent(dir.path(), 10);
    let (second, records) = pop_records(&queue).await;
    assert_eq!(
        records, 2,
        "the request in flight at the crash comes back first"
    );
    queue.finish(second, &Outcome::GaveUp("down".into())).await;
    let (third, records) = pop_records(&queue).await;
    assert_eq!(records, 3, "a request given up on goes behind the others");
    let (second, records) = pop_records(&queue).await;
    assert_eq!(records, 2);
    queue.finish(second, &Outcome::Rejected("bad".into())).await;
    queue.finish(third, &Outcome::Stopped).await;
    queue.close();
    assert!(
        queue.pop(&abandon).await.is_none(),
        "closed: hands out nothing more"
    );
    drop(queue);

    let queue = persistent(dir.path(), 10);
    let (third, records) = pop_records(&queue).await;
    assert_eq!(records, 3, "kept for the next start");
    queue.finish(third, &Outcome::Accepted(None)).await;
    assert!(timeout(SHORT, queue.pop(&abandon)).await.is_err(), "empty");
}

#[tokio::test]
async fn a_persistent_queue_starts_full_with_what_the_last_run_left() {
    let dir = tempfile::tempdir().unwrap();
    let acks = Acks::new();
    let abandon = CancellationToken::new();
    {
        let queue = persistent(dir.path(), 10);
        for n in 1..=3 {
            assert!(queue.push(item(&acks, n, n), &abandon).await);
        }
    }
    let queue = persistent(dir.path(), 2);
    let push = queue.push(item(&acks, 4, 4), &abandon);
    tokio::pin!(push);
    assert!(timeout(SHORT, &mut push).await.is_err(), "3 stored > 2");
    for _ in 0..2 {
        let (lease, _) = pop_records(&queue).await;
        queue.finish(lease, &Outcome::Accepted(None)).await;
    }
    assert!(push.await);
}

#[tokio::test]
async fn one_persistent_queue_file_has_one_user() {
    let dir = tempfile::tempdir().unwrap();
    let _first = persistent(dir.path(), 10);
    let stats = Arc::new(ExporterStats::default());
    let err = Queue::open(&id(), &persistent_config(10), Some(dir.path()), stats)
        .err()
        .unwrap();
    assert!(err.starts_with("cannot open the persistent queue"), "{err}");
    assert!(err.contains("exporter_otlp_test_queue.redb"), "{err}");
}

// ---- the sending loop, with a fake backend ----

/// A backend that answers from a script (then with `otherwise`), and can be made to hold
/// every call until `gate` has permits.
struct Fake {
    script: Mutex<VecDeque<Attempt>>,
    otherwise: fn() -> Attempt,
    gate: Option<Arc<Semaphore>>,
    calls: mpsc::UnboundedSender<u64>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

impl Fake {
    fn new(
        script: Vec<Attempt>,
        otherwise: fn() -> Attempt,
    ) -> (Fake, mpsc::UnboundedReceiver<u64>) {
        let (calls, seen) = mpsc::unbounded_channel();
        let fake = Fake {
            script: Mutex::new(script.into()),
            otherwise,
            gate: None,
            calls,
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
        };
        (fake, seen)
    }
}

impl Transport for Arc<Fake> {
    async fn send(&self, _payload: Bytes, records: u64) -> Attempt {
        let _ = self.calls.send(records);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            let _permit = gate.acquire().await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let next = self.script.lock().unwrap().pop_front();
        next.unwrap_or_else(self.otherwise)
    }
}

fn ok() -> Attempt {
    Attempt::Accepted(None)
}

fn unavailable() -> Attempt {
    Attempt::Retry {
        error: "unavailable".into(),
        at_least: None,
    }
}

fn fast_retry() -> RetryConfig {
    RetryConfig {
        initial_interval: Duration::from_millis(10),
        max_interval: Duration::from_millis(20),
        randomization_factor: 0.0,
        ..RetryConfig::default()
    }
}

/// `records` entries in one shared batch.
fn batch(acks: &Acks, token: u64, records: usize) -> SharedBatch {
    let entries = (0..records)
        .map(|n| Entry::new(Value::Int(n as i64)))
        .collect();
    Batch::new(entries, acks.token(token).into()).into_shared()
}

struct Running {
    tx: Option<mpsc::Sender<SharedBatch>>,
    abandon: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    stats: Arc<ExporterStats>,
}

fn start(fake: Arc<Fake>, queue: SendingQueueConfig, dir: Option<&Path>) -> Running {
    let stats = Arc::new(ExporterStats::default());
    let sending = Sending::new(id(), fake, fast_retry(), &queue, dir, &stats).unwrap();
    let (tx, rx) = mpsc::channel(1);
    let abandon = CancellationToken::new();
    let task = tokio::spawn(sending.run(rx, abandon.clone()));
    Running {
        tx: Some(tx),
        abandon,
        task,
        stats,
    }
}

impl Running {
    async fn send(&self, batch: SharedBatch) {
        let tx = self.tx.as_ref().unwrap();
        timeout(Duration::from_secs(5), tx.send(batch))
            .await
            .expect("taken within 5s")
            .unwrap();
    }

    async fn finish(mut self) -> Arc<ExporterStats> {
        self.tx = None;
        timeout(Duration::from_secs(5), self.task)
            .await
            .expect("done within 5s")
            .unwrap();
        self.stats
    }
}

#[tokio::test]
async fn consumers_send_in_parallel_and_ack_after_acceptance() {
    let (mut fake, _calls) = Fake::new(vec![], ok);
    let gate = Arc::new(Semaphore::new(0));
    fake.gate = Some(gate.clone());
    let fake = Arc::new(fake);
    let queue = SendingQueueConfig {
        num_consumers: 3,
        ..SendingQueueConfig::default()
    };
    let running = start(fake.clone(), queue, None);
    let acks = Acks::new();
    for n in 0..5 {
        running.send(batch(&acks, n, 2)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while fake.in_flight.load(Ordering::SeqCst) < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        acks.seen().is_empty(),
        "nothing acknowledged before the backend answered"
    );
    gate.add_permits(100);
    let stats = running.finish().await;
    assert_eq!(fake.most_in_flight.load(Ordering::SeqCst), 3);
    let seen = acks.wait_for(5).await;
    assert!(
        seen.iter().all(|(_, s)| *s == AckStatus::Delivered),
        "{seen:?}"
    );
    let snap = stats.snapshot();
    assert_eq!((snap.sent_records, snap.sent_requests), (10, 5));
}

/// With the backend hanging, the exporter holds `queue_size` requests, one more waiting
/// for room, one in its input channel, and then refuses to take more: backpressure.
#[tokio::test]
async fn a_full_queue_stops_taking_input() {
    let (mut fake, _calls) = Fake::new(vec![], ok);
    fake.gate = Some(Arc::new(Semaphore::new(0)));
    let queue = SendingQueueConfig {
        num_consumers: 1,
        queue_size: 2,
        ..SendingQueueConfig::default()
    };
    let running = start(Arc::new(fake), queue, None);
    let acks = Acks::new();
    for n in 0..4 {
        running.send(batch(&acks, n, 1)).await;
    }
    let tx = running.tx.clone().unwrap();
    assert!(
        timeout(Duration::from_millis(200), tx.send(batch(&acks, 4, 1)))
            .await
            .is_err(),
        "a fifth batch is not taken"
    );
    drop(tx);
    running.abandon.cancel();
    drop(running.tx);
    timeout(Duration::from_secs(5), running.task)
        .await
        .expect("abandons promptly")
        .unwrap();
    let seen = acks.wait_for(5).await;
    assert_eq!(seen.len(), 5);
    assert!(
        seen.iter().all(|(_, s)| *s == AckStatus::Failed),
        "{seen:?}"
    );
}

#[tokio::test]
async fn rejections_and_partial_successes_are_counted() {
    let partial = Attempt::Accepted(Some(Partial {
        rejected: 1,
        message: "too old".into(),
    }));
    let (fake, _calls) = Fake::new(vec![Attempt::Rejected("bad".into()), partial], ok);
    let running = start(
        Arc::new(fake),
        SendingQueueConfig {
            num_consumers: 1,
            ..SendingQueueConfig::default()
        },
        None,
    );
    let acks = Acks::new();
    running.send(batch(&acks, 0, 3)).await;
    running.send(batch(&acks, 1, 4)).await;
    running.send(batch(&acks, 2, 5)).await;
    let snap = running.finish().await.snapshot();
    assert_eq!(
        (snap.rejected_records, snap.rejected_requests),
        (3, 1),
        "{snap:?}"
    );
    assert_eq!(snap.partially_rejected_records, 1);
    assert_eq!(snap.sent_records, 3 + 5);
    assert_eq!(snap.sent_requests, 2);
    let seen = acks.wait_for(3).await;
    assert!(
        seen.iter().all(|(_, s)| *s == AckStatus::Delivered),
        "{seen:?}"
    );
}

/// The backend is down; the agent stops (here: abandons, as a crash would leave things);
/// the next run sends what the first one stored before anything new.
#[tokio::test]
async fn a_persistent_queue_survives_an_outage_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let acks = Acks::new();
    let (down, _calls) = Fake::new(vec![], unavailable);
    let running = start(Arc::new(down), persistent_config(100), Some(dir.path()));
    for n in 0..3 {
        running.send(batch(&acks, n, n as usize + 1)).await;
    }
    assert_eq!(acks.wait_for(3).await.len(), 3);
    assert!(
        acks.seen().iter().all(|(_, s)| *s == AckStatus::Delivered),
        "acknowledged once stored, while the backend is down"
    );
    // Closing the input while the backend is down ends promptly: the queue is on disk.
    let started = tokio::time::Instant::now();
    running.finish().await;
    assert!(started.elapsed() < Duration::from_secs(2));

    let (up, mut calls) = Fake::new(vec![], ok);
    let running = start(Arc::new(up), persistent_config(100), Some(dir.path()));
    let mut order = Vec::new();
    for _ in 0..3 {
        order.push(
            timeout(Duration::from_secs(5), calls.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    order.sort_unstable(); // several consumers: any order among the three
    assert_eq!(order, [1, 2, 3]);
    running.send(batch(&acks, 9, 7)).await;
    assert_eq!(calls.recv().await, Some(7));
    let snap = running.finish().await.snapshot();
    assert_eq!(snap.sent_records, 1 + 2 + 3 + 7);
    assert_eq!(snap.queued, 0);
}
