//! The notifier: a [`Reporter`] that turns a run's events into notifications and delivers
//! them on a background thread, so a slow webhook never holds up the run. At the end it
//! waits for what is still queued, for at most as long as those deliveries can take (and
//! never more than [`MAX_FINISH_WAIT`]). Every delivery is recorded in the job's
//! `notifications.jsonl`; a failed one is also a warning on stderr.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::notify::deliver::{deliver, worst_case};
use crate::notify::message::{EventCounts, NotifyEvent};
use crate::notify::spec::{Notify, NotifyOn};
use crate::report::event::Event;
use crate::report::reporter::Reporter;
use crate::state::jsonl::{Framing, append_durable};
use crate::state::records::{ItemStatus, JobState};

/// Item notifications (dlq, timeout, stale) sent per kind in one run; more are not sent.
pub const MAX_ITEM_NOTIFICATIONS: u32 = 10;

/// The longest the end of a run waits for queued notifications.
pub const MAX_FINISH_WAIT: Duration = Duration::from_secs(120);

/// The file in a job (or pipeline) directory where deliveries are recorded.
pub const RECORD_FILE: &str = "notifications.jsonl";

/// One line of `notifications.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub at: String,
    pub event: NotifyOn,
    pub target: String,
    pub ok: bool,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
}

/// Who is notifying: the job (or pipeline) and where its files are.
#[derive(Debug, Clone)]
pub struct NotifyContext {
    /// `job` or `pipeline`.
    pub kind: &'static str,
    pub job_id: String,
    pub workflow: String,
    /// Where notification commands run (the workflow's directory).
    pub work_dir: PathBuf,
    /// The job's directory (holds `notifications.jsonl`).
    pub job_dir: PathBuf,
}

struct Queued {
    event: NotifyEvent,
    specs: Vec<Notify>,
}

pub struct Notifier {
    ctx: NotifyContext,
    specs: Arc<Vec<Notify>>,
    tx: Option<mpsc::Sender<Queued>>,
    done: mpsc::Receiver<()>,
    /// Worst-case time of everything queued so far.
    budget: Duration,
    item_sent: HashMap<NotifyOn, u32>,
}

impl Notifier {
    /// A notifier for `specs`, or `None` when there are none.
    pub fn new(specs: &[Notify], ctx: NotifyContext) -> Option<Notifier> {
        if specs.is_empty() {
            return None;
        }
        let (tx, rx) = mpsc::channel::<Queued>();
        let (done_tx, done) = mpsc::channel();
        let worker_ctx = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || {
                for q in rx {
                    deliver_all(&worker_ctx, &q);
                }
                let _ = done_tx.send(());
            });
        if let Err(e) = spawned {
            tracing::warn!("notifications are off for this run: cannot start their thread: {e}");
            return None;
        }
        Some(Notifier {
            ctx,
            specs: Arc::new(specs.to_vec()),
            tx: Some(tx),
            done,
            budget: Duration::ZERO,
            item_sent: HashMap::new(),
        })
    }

    /// Queue `event` for every notification that listens to its kind.
    pub fn send(&mut self, event: NotifyEvent) {
        let specs: Vec<Notify> = self
            .specs
            .iter()
            .filter(|s| s.on.contains(&event.event))
            .cloned()
            .collect();
        if specs.is_empty() {
            return;
        }
        if matches!(
            event.event,
            NotifyOn::Dlq | NotifyOn::Timeout | NotifyOn::Stale
        ) {
            let n = self.item_sent.entry(event.event).or_default();
            *n += 1;
            if *n > MAX_ITEM_NOTIFICATIONS {
                if *n == MAX_ITEM_NOTIFICATIONS + 1 {
                    tracing::warn!(
                        "more than {MAX_ITEM_NOTIFICATIONS} `{}` notifications in this run: the rest are not sent",
                        event.event.name()
                    );
                }
                return;
            }
        }
        self.budget += specs.iter().map(worst_case).sum::<Duration>();
        if let Some(tx) = &self.tx {
            let _ = tx.send(Queued { event, specs });
        }
    }

    /// Wait (bounded) for the queued deliveries.
    pub fn close(&mut self) {
        let Some(tx) = self.tx.take() else {
            return;
        };
        drop(tx);
        if self.budget.is_zero() {
            return; // nothing was queued: the thread ends on its own
        }
        let wait = self.budget.min(MAX_FINISH_WAIT);
        if self.done.recv_timeout(wait).is_err() {
            tracing::warn!(
                "stopped waiting for notifications after {}; the job's outcome stands",
                humantime::format_duration(wait)
            );
        }
    }

    fn event(&self, kind: NotifyOn) -> NotifyEvent {
        NotifyEvent::new(kind, self.ctx.kind, &self.ctx.job_id, &self.ctx.workflow)
    }
}

