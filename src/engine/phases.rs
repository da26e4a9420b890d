//! One run of a job (`run`, `resume` or `dlq retry`): setup from the first unfinished step,
//! item selection (once, then frozen), the map over whatever is left to do, and reduce.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::engine::attempt::context::AttemptCtx;
use crate::engine::attempt::executor::Executor;
use crate::engine::attempt::vars::JobVars;
use crate::engine::controls::{ControlMsg, Controls};
use crate::engine::error::EngineError;
use crate::engine::limits::enforcer::Enforcer;
use crate::engine::map::dispatch::{MapRun, dispatch};
use crate::engine::map::local::LocalBackend;
use crate::engine::map::policy::MapEnd;
use crate::engine::recorder::Recorder;
use crate::engine::serial::run_phase;
use crate::engine::slurm::backend::{SlurmBackend, SlurmJob};
use crate::engine::slurm::client::CliClient;
use crate::engine::worktree::isolation;
use crate::engine::worktree::item::ItemWorktrees;
use crate::error::StopCause;
use crate::items::{Frozen, RepeatedIds};
use crate::report::event::Event;
use crate::state::error::StateError;
use crate::state::items_file::{self, ItemStore};
use crate::state::job::{Counts, JobMeta};
use crate::state::records::{ItemStatus, JobState, Phase, Record};
use crate::state::time::Timestamp;
use crate::workflow::model::{ExecutorKind, MaxParallel, Workflow};
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
    /// Items selected before the job was created; selected here (once) when `None`. Taken
    /// when the map starts, so they are not held in memory for the rest of the run.
    pub preselected: std::cell::Cell<Option<Frozen>>,
    /// `--max-parallel` of this invocation.
    pub max_parallel: Option<usize>,
    pub controls: Controls,
    /// Reported right after `job_started` (which is always the first event).
    pub warnings: Vec<String>,
    /// Copy setup/reduce output to stderr (not with `-q`).
    pub tee_output: bool,
    /// Git isolation: merge the job's branch into the branch the job started on after
    /// reduce (`--merge`, `-y`, `PRODIGY_AUTO_MERGE=true`).
    pub merge: bool,
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
    if matches!(state, JobState::Completed | JobState::Failed) {
        rec.seal_timeline()?;
    }
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
    let mut vars = job_vars(run.meta, run.workflow)?;
    // Git isolation: chosen when nothing of the job has run yet, then recorded.
    let fresh = rec.view.setup_done == 0 && !rec.view.map_started;
    let worktree = isolation::open(&rec.dir, &run.meta.job_id, run.workflow, fresh)?;
    let rebased = worktree.as_ref().map(|w| {
        isolation::no_gc(&mut vars);
        w.rebase(run.workflow)
    });
    let resolved = rebased
        .as_ref()
        .unwrap_or(run.workflow)
        .with_env(&vars.env)
        .map_err(EngineError::Config)?;
    let wf = &resolved;
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
            wf,
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
        let selected = match run.preselected.take() {
            Some(items) => items,
            None => {
                let (items, warning) = select_items(wf, &vars, rec.dir.path())?;
                if let Some(message) = warning {
                    rec.report(&Event::Warning { message });
                }
                items
            }
        };
        let hash = items_file::write_frozen(&rec.dir.items(), &selected)?;
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
        let max_parallel = resolve_max_parallel(run, wf)?;
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
                .with_limits(limits.clone())
                .with_worktrees(worktree.clone().map(ItemWorktrees::new));
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
        if let Some(w) = &worktree {
            isolation::map_done(w)?;
        }
    }

    // Reduce, from the first unfinished step.
    if rec.view.reduce_done < wf.reduce.len() {
        let map_value = map_value(rec, &items, wf)?;
        if let Some(end) = run_phase(
            &exec,
            Phase::Reduce,
            wf,
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
    if let Some(w) = &worktree
        && end_state(rec) == JobState::Completed
        && let Some(failed) = isolation::finish(&exec, w, wf, &vars, run, rec).await?
    {
        return Ok((JobState::Failed, Some(failed)));
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

fn job_vars(meta: &JobMeta, wf: &Workflow) -> Result<JobVars, EngineError> {
    JobVars::build(&meta.job_id, wf, &meta.overrides).map_err(EngineError::Config)
}

/// Select the map's items, give them their ids and spill them to a temporary file in
/// `tmp_dir` (nothing but their ids stays in memory); also a warning when Prodigy-style
/// repeated ids were replaced.
pub fn select_items(
    wf: &Workflow,
    vars: &JobVars,
    tmp_dir: &Path,
) -> Result<(Frozen, Option<String>), EngineError> {
    let mut selection = wf.map.selection.clone();
    if let Some(bare) = &wf.map.bare_input {
        selection.input = crate::items::Input::from_bare(bare, &wf.dir);
    }
    let compiled = crate::items::compile(&selection)?;
    let env: Vec<(String, String)> = vars.env_pairs(wf);
    let empty = Map::new();
    // Prodigy does not require unique ids.
    let repeated = if wf.prodigy {
        RepeatedIds::ByPosition
    } else {
        RepeatedIds::Reject
    };
    let id_fn = wf.map.id.as_ref().map(|t| {
        move |v: &Value| -> Result<String, String> {
            t.render_plain(&|r: &VarRef| match r.root.as_str() {
                "item" => crate::workflow::template::resolve_path(v, &r.path)
                    .map(std::borrow::Cow::Borrowed),
                _ => vars.lookup(r, &empty),
            })
            .map_err(|e| e.to_string())
        }
    });
    let id_fn = id_fn.as_ref().map(|f| f as crate::items::IdFn<'_>);
    let frozen = crate::items::freeze(&compiled, &wf.dir, &env, id_fn, repeated, tmp_dir)?;
    let warning = frozen.renamed().map(|r| {
        format!(
            "{} items share an `id` with another item (Prodigy allows it), so they are identified by position and content instead: `{}` became `{}`; give the map an `id:` template to choose",
            r.count, r.example.0, r.example.1
        )
    });
    Ok((frozen, warning))
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

fn resolve_max_parallel(run: &JobRun<'_>, wf: &Workflow) -> Result<usize, EngineError> {
    if let Some(n) = run.max_parallel.or(run.meta.max_parallel) {
        return Ok(n.max(1));
    }
    match &wf.map.max_parallel {
        MaxParallel::Fixed(n) => Ok(*n),
        MaxParallel::Cpus => Ok(std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(4)),
    }
}

/// `${map.*}` for reduce; writes `results.jsonl` (one line per item).
fn map_value(rec: &Recorder, items: &ItemStore, wf: &Workflow) -> Result<Value, EngineError> {
    let path = rec.dir.results();
    let mut all = Vec::new();
    let wants_results = wf.reduce.iter().any(|s| {
        s.uses(&|v| {
            v.root == "map"
                && matches!(v.path.first(), Some(PathSeg::Key(k)) if k == "results" || k == "results_json")
        })
    });
    let logs = rec.dir.logs_dir().join("items");
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
                all.push(prodigy_result(
                    line,
                    &item.value,
                    &logs,
                    &item.id,
                    st.attempts,
                ));
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
        "completed": c.successful + c.failed_total(),
        // Prodigy's: a whole percentage.
        "success_rate": (c.successful * 100).checked_div(c.total).unwrap_or(0),
        "results_file": path_text(&path),
    });
    if wants_results {
        let all = Value::Array(all);
        m["results_json"] = Value::String(all.to_string());
        m["results"] = all;
    }
    Ok(m)
}

/// How much of an item's stdout `${map.results}` carries (its end).
const RESULT_OUTPUT_CAP: u64 = 64 * 1024;

/// A `${map.results}` entry: the `results.jsonl` line with Prodigy's fields added: `item`,
/// `success`, `output` (the end of the last attempt's stdout), `error`, `commits`.
fn prodigy_result(mut line: Value, item: &Value, logs: &Path, id: &str, attempts: u32) -> Value {
    let ok = line["status"] == "succeeded";
    let error = match (&line["exit_code"], ok) {
        (_, true) => Value::Null,
        (Value::Number(n), _) => Value::String(format!("exited with code {n}")),
        _ => Value::String(format!(
            "item {}",
            line["status"].as_str().unwrap_or("failed")
        )),
    };
    let out = logs
        .join(crate::state::layout::item_file_stem(id))
        .join(format!("{attempts}.out"));
    line["item"] = item.clone();
    line["success"] = Value::Bool(ok);
    let (end, _) = crate::state::logs::read_end(&out, RESULT_OUTPUT_CAP);
    line["output"] = Value::String(
        String::from_utf8_lossy(&end)
            .trim_end_matches(['\n', '\r'])
            .to_owned(),
    );
    line["error"] = error;
    line["commits"] = Value::Array(Vec::new());
    line
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
