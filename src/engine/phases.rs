//! One run of a job (`run`, `resume` or `dlq retry`): setup from the first unfinished step,
//! item selection (once, then frozen), the map over whatever is left to do, and reduce.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::engine::attempt::context::AttemptCtx;
use crate::engine::attempt::executor::Executor;
use crate::engine::attempt::step::{self, StepEnv, StepOutcome};
use crate::engine::attempt::vars::{JobVars, reduce_lookup};
use crate::engine::controls::{ControlMsg, Controls};
use crate::engine::error::EngineError;
use crate::engine::limits::enforcer::Enforcer;
use crate::engine::limits::meter::AttemptResources;
use crate::engine::map::dispatch::{MapRun, dispatch};
use crate::engine::map::local::LocalBackend;
use crate::engine::map::policy::MapEnd;
use crate::engine::process::shell::SpawnHook;
use crate::engine::recorder::Recorder;
use crate::engine::slurm::backend::{SlurmBackend, SlurmJob};
use crate::engine::slurm::client::CliClient;
use crate::error::StopCause;
use crate::items::{Item, assign_ids};
use crate::report::event::Event;
use crate::state::error::StateError;
use crate::state::items_file::{self, ItemStore};
use crate::state::job::{Counts, JobMeta};
use crate::state::records::{ItemStatus, JobState, Phase, Ran, Record};
use crate::state::time::Timestamp;
use crate::workflow::model::{ExecutorKind, MaxParallel, Step, Workflow};
use crate::workflow::template::{PathSeg, VarRef};

/// Which items a run takes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunKind {
    Run,
    /// Pending items, then (unless `pending_only`) failed and DLQ items.
    Resume {
        pending_only: bool,
    },
    /// DLQ items only (all, or the named ones).
    DlqRetry {
        items: Vec<String>,
    },
}

impl RunKind {
    pub fn command(&self) -> &'static str {
        match self {
            RunKind::Run => "run",
            RunKind::Resume { .. } => "resume",
            RunKind::DlqRetry { .. } => "dlq_retry",
        }
    }
}

pub struct JobRun<'a> {
    pub meta: &'a JobMeta,
    pub workflow: &'a Workflow,
    pub kind: RunKind,
    /// Items selected before the job was created; selected here (once) when `None`.
    pub preselected: Option<Vec<Arc<Item>>>,
    /// `--max-parallel` of this invocation.
    pub max_parallel: Option<usize>,
    pub controls: Controls,
    /// Reported right after `job_started` (which is always the first event).
    pub warnings: Vec<String>,
    /// Copy setup/reduce output to stderr (not with `-q`).
    pub tee_output: bool,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    pub state: JobState,
    pub counts: Counts,
    /// Why the job failed outside of items (a setup/reduce step, the error policy).
    pub reason: Option<String>,
    /// What stopped the run early, if anything.
    pub stop: Option<StopCause>,
}

impl JobOutcome {
    /// The process exit code of this run (SPEC 3.1).
    pub fn exit_code(&self) -> i32 {
        crate::error::job_exit_code(self.state, self.stop)
    }
}

