//! A map run on the PostgreSQL executor, as the job's phases start it: connect (a bad URL or
//! a server that is down ends the run before anything is queued), check the schema,
//! register or re-attach to the job's rows, then the one dispatcher over
//! [`PostgresBackend`], with pauses passed on to the workers; at the end the job's rows go.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::engine::attempt::vars::JobVars;
use crate::engine::controls::ControlMsg;
use crate::engine::error::EngineError;
use crate::engine::map::dispatch::{MapRun, dispatch};
use crate::engine::map::policy::MapEnd;
use crate::engine::postgres::client;
use crate::engine::postgres::coordinator::{CoordinatorCfg, PostgresBackend};
use crate::engine::postgres::queue::{self, QueueState};
use crate::engine::postgres::schema;
use crate::engine::postgres::spec::{JobSpec, job_key};
use crate::engine::postgres::url::PgUrl;
use crate::engine::recorder::Recorder;
use crate::report::event::Event;
use crate::state::error::StateError;
use crate::state::job::JobMeta;
use crate::workflow::model::Workflow;

/// The environment variable setting how often the coordinator looks for expired leases.
pub const POLL_VAR: &str = "RUNNER_POSTGRES_POLL";
const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// What the map needs besides the dispatcher's run.
pub struct PgMap<'a> {
    pub meta: &'a JobMeta,
    pub workflow: &'a Workflow,
    pub vars: &'a JobVars,
    /// `max_parallel` when it was set (flag or workflow): the cap on attempts queued or
    /// running at once. Without it the workers' slots decide.
    pub max_parallel: Option<usize>,
}

/// `host pid N` of this process.
pub fn this_process() -> String {
    let host = client::hostname();
    format!("{host} pid {}", std::process::id())
}

fn poll_interval() -> Result<Duration, EngineError> {
    match std::env::var(POLL_VAR) {
        Ok(v) if !v.trim().is_empty() => humantime::parse_duration(v.trim())
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                EngineError::Config(format!(
                    "{POLL_VAR}={v:?} is not a duration such as 500ms or 2s"
                ))
            }),
        _ => Ok(DEFAULT_POLL),
    }
}

pub async fn run_map(
    m: PgMap<'_>,
    map_run: MapRun<'_>,
    rec: &mut Recorder,
    control: &mut mpsc::UnboundedReceiver<ControlMsg>,
) -> Result<MapEnd, EngineError> {
    let url = PgUrl::from_env()?;
    let poll = poll_interval()?;
    let conn = client::connect(&url, &[]).await?;
    schema::check(&conn).await?;
    let key = job_key(rec.dir.path(), &m.meta.job_id)?;
    let snapshot = rec.dir.workflow_snapshot();
    let text =
        std::fs::read_to_string(&snapshot).map_err(|e| StateError::io("read", &snapshot, e))?;
    let spec = JobSpec::new(text, m.workflow, m.meta.workflow_path.clone(), m.vars);
    let state = if rec.view.paused().is_some() {
        QueueState::Paused
    } else {
        QueueState::Running
    };
    let job = queue::upsert_job(&conn, &key, &spec, state, &this_process()).await?;
    conn.execute(
        &format!("LISTEN {}", queue::done_channel(job)),
        &[],
        "listen for outcomes",
    )
    .await?;
    let cfg = CoordinatorCfg {
        url,
        job,
        items_dir: rec.dir.logs_dir().join("items"),
        poll,
        window: m.max_parallel.unwrap_or(usize::MAX),
    };
    let mut backend = PostgresBackend::start(cfg, conn);
    // Pauses reach the workers as the job's state; the dispatcher gets every message.
    let pauser = backend.pauser();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let forward = async {
        while let Some(msg) = control.recv().await {
            match &msg {
                ControlMsg::Pause(_) => pauser.pause(true),
                ControlMsg::Unpause => pauser.pause(false),
                ControlMsg::Interrupted(_) => {}
            }
            if tx.send(msg).is_err() {
                break;
            }
        }
        std::future::pending::<()>().await
    };
    let end = tokio::select! {
        end = dispatch(&mut backend, map_run, rec, &mut rx) => end?,
        _ = forward => unreachable!("forwarding never ends"),
    };
    let forget = end == MapEnd::Finished && rec.view.counts.pending == 0;
    if let Err(e) = backend.close(forget, Duration::from_secs(10)).await {
        rec.report(&Event::Warning {
            message: format!("could not drop the job's rows in PostgreSQL: {e}"),
        });
    }
    Ok(end)
}
