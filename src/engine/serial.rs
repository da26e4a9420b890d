//! Setup and reduce: their steps one after another, each with its `on_failure`, recorded in
//! the journal as they finish (a resume starts at the first unfinished one), with the job's
//! pause and stop honoured between steps.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::engine::attempt::commit_required;
use crate::engine::attempt::executor::Executor;
use crate::engine::attempt::recovery::{Ended, SHELL, StepRunner, run_step};
use crate::engine::attempt::run::limit_for;
use crate::engine::attempt::step::{self, StepEnv, StepOutcome};
use crate::engine::attempt::vars::{JobVars, reduce_lookup};
use crate::engine::controls::ControlMsg;
use crate::engine::error::EngineError;
use crate::engine::limits::meter::AttemptResources;
use crate::engine::phases::JobRun;
use crate::engine::process::shell::SpawnHook;
use crate::engine::recorder::Recorder;
use crate::report::event::Event;
use crate::state::records::{Failure, JobState, Phase, Ran, Record};
use crate::state::time::Timestamp;
use crate::workflow::model::{Step, Workflow};
use crate::workflow::template::VarRef;

/// How a phase ended early: the job's state and why.
pub type PhaseEnd = Option<(JobState, Option<String>)>;

/// Run setup or reduce steps of `wf` from `from`; `Some(end)` when the phase failed or was
/// cancelled. `map` is `${map.*}` (reduce).
#[allow(clippy::too_many_arguments)]
pub async fn run_phase<E: Executor>(
    exec: &E,
    phase: Phase,
    wf: &Workflow,
    from: usize,
    vars: &JobVars,
    run: &JobRun<'_>,
    rec: &mut Recorder,
    control: &mut mpsc::UnboundedReceiver<ControlMsg>,
    map: Option<&Value>,
) -> Result<PhaseEnd, EngineError> {
    let (steps, name) = match phase {
        Phase::Setup => (&wf.setup, "setup"),
        _ => (&wf.reduce, "reduce"),
    };
    // Prodigy's setup-phase timeout bounds every setup step by what is left of it.
    let deadline = match phase {
        Phase::Setup => wf.setup_timeout.map(|t| Instant::now() + t),
        _ => None,
    };
    rec.report(&Event::PhaseStarted { phase });
    let phase_started = Instant::now();
    let (mut local, last_shell) = if phase == Phase::Reduce {
        (rec.view.reduce_captures.clone(), &rec.view.reduce_shell)
    } else {
        (Map::new(), &rec.view.setup_shell)
    };
    // A resume skips the steps done before: `${shell.*}` is what the last of them left.
    if let Some(shell) = last_shell.clone().filter(|_| from > 0) {
        local.insert(SHELL.into(), shell);
    }
    for (i, st) in steps.iter().enumerate().skip(from) {
        if hold_while_paused(run, rec, control).await? {
            return Ok(Some((JobState::Interrupted, None)));
        }
        let (spawned_tx, spawned_rx) = mpsc::unbounded_channel::<(i32, u64)>();
        let mut runner = PhaseRunner {
            exec,
            phase,
            senv: StepEnv {
                dir: wf.dir.clone(),
                env: vars.env_pairs(wf),
                kill_grace: wf.map.kill_grace,
                log_stem: Some(rec.dir.logs_dir().join(format!("{name}-{}", i + 1))),
                tee: run.tee_output,
                on_spawn: Some(SpawnHook(Arc::new(move |pgid, start| {
                    let _ = spawned_tx.send((pgid, start));
                }))),
                kill: run.controls.kill.clone(),
                resources: AttemptResources::new(None),
            },
            spawned_rx,
            vars,
            map,
            deadline,
            cancel: &run.controls.cancel,
            rec,
            control,
            error: None,
        };
        let started = Instant::now();
        let started_at = Timestamp::now();
        let shell_before = local.get(SHELL).cloned();
        let ended = run_step(&mut runner, st, i, &mut local).await;
        // What the step left for the next one's `${shell.*}` (recorded when it changed).
        let shell = local
            .get(SHELL)
            .filter(|s| shell_before.as_ref() != Some(*s))
            .cloned();
        if let Some(e) = runner.error.take() {
            return Err(e);
        }
        let ms = started.elapsed().as_millis() as u64;
        let ran = Ran::new(started_at, ms, runner.senv.resources.used());
        let (failure, stderr_tail) = match ended {
            Ended::Ok { captured } => {
                if let Some((k, v)) = &captured {
                    local.insert(k.clone(), v.clone());
                }
                step_done(rec, (phase, i), st, ran, (captured, shell))?;
                continue;
            }
            Ended::Forgiven { failure } => {
                rec.report(&Event::Warning {
                    message: format!(
                        "{name} step {} failed ({failure}); its on_failure handled it, the {name} goes on",
                        i + 1
                    ),
                });
                step_done(rec, (phase, i), st, ran, (None, shell))?;
                continue;
            }
            Ended::Failed {
                failure,
                stderr_tail,
            } => (failure, stderr_tail),
        };
        let mut error = failure.to_string();
        if let Some(last) = stderr_tail.lines().last() {
            error.push_str(&format!(": {last}"));
        }
        rec.report(&Event::StepFinished {
            phase,
            index: i,
            command: st.source.clone(),
            ok: false,
            duration_ms: ms,
            error: Some(error),
        });
        rec.report(&Event::PhaseFinished {
            phase,
            ok: false,
            duration_ms: phase_started.elapsed().as_millis() as u64,
        });
        if matches!(failure, Failure::Cancelled { .. }) || run.controls.cancel.is_cancelled() {
            return Ok(Some((JobState::Interrupted, None)));
        }
        let command = crate::report::human::one_line(&st.source);
        let what = failure.to_string();
        let what = what
            .strip_prefix(&format!("step {} ", i + 1))
            .unwrap_or(&what);
        let mut reason = format!("{name} step {} (`{command}`) {what}", i + 1);
        if let Some(last) = stderr_tail.lines().rev().find(|l| !l.trim().is_empty()) {
            reason.push_str(&format!(": {}", last.trim()));
        }
        return Ok(Some((JobState::Failed, Some(reason))));
    }
    rec.report(&Event::PhaseFinished {
        phase,
        ok: true,
        duration_ms: phase_started.elapsed().as_millis() as u64,
    });
    Ok(None)
}