pub async fn execute<E: Executor + Clone>(
    exec: E,
    run: JobRun<'_>,
    control: &mut mpsc::UnboundedReceiver<ControlMsg>,
    rec: &mut Recorder,
) -> Result<JobOutcome, EngineError> {
    let started = Instant::now();
    let run_no = rec.view.runs + 1;
    rec.record_durable(Record::RunStarted {
        run: run_no,
        command: run.kind.command().into(),
        pid: std::process::id(),
        at: now(),
    })?;
    rec.report(&Event::JobStarted {
        job_id: run.meta.job_id.clone(),
        workflow: run.workflow.name.clone(),
        command: run.kind.command().into(),
    });
    for message in &run.warnings {
        rec.report(&Event::Warning {
            message: message.clone(),
        });
    }
    let result = phases(exec, &run, control, rec).await;
    let (state, reason) = match result {
        Ok(x) => x,
        Err(e) => {
            let _ = rec.record_durable(Record::RunEnded {
                run: run_no,
                state: JobState::Failed,
                at: now(),
            });
            let _ = rec.checkpoint();
            return Err(e);
        }
    };
    rec.record_durable(Record::RunEnded {
        run: run_no,
        state,
        at: now(),
    })?;
    rec.checkpoint()?;
    let c = rec.view.counts;
    rec.report(&Event::JobFinished {
        job_id: run.meta.job_id.clone(),
        state,
        exit_code: crate::error::job_exit_code(state, run.controls.stop_cause()),
        total: c.total,
        successful: c.successful,
        failed: c.failed_total(),
        dlq: c.dlq,
        pending: c.pending,
        duration_ms: started.elapsed().as_millis() as u64,
        reason: reason.clone(),
    });
    Ok(JobOutcome {
        state,
        counts: c,
        reason,
        stop: run.controls.stop_cause(),
    })
}

fn now() -> Timestamp {
    Timestamp::now()
}

async fn phases<E: Executor + Clone>(
    exec: E,
    run: &JobRun<'_>,
    control: &mut mpsc::UnboundedReceiver<ControlMsg>,
    rec: &mut Recorder,
) -> Result<(JobState, Option<String>), EngineError> {
    let wf = run.workflow;
    let mut vars = job_vars(run.meta, wf)?;
    vars.captures = rec.view.captures.clone();
    // Limits that cannot be enforced here stop the run before anything runs. PostgreSQL
    // workers enforce them on their own machines; Slurm has its own (docs/resources.md).
    let limits = match wf.executor {
        ExecutorKind::Local => Enforcer::probe(&wf.map.resources).map_err(EngineError::Config)?,
        ExecutorKind::Slurm | ExecutorKind::Postgres => None,
    };
    if let Some(l) = &limits {
        tracing::info!("{}", l.describe());
    }
    if wf.executor == ExecutorKind::Slurm && !wf.map.resources.is_empty() {
        rec.report(&Event::Warning {
            message: "map.resources is not applied with executor slurm: use slurm.mem_per_item \
                      and slurm.cpus_per_item (docs/resources.md)"
                .into(),
        });
    }

    // Setup, from the first unfinished step.
    if rec.view.setup_done < wf.setup.len() {
        if let Some(end) = run_phase(
            &exec,
            Phase::Setup,
            &wf.setup,
            rec.view.setup_done,
            &vars,
            run,
            rec,
            control,
            None,
        )
        .await?
        {
            return Ok(end);
        }
        vars.captures = rec.view.captures.clone();
    }

    // Item selection, once per job; afterwards the items stay on disk.
    let items = if rec.view.map_started {
        ItemStore::open(
            &rec.dir.items(),
            rec.view.items_hash.as_deref(),
            Some(rec.view.items.len()),
        )?
    } else {
        let selected = match &run.preselected {
            Some(items) => items.clone(),
            None => select_items(wf, &vars)?,
        };
        let hash = items_file::write(&rec.dir.items(), &selected)?;
        rec.record_durable(Record::MapStarted {
            total: selected.len(),
            items_hash: hash,
        })?;
        rec.checkpoint()?;
        drop(selected);
        ItemStore::open(&rec.dir.items(), None, Some(rec.view.items.len()))?
    };

    // Map.
    let queue = build_queue(&run.kind, rec, &items)?;
    if !queue.is_empty() || !rec.view.map_done {
        let max_parallel = resolve_max_parallel(run, wf, &vars)?;
        rec.report(&Event::PhaseStarted { phase: Phase::Map });
        rec.report(&Event::MapStarted {
            total: items.len(),
            to_run: queue.len(),
            max_parallel,
        });
        let map_started = Instant::now();
        let map_run = MapRun {
            queue,
            items: &items,
            policy: &wf.error_policy,
            retry: &wf.map.retry,
            controls: &run.controls,
            stuck_after: wf.map.stuck_after,
        };
        let end = match wf.executor {
            ExecutorKind::Local => {
                let ctx = AttemptCtx::new(
                    exec.clone(),
                    wf,
                    vars.clone(),
                    Some(rec.dir.logs_dir().join("items")),
                    &run.controls,
                )
                .with_limits(limits.clone());
                let mut backend = LocalBackend::new(ctx, max_parallel);
                dispatch(&mut backend, map_run, rec, control).await?
            }
            ExecutorKind::Slurm => {
                let job = SlurmJob::new(&rec.dir, wf, &rec.view, max_parallel)?;
                let mut backend = SlurmBackend::new(CliClient, job, vars.captures.clone())?;
                dispatch(&mut backend, map_run, rec, control).await?
            }
            ExecutorKind::Postgres => {
                // Without an explicit max_parallel, the workers' slots decide.
                let explicit = run.max_parallel.or(run.meta.max_parallel).is_some()
                    || !matches!(wf.map.max_parallel, MaxParallel::Cpus);
                let pg = crate::engine::postgres::map::PgMap {
                    meta: run.meta,
                    workflow: wf,
                    vars: &vars,
                    max_parallel: explicit.then_some(max_parallel),
                };
                crate::engine::postgres::map::run_map(pg, map_run, rec, control).await?
            }
        };
        rec.report(&Event::PhaseFinished {
            phase: Phase::Map,
            ok: end == MapEnd::Finished && rec.view.counts.failed_total() == 0,
            duration_ms: map_started.elapsed().as_millis() as u64,
        });
        match end {
            MapEnd::Cancelled => return Ok((JobState::Interrupted, None)),
            MapEnd::Stopped(reason) => return Ok((JobState::Failed, Some(reason))),
            MapEnd::Finished => {}
        }
        if rec.view.counts.pending > 0 {
            // A pending-only resume or a targeted DLQ retry leaves the rest for later.
            return Ok((end_state(rec), None));
        }
        rec.record_durable(Record::MapDone)?;
    }

    // Reduce, from the first unfinished step.
    if rec.view.reduce_done < wf.reduce.len() {
        let map_value = map_value(rec, &items, wf)?;
        if let Some(end) = run_phase(
            &exec,
            Phase::Reduce,
            &wf.reduce,
            rec.view.reduce_done,
            &vars,
            run,
            rec,
            control,
            Some(&map_value),
        )
        .await?
        {
            return Ok(end);
        }
    }
    Ok((end_state(rec), None))
}

