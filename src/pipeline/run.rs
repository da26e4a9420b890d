//! Running a pipeline: create it (or open it for a resume), then start each node when its
//! needs have ended, at most `max_parallel_jobs` at once, highest priority first; forward
//! signals, pause and stop to the running nodes; record every start and end durably, so
//! that `runner resume <pipeline-id>` never re-runs a completed node.
//!
//! Nodes run as child `runner` processes rather than in this process: each gets its own
//! runtime, lock, watchdog and signal handling exactly as `runner run` would, nodes run in
//! parallel without sharing the process-wide pieces (subreaper, watchdog, signal handlers),
//! and a crash of the coordinator is a crash of each node, which resume already repairs.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::error::{StopCause, job_exit_code};
use crate::notify::message::NotifyEvent;
use crate::notify::notifier::{Notifier, NotifyContext};
use crate::notify::spec::NotifyOn;
use crate::pipeline::dag::{Decision, GraphNode, NodeState, decide};
use crate::pipeline::journal::{
    PipelineMeta, PipelineRecord, PipelineView, append, meta_path, now, read_view, snapshot_path,
};
use crate::pipeline::load::{LoadedPipeline, load_pipeline_str, node_job_id, pipeline_id_fits};
use crate::pipeline::model::Pipeline;
use crate::pipeline::node::{NodeCommand, NodeStart, how_to_start, outcome};
use crate::session::error::SessionError;
use crate::session::open::{lock, open_job};
use crate::state::atomic::{read_checksummed, write_atomic, write_checksummed};
use crate::state::error::StateError;
use crate::state::layout::{JobDir, StateDir, new_job_id, validate_job_id};
use crate::state::lock::{JobLock, is_held};
use crate::state::mailbox::{ControlRequest, send, take_all};
use crate::state::records::JobState;

/// A pipeline opened for a run: locked, with its recorded state.
pub struct OpenPipeline {
    pub dir: JobDir,
    pub meta: PipelineMeta,
    pub pipeline: Pipeline,
    pub view: PipelineView,
    pub lock: JobLock,
    /// `run` or `resume`.
    pub command: &'static str,
    /// Resume nodes whose workflow changed.
    pub force: bool,
    pub warnings: Vec<String>,
}

/// What `runner run PIPELINE` asks for.
pub struct CreatePipeline {
    pub loaded: LoadedPipeline,
    pub path: PathBuf,
    pub job_id: Option<String>,
    pub overrides: Vec<(String, String)>,
    pub max_parallel: Option<usize>,
}

pub fn create(state: &StateDir, req: CreatePipeline) -> Result<OpenPipeline, SessionError> {
    let id = match req.job_id {
        Some(id) => {
            validate_job_id(&id)?;
            id
        }
        None => new_job_id(
            &req.loaded
                .pipeline
                .name
                .chars()
                .take(60)
                .collect::<String>(),
        ),
    };
    if !pipeline_id_fits(&id) {
        return Err(SessionError::Usage(format!(
            "pipeline id {id:?} is too long to name its jobs (`<id>.<job>`); pick a shorter --job-id"
        )));
    }
    if state.job(&id)?.exists() {
        return Err(SessionError::Usage(format!(
            "job {id} already exists; pick another --job-id or resume it with `runner resume {id}`"
        )));
    }
    let pipeline_path = req
        .path
        .canonicalize()
        .map_err(|e| StateError::io("resolve", &req.path, e))?;
    let dir = state.create_job(&id)?;
    let lock = lock(&dir, "run")?;
    let meta = PipelineMeta {
        pipeline_id: id,
        name: req.loaded.pipeline.name.clone(),
        pipeline_path,
        pipeline_dir: req.loaded.pipeline.dir.clone(),
        fingerprint: blake3::hash(req.loaded.text.as_bytes())
            .to_hex()
            .to_string(),
        created_at: now(),
        overrides: req.overrides,
        max_parallel: req.max_parallel,
    };
    write_atomic(&snapshot_path(&dir), req.loaded.text.as_bytes())?;
    write_checksummed(&meta_path(&dir), &meta)?;
    Ok(OpenPipeline {
        dir,
        meta,
        pipeline: req.loaded.pipeline,
        view: PipelineView::default(),
        lock,
        command: "run",
        force: false,
        warnings: Vec::new(),
    })
}

