//! Live control of a running job: interrupts (SIGINT/SIGTERM, forwarded to the steps in
//! flight), graceful stops (`runner stop`), kill-now, and pause requests arriving from
//! signals or from the job's control channel.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::StopCause;

use crate::state::mailbox::{ControlRequest, take_all};

/// How often the control channel is looked at (a few cheap wakeups per second).
const POLL: Duration = Duration::from_millis(200);

/// Default time between forwarding SIGINT/SIGTERM to the steps in flight and killing what
/// is left of them (`--kill-grace`).
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(2);

/// Messages to the loop that owns the job's state (dispatcher, setup/reduce): pause
/// requests, which it records, and the news of an interrupt, which it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMsg {
    Pause(Option<String>),
    Unpause,
    /// The first SIGINT/SIGTERM arrived and was forwarded to the steps in flight.
    Interrupted(Interrupt),
}

/// An interrupt by signal: the signal is forwarded to every step's process group, and what
/// is left after `grace` is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupt {
    pub signal: Signal,
    pub grace: Duration,
}

/// How cancelled steps are killed, shared by every step of a run: after an interrupt, with
/// the interrupting signal and its grace; otherwise (stop, timeout) SIGTERM and the step's
/// `kill_grace`. `now` (a second signal) skips every grace period.
#[derive(Debug, Clone, Default)]
pub struct KillSwitch {
    pub now: CancellationToken,
    interrupt: Arc<OnceLock<Interrupt>>,
}

impl KillSwitch {
    /// The first signal and the grace before KILL for a cancelled step.
    pub fn plan(&self, default_grace: Duration) -> (Signal, Duration) {
        match self.interrupt.get() {
            Some(i) => (i.signal, i.grace),
            None => (Signal::SIGTERM, default_grace),
        }
    }
}

/// The tokens every part of a run watches.
#[derive(Debug, Clone, Default)]
pub struct Controls {
    /// No new item or step starts.
    pub stop: CancellationToken,
    /// In-flight work is cancelled (TERM its process groups, KILL after the kill grace).
    pub cancel: CancellationToken,
    /// How cancelled steps are killed (and "KILL at once").
    pub kill: KillSwitch,
    /// What asked the run to stop, if anything did (a signal wins over `runner stop`).
    cause: Arc<Mutex<Option<StopCause>>>,
}

impl Controls {
    /// Stop dispatching now; cancel what still runs after `grace`.
    pub fn request_stop(&self, grace: Duration) {
        if self.stop.is_cancelled() {
            return;
        }
        self.set_cause(StopCause::StopRequest);
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

    /// SIGINT/SIGTERM: no new work starts, and the steps in flight get the same signal now
    /// (their process groups), then KILL after `grace`. Returns false if a stop or an
    /// interrupt came first (the interrupt then is a no-op).
    pub fn interrupt(&self, signal: Signal, grace: Duration) -> bool {
        if self
            .kill
            .interrupt
            .set(Interrupt { signal, grace })
            .is_err()
        {
            return false;
        }
        self.set_cause(StopCause::Signal(signal));
        self.stop.cancel();
        self.cancel.cancel();
        true
    }

    pub fn kill_now(&self) {
        self.stop.cancel();
        self.kill.now.cancel();
        self.cancel.cancel();
    }

    fn set_cause(&self, cause: StopCause) {
        let mut c = self.cause.lock().unwrap_or_else(PoisonError::into_inner);
        if !matches!(*c, Some(StopCause::Signal(_))) {
            *c = Some(cause);
        }
    }

    /// What asked the run to stop (`None`: nothing did).
    pub fn stop_cause(&self) -> Option<StopCause> {
        *self.cause.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// First SIGINT/SIGTERM: forward it to the steps in flight, KILL what is left after
/// `grace`, and tell `tx` (which reports it at once); a second one: KILL now.
///
/// Installing the handlers also makes the steps start with the default disposition of
/// SIGINT (and SIGQUIT, see [`reset_inherited_ignores`]) even when runner was started with
/// them ignored (`runner run wf.yml &` in a script): a caught signal is reset to its
/// default on exec, an ignored one would be inherited.
pub fn watch_signals(
    controls: Controls,
    grace: Duration,
    tx: Option<mpsc::UnboundedSender<ControlMsg>>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    reset_inherited_ignores();
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::spawn(async move {
        let sig = tokio::select! {
            _ = int.recv() => Signal::SIGINT,
            _ = term.recv() => Signal::SIGTERM,
        };
        if controls.interrupt(sig, grace)
            && let Some(tx) = &tx
        {
            let _ = tx.send(ControlMsg::Interrupted(Interrupt { signal: sig, grace }));
        }
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        controls.kill_now();
    });
}

/// When runner inherited SIGQUIT as ignored (a background job of a non-interactive shell),
/// catch it instead (doing nothing with it): runner still ignores it in effect, and its
/// steps start with the default disposition, since exec resets caught signals but keeps
/// ignored ones. SIGINT is caught by [`watch_signals`] itself.
fn reset_inherited_ignores() {
    if ignored_signals().is_some_and(|mask| mask & (1 << (Signal::SIGQUIT as u64 - 1)) != 0)
        && let Ok(mut quit) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::quit())
    {
        tokio::spawn(async move { while quit.recv().await.is_some() {} });
    }
}

/// The `SigIgn` mask of this process (bit n-1 for signal n), from `/proc/self/status`.
fn ignored_signals() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("SigIgn:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
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
