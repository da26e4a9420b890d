//! Live control of a running job: stop (graceful, then forced), kill-now, and pause requests
//! arriving from signals or from the job's control channel.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::state::control::{ControlRequest, take_all};

/// How often the control channel is looked at (a few cheap wakeups per second).
const POLL: Duration = Duration::from_millis(200);

/// Pause requests go to the dispatcher, which records them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMsg {
    Pause(Option<String>),
    Unpause,
}

/// The tokens every part of a run watches.
#[derive(Debug, Clone, Default)]
pub struct Controls {
    /// No new item or step starts.
    pub stop: CancellationToken,
    /// In-flight work is cancelled (TERM its process groups, KILL after the kill grace).
    pub cancel: CancellationToken,
    /// Skip grace periods: KILL at once.
    pub kill_now: CancellationToken,
    /// The signal that asked us to stop (2 or 15), 0 for `runner stop`/none.
    pub signal: Arc<AtomicI32>,
}

impl Controls {
    /// Stop dispatching now; cancel what still runs after `grace`.
    pub fn request_stop(&self, grace: Duration) {
        if self.stop.is_cancelled() {
            return;
        }
        self.stop.cancel();
        let cancel = self.cancel.clone();
        if grace.is_zero() {
            cancel.cancel();
            return;
        }
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            cancel.cancel();
        });
    }

    pub fn kill_now(&self) {
        self.stop.cancel();
        self.kill_now.cancel();
        self.cancel.cancel();
    }

    pub fn stop_signal(&self) -> i32 {
        self.signal.load(Ordering::SeqCst)
    }
}

/// First SIGINT/SIGTERM: graceful stop (like `runner stop`); a second SIGINT: kill now.
pub fn watch_signals(controls: Controls, grace: Duration) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::spawn(async move {
        let n = tokio::select! {
            _ = int.recv() => 2,
            _ = term.recv() => 15,
        };
        controls.signal.store(n, Ordering::SeqCst);
        controls.request_stop(grace);
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        controls.kill_now();
    });
}

/// Watch the job's control directory until `controls.cancel` fires or the receiver is gone.
pub fn watch_channel(dir: PathBuf, controls: Controls, tx: mpsc::UnboundedSender<ControlMsg>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = controls.cancel.cancelled() => return,
            }
            for req in take_all(&dir) {
                let sent = match req {
                    ControlRequest::Pause { reason } => tx.send(ControlMsg::Pause(reason)),
                    ControlRequest::Resume => tx.send(ControlMsg::Unpause),
                    ControlRequest::Stop { grace_ms } => {
                        controls.request_stop(Duration::from_millis(grace_ms));
                        Ok(())
                    }
                };
                if sent.is_err() {
                    return;
                }
            }
        }
    });
}