pub fn read_pipeline_meta(dir: &JobDir) -> Result<PipelineMeta, SessionError> {
    read_checksummed::<PipelineMeta>(&meta_path(dir))?.ok_or_else(|| {
        SessionError::Usage(format!(
            "{} is missing: this is not a pipeline",
            meta_path(dir).display()
        ))
    })
}

/// What a pipeline resume found to do.
pub enum PipelineStart {
    Run(Box<OpenPipeline>),
    AlreadyCompleted,
    /// It was live and paused: un-paused in place.
    Unpaused,
}

pub fn resume(state: &StateDir, id: &str, force: bool) -> Result<PipelineStart, SessionError> {
    let dir = open_job(state, id)?;
    let meta = read_pipeline_meta(&dir)?;
    if is_held(&dir.lock()) && read_view(&dir)?.paused.is_some() {
        crate::pipeline::live::unpause(&dir, id)?;
        return Ok(PipelineStart::Unpaused);
    }
    let lock = lock(&dir, "resume")?;
    let view = read_view(&dir)?;
    if !view.run_open && view.last_state == Some(JobState::Completed) {
        let _ = lock.release();
        return Ok(PipelineStart::AlreadyCompleted);
    }
    let mut warnings = Vec::new();
    let text = pipeline_text(&dir, &meta, force, &mut warnings)?;
    let pipeline = load_pipeline_str(&text, &meta.pipeline_path, &meta.pipeline_dir)?;
    Ok(PipelineStart::Run(Box::new(OpenPipeline {
        dir,
        meta,
        pipeline,
        view,
        lock,
        command: "resume",
        force,
        warnings,
    })))
}

/// The pipeline text a resume runs: the file, unless it changed (refused without `force`)
/// or is gone (then the copy saved at start).
fn pipeline_text(
    dir: &JobDir,
    meta: &PipelineMeta,
    force: bool,
    warnings: &mut Vec<String>,
) -> Result<String, SessionError> {
    let snapshot = std::fs::read_to_string(snapshot_path(dir))
        .map_err(|e| StateError::io("read", &snapshot_path(dir), e))?;
    match std::fs::read_to_string(&meta.pipeline_path) {
        Ok(now) if blake3::hash(now.as_bytes()).to_hex().as_str() == meta.fingerprint => Ok(now),
        Ok(now) if force => {
            warnings.push(format!(
                "running the changed pipeline {} (--force)",
                meta.pipeline_path.display()
            ));
            Ok(now)
        }
        Ok(_) => Err(SessionError::Usage(format!(
            "the pipeline file {} changed since pipeline {} started; resume with --force to run the changed pipeline, or restore the file",
            meta.pipeline_path.display(),
            meta.pipeline_id
        ))),
        Err(_) => {
            warnings.push(format!(
                "{} is gone; running the copy saved when the pipeline started",
                meta.pipeline_path.display()
            ));
            Ok(snapshot)
        }
    }
}

/// How this invocation runs the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// The state directory, absolute (children are given it).
    pub state_dir: PathBuf,
    pub quiet: bool,
    /// `--max-parallel` of this invocation, passed to each node.
    pub max_parallel: Option<usize>,
}