/// A pause holds the next step (the running one finishes); true when the job was stopped.
async fn hold_while_paused(
    run: &JobRun<'_>,
    rec: &mut Recorder,
    control: &mut mpsc::UnboundedReceiver<ControlMsg>,
) -> Result<bool, EngineError> {
    let mut paused = rec.view.paused().is_some();
    while let Ok(msg) = control.try_recv() {
        paused = rec.apply_control(msg, 0)?;
    }
    while paused && !run.controls.stop.is_cancelled() {
        tokio::select! {
            Some(msg) = control.recv() => paused = rec.apply_control(msg, 0)?,
            _ = run.controls.stop.cancelled() => {}
        }
    }
    Ok(run.controls.stop.is_cancelled())
}

/// Record a finished (or forgiven) step, its capture and the `${shell.*}` it left.
fn step_done(
    rec: &mut Recorder,
    (phase, index): (Phase, usize),
    st: &Step,
    ran: Ran,
    (captured, shell): (Option<(String, Value)>, Option<Value>),
) -> Result<(), EngineError> {
    let duration_ms = ran.ms;
    rec.record_durable(Record::StepDone {
        phase,
        index,
        captured,
        shell,
        ran: Some(ran),
    })?;
    rec.report(&Event::StepFinished {
        phase,
        index,
        command: st.source.clone(),
        ok: true,
        duration_ms,
        error: None,
    });
    Ok(())
}

/// Runs the steps and handlers of one setup or reduce step, recording each process group
/// as soon as it exists and applying live controls while it runs.
struct PhaseRunner<'a, E> {
    exec: &'a E,
    phase: Phase,
    senv: StepEnv,
    spawned_rx: mpsc::UnboundedReceiver<(i32, u64)>,
    vars: &'a JobVars,
    /// `${map.*}` (reduce).
    map: Option<&'a Value>,
    deadline: Option<Instant>,
    cancel: &'a CancellationToken,
    rec: &'a mut Recorder,
    control: &'a mut mpsc::UnboundedReceiver<ControlMsg>,
    /// A journal write that failed while a step ran: the run stops with it.
    error: Option<EngineError>,
}

impl<E: Executor> StepRunner for PhaseRunner<'_, E> {
    fn warn(&mut self, message: String) {
        let name = if self.phase == Phase::Setup {
            "setup"
        } else {
            "reduce"
        };
        self.rec.report(&Event::Warning {
            message: format!("{name} {message}"),
        });
    }

    async fn run_one(
        &mut self,
        step: &Step,
        index: usize,
        values: &Map<String, Value>,
    ) -> StepOutcome {
        if self.error.is_some() {
            return StepOutcome::not_run(Failure::Cancelled { step: index });
        }
        let rendered = {
            // Setup sees its own captures so far; reduce sees `${map.*}` and its captures.
            let lookup = |v: &VarRef| match self.map {
                Some(m) => reduce_lookup(self.vars, m, values, v),
                None => self.vars.lookup(v, values),
            };
            step::render(step, index, &self.senv, &lookup)
        };
        let r = match rendered {
            Ok(r) => r,
            Err(failure) => return StepOutcome::not_run(failure),
        };
        let Self {
            exec,
            phase,
            senv,
            spawned_rx,
            deadline,
            cancel,
            rec,
            control,
            error,
            ..
        } = self;
        let (limit, _) = limit_for(step.timeout, *deadline);
        let cwd = r.cwd.clone();
        let running = commit_required::checked(
            step,
            index,
            cwd,
            step::run(*exec, step, index, r, senv, limit, cancel),
        );
        tokio::pin!(running);
        loop {
            tokio::select! {
                out = &mut running => break out,
                Some((pgid, pid_start)) = spawned_rx.recv() => {
                    let started = Record::StepStarted {
                        phase: *phase,
                        index,
                        pgid,
                        pid_start,
                        at: Some(Timestamp::now()),
                    };
                    if let Err(e) = rec.record_durable(started) {
                        error.get_or_insert(e.into());
                    }
                }
                Some(msg) = control.recv() => {
                    if let Err(e) = rec.apply_control(msg, 1) {
                        error.get_or_insert(e.into());
                    }
                }
            }
        }
    }
}