/// `reporter`, plus a notifier when the workflow has `notify:` entries: how every run of a
/// job (`run`, `resume`, `dlq retry`) gets its notifications.
pub fn with_notifications(
    reporter: Box<dyn Reporter>,
    workflow: &crate::workflow::model::Workflow,
    meta: &crate::state::job::JobMeta,
    dir: &crate::state::layout::JobDir,
) -> Box<dyn Reporter> {
    let ctx = NotifyContext {
        kind: "job",
        job_id: meta.job_id.clone(),
        workflow: workflow.name.clone(),
        work_dir: workflow.dir.clone(),
        job_dir: dir.path().to_path_buf(),
    };
    match Notifier::new(&workflow.notify, ctx) {
        Some(n) => Box::new(crate::report::reporter::Fanout(vec![reporter, Box::new(n)])),
        None => reporter,
    }
}

fn deliver_all(ctx: &NotifyContext, q: &Queued) {
    let value = serde_json::to_value(&q.event).unwrap_or_default();
    for spec in &q.specs {
        let d = deliver(spec, &value, &ctx.work_dir);
        let label = spec.target.label();
        if !d.ok {
            tracing::warn!(
                "notification `{}` to {label} failed after {} attempt(s): {}; the job goes on",
                q.event.event.name(),
                d.attempts,
                d.error.as_deref().unwrap_or("unknown error")
            );
        }
        let rec = DeliveryRecord {
            at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            event: q.event.event,
            target: label,
            ok: d.ok,
            attempts: d.attempts,
            error: d.error,
            item_id: q.event.item_id.clone(),
        };
        let path = ctx.job_dir.join(RECORD_FILE);
        if let Err(e) = append_durable(&path, Framing::Plain, &rec) {
            tracing::warn!("cannot record a notification in {}: {e}", path.display());
        }
    }
}

impl Reporter for Notifier {
    fn report(&mut self, ev: &Event) {
        let e = match ev {
            Event::ItemFinished {
                item_id,
                status: ItemStatus::Dlq,
                attempts,
                error,
                ..
            } => {
                let mut e = self.event(NotifyOn::Dlq).with_error(error.clone());
                e.item_id = Some(item_id.clone());
                e.attempt = Some(*attempts);
                e
            }
            Event::ItemTimedOut {
                item_id,
                attempt,
                error,
            } => {
                let mut e = self
                    .event(NotifyOn::Timeout)
                    .with_error(Some(error.clone()));
                e.item_id = Some(item_id.clone());
                e.attempt = Some(*attempt);
                e
            }
            Event::ItemStuck {
                item_id,
                attempt,
                running_ms,
            } => {
                let mut e = self.event(NotifyOn::Stale);
                e.item_id = Some(item_id.clone());
                e.attempt = Some(*attempt);
                e.running_ms = Some(*running_ms);
                e
            }
            Event::JobFinished {
                state,
                exit_code,
                total,
                successful,
                failed,
                dlq,
                pending,
                reason,
                ..
            } => {
                let kind = match state {
                    JobState::Completed => NotifyOn::Success,
                    JobState::Failed => NotifyOn::Failure,
                    _ => return,
                };
                let mut e = self.event(kind).with_error(reason.clone());
                e.state = serde_json::to_value(state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned));
                e.exit_code = Some(*exit_code);
                e.counts = Some(EventCounts {
                    total: *total,
                    successful: *successful,
                    failed: *failed,
                    dlq: *dlq,
                    pending: *pending,
                });
                e
            }
            _ => return,
        };
        self.send(e.finish());
    }

    fn finish(&mut self) {
        self.close();
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.close();
    }
}