/// What a pipeline run says as it goes (`--json` prints all but `node_output` as NDJSON).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PipelineEvent {
    PipelineStarted {
        pipeline_id: String,
        pipeline: String,
        command: String,
    },
    Warning {
        message: String,
    },
    NodeStarted {
        node: String,
        job_id: String,
        /// `run` or `resume`.
        how: String,
    },
    /// A line of a node's human output (stderr).
    NodeOutput {
        node: String,
        line: String,
    },
    NodeFinished {
        node: String,
        job_id: String,
        state: NodeState,
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    NodeSkipped {
        node: String,
        reason: String,
    },
    Paused {
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Unpaused {},
    Interrupted {
        signal: String,
    },
    PipelineFinished {
        pipeline_id: String,
        state: JobState,
        exit_code: i32,
        completed: usize,
        failed: usize,
        skipped: usize,
        pending: usize,
        duration_ms: u64,
    },
}

/// How a pipeline run ended.
#[derive(Debug, Clone)]
pub struct PipelineOutcome {
    pub state: JobState,
    pub stop: Option<StopCause>,
}

impl PipelineOutcome {
    pub fn exit_code(&self) -> i32 {
        job_exit_code(self.state, self.stop)
    }
}

/// Run the pipeline to its end (or interruption); the lock is released whatever happens.
pub fn run_pipeline(
    open: OpenPipeline,
    opts: PipelineOptions,
    sink: &mut dyn FnMut(&PipelineEvent),
) -> Result<PipelineOutcome, SessionError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SessionError::Infra(format!("cannot start the async runtime: {e}")))?;
    let OpenPipeline {
        dir,
        meta,
        pipeline,
        view,
        lock,
        command,
        force,
        warnings,
    } = open;
    let mut co = Coordinator::new(&dir, &meta, &pipeline, &view, &opts, force);
    let result = rt.block_on(co.run(command, warnings, sink));
    if let Ok(out) = &result {
        notify_end(&pipeline, &meta, &dir, &co, out);
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    let released = lock.release();
    let out = result?;
    released?;
    Ok(out)
}

fn notify_end(
    pipeline: &Pipeline,
    meta: &PipelineMeta,
    dir: &JobDir,
    co: &Coordinator,
    out: &PipelineOutcome,
) {
    let kind = match out.state {
        JobState::Completed => NotifyOn::Success,
        JobState::Failed => NotifyOn::Failure,
        _ => return,
    };
    let ctx = NotifyContext {
        kind: "pipeline",
        job_id: meta.pipeline_id.clone(),
        workflow: pipeline.name.clone(),
        work_dir: pipeline.dir.clone(),
        job_dir: dir.path().to_path_buf(),
    };
    let Some(mut n) = Notifier::new(&pipeline.notify, ctx) else {
        return;
    };
    let mut e = NotifyEvent::new(kind, "pipeline", &meta.pipeline_id, &pipeline.name);
    e.state = Some(
        if kind == NotifyOn::Success {
            "completed"
        } else {
            "failed"
        }
        .into(),
    );
    e.exit_code = Some(out.exit_code());
    e.failed_nodes = pipeline
        .nodes
        .iter()
        .zip(&co.states)
        .filter(|(_, s)| **s == NodeState::Failed)
        .map(|(n, _)| n.name.clone())
        .collect();
    n.send(e.finish());
    n.close();
}

/// How often the control channel is looked at.
const POLL: Duration = Duration::from_millis(200);

/// A running node.
struct Running {
    pid: i32,
    job_id: String,
    /// The pause/stop sent to it (sent once its job holds its lock).
    sent_pause: bool,
    sent_stop: bool,
}

struct Coordinator<'a> {
    dir: &'a JobDir,
    meta: &'a PipelineMeta,
    pipeline: &'a Pipeline,
    opts: &'a PipelineOptions,
    force: bool,
    state: StateDir,
    graph: Vec<GraphNode>,
    names: Vec<String>,
    states: Vec<NodeState>,
    running: HashMap<usize, Running>,
    paused: Option<Option<String>>,
    stop: Option<StopCause>,
    stop_grace_ms: u64,
    runs: u32,
}

