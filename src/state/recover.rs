//! A job's recorded state, read back: the checkpoint, then the journal after it, and what
//! that state means for display (a live lock holder means running, a crashed run means
//! interrupted).

use std::time::{Duration, SystemTime};

use super::checkpoint::{self, JournalPos};
use super::error::StateError;
use super::job::JobView;
use super::journal::truncate_torn_tail;
use super::layout::JobDir;
use super::lock::{LockInfo, is_held, read_info};
use super::records::JobState;
use super::segments::Segments;

/// The job's state as recorded: the checkpoint, then the journal after it. With `repair`
/// (only while holding the lock) a torn last record is cut off so appends can follow. A
/// damaged checkpoint is ignored (with a warning) in favour of a replay of the whole journal.
pub fn recover(dir: &JobDir, repair: bool) -> Result<JobView, StateError> {
    let (mut view, from) = match checkpoint::read(dir) {
        Ok(Some(c)) => c,
        Ok(None) => (JobView::default(), JournalPos::default()),
        Err(e) => {
            tracing::warn!("ignoring the checkpoint and replaying the whole journal: {e}");
            (JobView::default(), JournalPos::default())
        }
    };
    let segments = Segments::find(dir)?;
    let end = match segments.replay(dir, from, |rec| view.apply(&rec)) {
        Ok(end) => end,
        Err(StateError::BadOffset { .. }) if from.segment == segments.active_seq => {
            // The checkpoint is ahead of the journal (journal restored or cut): trust the
            // journal, as far as it goes back.
            view = JobView::default();
            let start = JournalPos {
                segment: segments.sealed.first().map_or(segments.active_seq, |s| s.0),
                offset: 0,
            };
            segments.replay(dir, start, |rec| view.apply(&rec))?
        }
        Err(e) => return Err(e),
    };
    if repair && end.torn_tail.is_some() {
        truncate_torn_tail(&dir.journal(), end.valid_len)?;
    }
    Ok(view)
}

/// A live job whose heartbeat is older than this is reported as `stale`.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// The job's state for display: a live holder of the lock means running (or paused, or
/// stale when its heartbeat stopped); a free lock with an open run means it crashed.
pub fn display_state(dir: &JobDir, view: &JobView) -> JobState {
    if is_held(&dir.lock()) {
        let beat = read_info(&dir.lock()).and_then(|i| heartbeat_age(&i));
        if beat.is_some_and(|age| age > STALE_AFTER) {
            return JobState::Stale;
        }
        if view.paused().is_some() {
            return JobState::Paused;
        }
        return JobState::Running;
    }
    recorded_state(view)
}

/// How long ago the lock's holder last wrote its heartbeat.
pub fn heartbeat_age(info: &LockInfo) -> Option<Duration> {
    let t = humantime::parse_rfc3339_weak(&info.heartbeat_at).ok()?;
    SystemTime::now().duration_since(t).ok()
}

/// The state the journal leaves when no process holds the lock: an open run crashed.
pub fn recorded_state(view: &JobView) -> JobState {
    if view.run_open {
        return JobState::Interrupted;
    }
    view.last_state.unwrap_or(JobState::Interrupted)
}