fn end_state(rec: &Recorder) -> JobState {
    let c = rec.view.counts;
    if c.failed_total() == 0 && c.pending == 0 {
        JobState::Completed
    } else {
        JobState::Failed
    }
}

/// Run setup or reduce steps from `from`; `Some(end)` when the phase failed or was cancelled.
#[allow(clippy::too_many_arguments)]
async fn run_phase<E: Executor>(
    exec: &E,
    phase: Phase,
    steps: &[Step],
    from: usize,
    vars: &JobVars,
    run: &JobRun<'_>,
    rec: &mut Recorder,
    control: &mut mpsc::UnboundedReceiver<ControlMsg>,
    map: Option<&Value>,
) -> Result<Option<(JobState, Option<String>)>, EngineError> {
    let wf = run.workflow;
    // Prodigy's setup-phase timeout bounds every setup step by what is left of it.
    let deadline = if phase == Phase::Setup {
        wf.setup_timeout.map(|t| std::time::Instant::now() + t)
    } else {
        None
    };
    rec.report(&Event::PhaseStarted { phase });
    let phase_started = Instant::now();
    let name = if phase == Phase::Setup {
        "setup"
    } else {
        "reduce"
    };
    let mut local: Map<String, Value> = if phase == Phase::Reduce {
        rec.view.reduce_captures.clone()
    } else {
        Map::new()
    };
    for (i, st) in steps.iter().enumerate().skip(from) {
        // A pause holds the next step (the running one finishes).
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
        if run.controls.stop.is_cancelled() {
            return Ok(Some((JobState::Interrupted, None)));
        }
        let (spawned_tx, mut spawned_rx) = mpsc::unbounded_channel::<(i32, u64)>();
        let senv = StepEnv {
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
        };
        let started = Instant::now();
        let started_at = now();
        let rendered = {
            // Setup sees its own captures so far; reduce sees `${map.*}` and its captures.
            let lookup = |v: &VarRef| match map {
                Some(m) => reduce_lookup(vars, m, &local, v),
                None => vars.lookup(v, &local),
            };
            step::render(st, i, &senv, &lookup)
        };
        let outcome = match rendered {
            Ok(r) => {
                let (limit, _) = crate::engine::attempt::run::limit_for(st.timeout, deadline);
                let running = step::run(exec, st, i, r, &senv, limit, &run.controls.cancel);
                tokio::pin!(running);
                // Record the step's process group as soon as it exists.
                loop {
                    tokio::select! {
                        out = &mut running => break out,
                        Some((pgid, pid_start)) = spawned_rx.recv() => {
                            rec.record_durable(Record::StepStarted { phase, index: i, pgid, pid_start, at: Some(now()) })?;
                        }
                        Some(msg) = control.recv() => {
                            rec.apply_control(msg, 1)?;
                        }
                    }
                }
            }
            Err(failure) => StepOutcome::Failed {
                failure,
                stderr_tail: String::new(),
            },
        };
        let ms = started.elapsed().as_millis() as u64;
        match outcome {
            StepOutcome::Ok { captured } => {
                if let Some((k, v)) = &captured {
                    local.insert(k.clone(), v.clone());
                }
                rec.record_durable(Record::StepDone {
                    phase,
                    index: i,
                    captured,
                    ran: Some(Ran::new(started_at, ms, senv.resources.used())),
                })?;
                rec.report(&Event::StepFinished {
                    phase,
                    index: i,
                    command: st.source.clone(),
                    ok: true,
                    duration_ms: ms,
                    error: None,
                });
            }
            StepOutcome::Failed {
                failure,
                stderr_tail,
            } => {
                let cancelled = matches!(failure, crate::state::records::Failure::Cancelled { .. });
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
                    error: Some(error.clone()),
                });
                rec.report(&Event::PhaseFinished {
                    phase,
                    ok: false,
                    duration_ms: phase_started.elapsed().as_millis() as u64,
                });
                if cancelled || run.controls.cancel.is_cancelled() {
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
        }
    }
    rec.report(&Event::PhaseFinished {
        phase,
        ok: true,
        duration_ms: phase_started.elapsed().as_millis() as u64,
    });
    Ok(None)
}