impl<'a> Coordinator<'a> {
    fn new(
        dir: &'a JobDir,
        meta: &'a PipelineMeta,
        pipeline: &'a Pipeline,
        view: &PipelineView,
        opts: &'a PipelineOptions,
        force: bool,
    ) -> Self {
        // Completed nodes stay completed; everything else is decided again.
        let states = pipeline
            .nodes
            .iter()
            .map(|n| match view.nodes.get(&n.name).map(|e| e.state) {
                Some(NodeState::Completed) => NodeState::Completed,
                _ => NodeState::Pending,
            })
            .collect();
        Coordinator {
            dir,
            meta,
            pipeline,
            opts,
            force,
            state: StateDir::new(&opts.state_dir),
            graph: pipeline
                .nodes
                .iter()
                .map(|n| GraphNode {
                    needs: n.needs.clone(),
                    when: n.when,
                    priority: n.priority,
                })
                .collect(),
            names: pipeline.nodes.iter().map(|n| n.name.clone()).collect(),
            states,
            running: HashMap::new(),
            paused: None,
            stop: None,
            stop_grace_ms: 10_000,
            runs: view.runs,
        }
    }

    fn record(&self, rec: PipelineRecord) -> Result<(), SessionError> {
        Ok(append(self.dir, &rec)?)
    }

    async fn run(
        &mut self,
        command: &str,
        warnings: Vec<String>,
        sink: &mut dyn FnMut(&PipelineEvent),
    ) -> Result<PipelineOutcome, SessionError> {
        let started = Instant::now();
        let run = self.runs + 1;
        self.record(PipelineRecord::RunStarted {
            run,
            command: command.into(),
            pid: std::process::id(),
            at: now(),
        })?;
        sink(&PipelineEvent::PipelineStarted {
            pipeline_id: self.meta.pipeline_id.clone(),
            pipeline: self.pipeline.name.clone(),
            command: command.into(),
        });
        for message in warnings {
            sink(&PipelineEvent::Warning { message });
        }
        use tokio::signal::unix::{SignalKind, signal};
        let (mut int, mut term) = (
            signal(SignalKind::interrupt())
                .map_err(|e| SessionError::Infra(format!("cannot watch SIGINT: {e}")))?,
            signal(SignalKind::terminate())
                .map_err(|e| SessionError::Infra(format!("cannot watch SIGTERM: {e}")))?,
        );
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<(usize, String)>();
        let mut exits: JoinSet<(usize, std::io::Result<std::process::ExitStatus>)> = JoinSet::new();
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut changed = false;
            while self.stop.is_none()
                && self.paused.is_none()
                && self.start_ready(&mut exits, &out_tx, sink)?
            {
                changed = true;
            }
            if self.running.is_empty()
                && (self.stop.is_some() || (self.paused.is_none() && !changed))
            {
                break;
            }
            tokio::select! {
                Some(joined) = exits.join_next(), if !exits.is_empty() => {
                    while let Ok((i, line)) = out_rx.try_recv() {
                        sink(&PipelineEvent::NodeOutput { node: self.names[i].clone(), line });
                    }
                    if let Ok((i, status)) = joined {
                        self.node_exited(i, status, sink)?;
                    }
                }
                Some((i, line)) = out_rx.recv() => {
                    sink(&PipelineEvent::NodeOutput { node: self.names[i].clone(), line });
                }
                _ = int.recv() => self.signalled(Signal::SIGINT, sink),
                _ = term.recv() => self.signalled(Signal::SIGTERM, sink),
                _ = tick.tick() => self.control(sink)?,
            }
        }
        while let Ok((i, line)) = out_rx.try_recv() {
            sink(&PipelineEvent::NodeOutput {
                node: self.names[i].clone(),
                line,
            });
        }
        let state = self.end_state();
        self.record(PipelineRecord::RunEnded {
            run,
            state,
            at: now(),
        })?;
        let count = |s: NodeState| self.states.iter().filter(|x| **x == s).count();
        let out = PipelineOutcome {
            state,
            stop: self.stop,
        };
        sink(&PipelineEvent::PipelineFinished {
            pipeline_id: self.meta.pipeline_id.clone(),
            state,
            exit_code: out.exit_code(),
            completed: count(NodeState::Completed),
            failed: count(NodeState::Failed),
            skipped: count(NodeState::Skipped),
            pending: count(NodeState::Pending) + count(NodeState::Interrupted),
            duration_ms: started.elapsed().as_millis() as u64,
        });
        Ok(out)
    }

    fn end_state(&self) -> JobState {
        if self.states.contains(&NodeState::Failed) {
            return JobState::Failed;
        }
        if self.states.iter().all(|s| s.is_final()) {
            return JobState::Completed;
        }
        JobState::Interrupted
    }

    /// Skip what must be skipped and start ready nodes while there is room. Returns whether
    /// any node changed state.
    fn start_ready(
        &mut self,
        exits: &mut JoinSet<(usize, std::io::Result<std::process::ExitStatus>)>,
        out_tx: &mpsc::UnboundedSender<(usize, String)>,
        sink: &mut dyn FnMut(&PipelineEvent),
    ) -> Result<bool, SessionError> {
        let mut changed = false;
        for d in decide(&self.graph, &self.states, &self.names) {
            match d {
                Decision::Skip { node, reason } => {
                    self.states[node] = NodeState::Skipped;
                    self.record(PipelineRecord::NodeSkipped {
                        node: self.names[node].clone(),
                        reason: reason.clone(),
                        at: now(),
                    })?;
                    sink(&PipelineEvent::NodeSkipped {
                        node: self.names[node].clone(),
                        reason,
                    });
                    changed = true;
                }
                Decision::Run(i) => {
                    if self.running.len() >= self.pipeline.max_parallel_jobs {
                        break;
                    }
                    self.start(i, exits, out_tx, sink)?;
                    changed = true;
                    if self.states[i] != NodeState::Running {
                        // Decided without running (already completed, could not start):
                        // others may be ready now.
                        return Ok(true);
                    }
                }
            }
        }
        Ok(changed)
    }

    fn start(
        &mut self,
        i: usize,
        exits: &mut JoinSet<(usize, std::io::Result<std::process::ExitStatus>)>,
        out_tx: &mpsc::UnboundedSender<(usize, String)>,
        sink: &mut dyn FnMut(&PipelineEvent),
    ) -> Result<(), SessionError> {
        let node = &self.pipeline.nodes[i];
        let job_id = node_job_id(&self.meta.pipeline_id, &node.name);
        let how = how_to_start(&self.state, &job_id)?;
        if how == NodeStart::AlreadyCompleted {
            return self.finished(i, &job_id, NodeState::Completed, Some(0), None, sink);
        }
        let mut set = node.set.clone();
        set.extend(self.meta.overrides.iter().cloned());
        let cmd = NodeCommand {
            state_dir: &self.opts.state_dir,
            job_id: &job_id,
            workflow: &node.workflow,
            start: how,
            set: &set,
            max_parallel: self.opts.max_parallel.or(self.meta.max_parallel),
            force: self.force,
            quiet: self.opts.quiet,
        };
        let spawned = cmd.command().and_then(|mut c| c.spawn());
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let error = Some(format!("cannot start its runner: {e}"));
                return self.finished(i, &job_id, NodeState::Failed, None, error, sink);
            }
        };
        let how_name = if how == NodeStart::Run {
            "run"
        } else {
            "resume"
        };
        self.record(PipelineRecord::NodeStarted {
            node: node.name.clone(),
            job_id: job_id.clone(),
            how: how_name.into(),
            at: now(),
        })?;
        sink(&PipelineEvent::NodeStarted {
            node: node.name.clone(),
            job_id: job_id.clone(),
            how: how_name.into(),
        });
        if let Some(stderr) = child.stderr.take().and_then(|s| s.into_owned_fd().ok()) {
            let tx = out_tx.clone();
            let file = std::fs::File::from(stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(file).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((i, line)).is_err() {
                        break;
                    }
                }
            });
        }
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        exits.spawn(async move { (i, child.wait().await) });
        self.states[i] = NodeState::Running;
        self.running.insert(
            i,
            Running {
                pid,
                job_id,
                sent_pause: false,
                sent_stop: false,
            },
        );
        Ok(())
    }

    fn finished(
        &mut self,
        i: usize,
        job_id: &str,
        state: NodeState,
        exit_code: Option<i32>,
        error: Option<String>,
        sink: &mut dyn FnMut(&PipelineEvent),
    ) -> Result<(), SessionError> {
        self.states[i] = state;
        self.record(PipelineRecord::NodeFinished {
            node: self.names[i].clone(),
            state,
            exit_code,
            error: error.clone(),
            at: now(),
        })?;
        sink(&PipelineEvent::NodeFinished {
            node: self.names[i].clone(),
            job_id: job_id.to_owned(),
            state,
            exit_code,
            error,
        });
        Ok(())
    }

    fn node_exited(
        &mut self,
        i: usize,
        status: std::io::Result<std::process::ExitStatus>,
        sink: &mut dyn FnMut(&PipelineEvent),
    ) -> Result<(), SessionError> {
        let Some(r) = self.running.remove(&i) else {
            return Ok(());
        };
        let (state, code, error) = match status {
            Ok(st) => outcome(&st),
            Err(e) => (
                NodeState::Failed,
                None,
                Some(format!("cannot wait for its runner: {e}")),
            ),
        };
        self.finished(i, &r.job_id, state, code, error, sink)
    }

    /// SIGINT/SIGTERM: no new node starts; the signal goes to every running node (a second
    /// one too, which kills their items at once).
    fn signalled(&mut self, sig: Signal, sink: &mut dyn FnMut(&PipelineEvent)) {
        if !matches!(self.stop, Some(StopCause::Signal(_))) {
            self.stop = Some(StopCause::Signal(sig));
            sink(&PipelineEvent::Interrupted {
                signal: sig.as_str().to_owned(),
            });
        }
        for r in self.running.values() {
            if r.pid > 0 {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(r.pid), sig);
            }
        }
    }

    /// Requests from `runner pause|resume|stop <pipeline-id>`, and passing them on to running
    /// nodes once their jobs hold their locks.
    fn control(&mut self, sink: &mut dyn FnMut(&PipelineEvent)) -> Result<(), SessionError> {
        for req in take_all(&self.dir.control()) {
            match req {
                ControlRequest::Pause { reason } if self.paused.is_none() => {
                    self.record(PipelineRecord::Paused {
                        at: now(),
                        reason: reason.clone(),
                    })?;
                    self.paused = Some(reason.clone());
                    for r in self.running.values_mut() {
                        r.sent_pause = false;
                    }
                    sink(&PipelineEvent::Paused { reason });
                }
                ControlRequest::Resume if self.paused.is_some() => {
                    self.record(PipelineRecord::Unpaused { at: now() })?;
                    self.paused = None;
                    for r in self.running.values_mut() {
                        if r.sent_pause {
                            let node = self.state.job(&r.job_id)?;
                            let _ = send(&node.control(), &ControlRequest::Resume);
                        }
                        r.sent_pause = false;
                    }
                    sink(&PipelineEvent::Unpaused {});
                }
                ControlRequest::Stop { grace_ms } => {
                    if self.stop.is_none() {
                        self.stop = Some(StopCause::StopRequest);
                    }
                    self.stop_grace_ms = grace_ms;
                }
                _ => {}
            }
        }
        for r in self.running.values_mut() {
            let node = self.state.job(&r.job_id)?;
            let wants_stop = self.stop == Some(StopCause::StopRequest) && !r.sent_stop;
            let wants_pause = self.paused.is_some() && !r.sent_pause && self.stop.is_none();
            if !(wants_stop || wants_pause) || !is_held(&node.lock()) {
                continue;
            }
            if wants_stop {
                let _ = send(
                    &node.control(),
                    &ControlRequest::Stop {
                        grace_ms: self.stop_grace_ms,
                    },
                );
                r.sent_stop = true;
            } else if let Some(reason) = &self.paused {
                let _ = send(
                    &node.control(),
                    &ControlRequest::Pause {
                        reason: reason.clone(),
                    },
                );
                r.sent_pause = true;
            }
        }
        Ok(())
    }
}