fn job_vars(meta: &JobMeta, wf: &Workflow) -> Result<JobVars, EngineError> {
    JobVars::build(&meta.job_id, wf, &meta.overrides).map_err(EngineError::Config)
}

pub fn select_items(wf: &Workflow, vars: &JobVars) -> Result<Vec<Arc<Item>>, EngineError> {
    let mut selection = wf.map.selection.clone();
    if let Some(bare) = &wf.map.bare_input {
        selection.input = crate::items::Input::from_bare(bare, &wf.dir);
    }
    let compiled = crate::items::compile(&selection)?;
    let env: Vec<(String, String)> = vars.env_pairs(wf);
    let values = compiled.load(&wf.dir, &env)?;
    let empty = Map::new();
    let items = match &wf.map.id {
        Some(t) => {
            let id_fn = |v: &Value| -> Result<String, String> {
                t.render_plain(&|r: &VarRef| match r.root.as_str() {
                    "item" => crate::workflow::template::resolve_path(v, &r.path)
                        .map(std::borrow::Cow::Borrowed),
                    _ => vars.lookup(r, &empty),
                })
                .map_err(|e| e.to_string())
            };
            assign_ids(values, Some(&id_fn))?
        }
        None => assign_ids(values, None)?,
    };
    Ok(items.into_iter().map(Arc::new).collect())
}

fn build_queue(
    kind: &RunKind,
    rec: &mut Recorder,
    items: &ItemStore,
) -> Result<Vec<u32>, EngineError> {
    // Only `dlq retry` of named items needs ids, and only of the DLQ's items.
    let ids: HashMap<usize, String> = match kind {
        RunKind::DlqRetry { items: wanted } if !wanted.is_empty() => rec
            .view
            .with_status(ItemStatus::Dlq)
            .map(|idx| Ok((idx, items.get(idx)?.id.clone())))
            .collect::<Result<_, StateError>>()?,
        _ => HashMap::new(),
    };
    let order = crate::engine::map::order::queue_order(kind, &rec.view, |i| {
        ids.get(&i).map(String::as_str)
    });
    let mut queue = Vec::with_capacity(order.len());
    for idx in order {
        if idx >= items.len() {
            continue;
        }
        if rec.view.items.status(idx) != ItemStatus::Pending {
            rec.record(Record::ItemReset {
                idx,
                status: ItemStatus::Pending,
            })?;
        }
        queue.push(idx as u32);
    }
    // A later success cleans the DLQ entry of an item that was also pending.
    Ok(queue)
}

fn resolve_max_parallel(
    run: &JobRun<'_>,
    wf: &Workflow,
    vars: &JobVars,
) -> Result<usize, EngineError> {
    if let Some(n) = run.max_parallel.or(run.meta.max_parallel) {
        return Ok(n.max(1));
    }
    match &wf.map.max_parallel {
        MaxParallel::Fixed(n) => Ok(*n),
        MaxParallel::Cpus => Ok(std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(4)),
        MaxParallel::Template(t) => {
            let empty = Map::new();
            let text = t
                .render_plain(&|v: &VarRef| vars.lookup(v, &empty))
                .map_err(|e| EngineError::Config(format!("map.max_parallel: {e}")))?;
            match text.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(EngineError::Config(format!(
                    "map.max_parallel rendered to {text:?}, which is not a positive number"
                ))),
            }
        }
    }
}

/// `${map.*}` for reduce; writes `results.jsonl` (one line per item).
fn map_value(rec: &Recorder, items: &ItemStore, wf: &Workflow) -> Result<Value, EngineError> {
    let path = rec.dir.results();
    let mut all = Vec::new();
    let wants_results = wf.reduce.iter().any(|s| {
        s.shell.placeholders().any(|p| {
            p.var.root == "map"
                && matches!(p.var.path.first(), Some(PathSeg::Key(k)) if k == "results")
        })
    });
    let mut read_error = None;
    crate::state::atomic::write_atomic_with(&path, |out| {
        for (idx, item) in items.iter().map_err(std::io::Error::other)?.enumerate() {
            let item = match item {
                Ok(i) => i,
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            };
            let st = rec.view.items.get(idx);
            let mut line = serde_json::json!({
                "item_id": item.id,
                "status": st.status,
                "exit_code": if st.status == ItemStatus::Succeeded { Some(0) } else { st.exit_code },
                "attempts": st.attempts,
                "duration_ms": st.duration_ms,
                "captured": st.captured.as_deref().cloned().unwrap_or_default(),
            });
            if let Some(u) = st.usage {
                line["peak_rss_kb"] = u.peak_rss_kb.into();
                line["cpu_ms"] = u.cpu_ms.into();
            }
            serde_json::to_writer(&mut *out, &line)?;
            out.write_all(b"\n")?;
            if wants_results {
                all.push(line);
            }
        }
        Ok(())
    })?;
    if let Some(e) = read_error {
        return Err(e.into());
    }
    let c = rec.view.counts;
    let mut m = serde_json::json!({
        "total": c.total,
        "successful": c.successful,
        "failed": c.failed_total(),
        "results_file": path_text(&path),
    });
    if wants_results {
        m["results"] = Value::Array(all);
    }
    Ok(m)
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
