//! Talking to Slurm: the [`SlurmClient`] seam (submit an array, ask the states of its tasks,
//! find arrays by comment, cancel), the real client that runs `sbatch`, `squeue`, `sacct`
//! and `scancel`, and the parsing of their output. The coordinator only sees this trait, so
//! its decisions are tested against an in-memory cluster (`fake.rs`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::workflow::template::quote::quote_bare as quote;

/// One array task: the Slurm job id of its array and its index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    pub job: String,
    pub index: usize,
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.job, self.index)
    }
}

/// Why a Slurm command gave no answer: one line, Slurm's own words where it said any.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ClientError(pub String);

/// One array job to submit: tasks `0..tasks`, at most `throttle` running at once, each
/// running `runner exec-item --job-dir JOB_DIR --submission SUB`.
#[derive(Debug, Clone, PartialEq)]
pub struct SbatchRequest {
    pub job_name: String,
    pub comment: String,
    pub sub: u64,
    pub tasks: usize,
    pub throttle: usize,
    pub runner: PathBuf,
    pub job_dir: PathBuf,
    pub time_limit: Option<Duration>,
    pub partition: Option<String>,
    pub cpus_per_task: Option<u32>,
    pub mem: Option<String>,
    pub extra: Vec<String>,
}

/// Task states as Slurm names them (`PENDING`, `RUNNING`, `COMPLETED`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskStates {
    tasks: HashMap<TaskId, String>,
    /// The state of an array's tasks that were not listed one by one (pending ones that
    /// squeue shows as a range).
    rest: HashMap<String, String>,
}

impl TaskStates {
    pub fn get(&self, t: &TaskId) -> Option<&str> {
        self.tasks
            .get(t)
            .or_else(|| self.rest.get(&t.job))
            .map(String::as_str)
    }

    pub fn set(&mut self, t: TaskId, state: &str) {
        self.tasks.insert(t, state.to_owned());
    }

    /// Keep what is known; add what is not.
    fn add(&mut self, t: TaskId, state: &str) {
        self.tasks.entry(t).or_insert_with(|| state.to_owned());
    }
}

/// Whether a Slurm job state is final (anything not known to be live is).
pub fn is_terminal(state: &str) -> bool {
    !matches!(
        state,
        "PENDING"
            | "RUNNING"
            | "CONFIGURING"
            | "COMPLETING"
            | "SUSPENDED"
            | "REQUEUED"
            | "REQUEUE_HOLD"
            | "REQUEUE_FED"
            | "RESIZING"
            | "SIGNALING"
            | "STAGE_OUT"
            | "STOPPED"
            | "RESV_DEL_HOLD"
            | "POWER_UP_NODE"
    )
}

/// What the coordinator needs from Slurm.
#[allow(async_fn_in_trait)]
pub trait SlurmClient {
    /// Submit an array job; its Slurm job id.
    async fn sbatch(&self, req: &SbatchRequest) -> Result<String, ClientError>;

    /// The states of the tasks of the jobs named `job_name` (one `squeue` for all arrays),
    /// completed by `sacct` for the `wanted` tasks squeue no longer lists (when accounting
    /// works). A task neither knows is absent: it ended long ago.
    async fn task_states(
        &self,
        job_name: &str,
        wanted: &[TaskId],
    ) -> Result<TaskStates, ClientError>;

    /// `(job id, comment)` of every job named `job_name` that Slurm still knows.
    async fn comments(&self, job_name: &str) -> Result<Vec<(String, String)>, ClientError>;

    /// `scancel` these jobs (every task, or only those that have not started).
    async fn cancel(&self, jobs: &[String], only_pending: bool) -> Result<(), ClientError>;
}

/// The Slurm client commands on `PATH`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CliClient;

/// How long one Slurm command may take before it counts as no answer.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

impl SlurmClient for CliClient {
    async fn sbatch(&self, req: &SbatchRequest) -> Result<String, ClientError> {
        parse_job_id(&run("sbatch", &sbatch_args(req)).await?)
    }

    async fn task_states(
        &self,
        job_name: &str,
        wanted: &[TaskId],
    ) -> Result<TaskStates, ClientError> {
        let mut states = parse_squeue(&run("squeue", &squeue_args(job_name, "%F %K %T")).await?);
        let mut missing: Vec<&str> = wanted
            .iter()
            .filter(|t| states.get(t).is_none())
            .map(|t| t.job.as_str())
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            let args = [
                "-n",
                "-X",
                "-P",
                "-j",
                &missing.join(","),
                "-o",
                "JobID,State",
            ];
            // Without accounting sacct fails: those tasks stay unknown (ended).
            if let Ok(out) = run("sacct", &args.map(String::from)).await {
                parse_sacct(&out, &mut states);
            }
        }
        Ok(states)
    }

    async fn comments(&self, job_name: &str) -> Result<Vec<(String, String)>, ClientError> {
        Ok(parse_comments(
            &run("squeue", &squeue_args(job_name, "%F %k")).await?,
        ))
    }

    async fn cancel(&self, jobs: &[String], only_pending: bool) -> Result<(), ClientError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut args: Vec<String> = Vec::new();
        if only_pending {
            args.push("--state=PENDING".into());
        }
        args.extend(jobs.iter().cloned());
        run("scancel", &args).await.map(|_| ())
    }
}

/// Forgets a Slurm command's pid in the reaper's registry however its wait ends (also when
/// the waiting future is dropped: the child is then killed and reaped by tokio).
struct Registered(Option<u32>);

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            crate::engine::process::reaper::forget(pid as i32);
        }
    }
}

/// Run a Slurm command; its stdout, or why there is none.
async fn run(prog: &str, args: &[String]) -> Result<String, ClientError> {
    let mut c = tokio::process::Command::new(prog);
    c.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = crate::engine::process::reaper::spawn_registered(|| c.spawn(), |ch| ch.id())
        .map_err(|e| ClientError(format!("{prog}: {e}")))?;
    let _registered = Registered(child.id());
    let out = match tokio::time::timeout(COMMAND_LIMIT, child.wait_with_output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Err(ClientError(format!("{prog}: {e}"))),
        Err(_) => {
            return Err(ClientError(format!(
                "{prog} did not answer within {}s",
                COMMAND_LIMIT.as_secs()
            )));
        }
    };
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Err(ClientError(format!(
        "{prog} failed ({}): {}",
        out.status,
        last.trim()
    )))
}

fn squeue_args(job_name: &str, format: &str) -> Vec<String> {
    ["-h", "-r", "-t", "all", "-n", job_name, "-o", format]
        .map(String::from)
        .to_vec()
}

/// `--time` in whole minutes (Slurm's granularity), at least 1.
pub fn slurm_minutes(d: Duration) -> u64 {
    d.as_secs().div_ceil(60).max(1)
}

/// The `sbatch` arguments of a request.
pub fn sbatch_args(req: &SbatchRequest) -> Vec<String> {
    let dir = req.job_dir.to_string_lossy();
    let wrap = format!(
        "exec {} exec-item --job-dir {} --submission {}",
        quote(&req.runner.to_string_lossy()),
        quote(&dir),
        req.sub
    );
    let mut args = vec![
        "--parsable".to_owned(),
        format!("--job-name={}", req.job_name),
        format!("--comment={}", req.comment),
        format!(
            "--array=0-{}%{}",
            req.tasks.saturating_sub(1),
            req.throttle.max(1)
        ),
        "--no-requeue".into(),
        format!("--output={dir}/slurm/logs/%A_%a.out"),
        format!("--chdir={dir}"),
    ];
    if let Some(t) = req.time_limit {
        args.push(format!("--time={}", slurm_minutes(t)));
    }
    if let Some(p) = &req.partition {
        args.push(format!("--partition={p}"));
    }
    if let Some(c) = req.cpus_per_task {
        args.push(format!("--cpus-per-task={c}"));
    }
    if let Some(m) = &req.mem {
        args.push(format!("--mem={m}"));
    }
    args.extend(req.extra.iter().cloned());
    args.push(format!("--wrap={wrap}"));
    args
}

/// `sbatch --parsable` prints `<job id>` or `<job id>;<cluster>`.
pub fn parse_job_id(out: &str) -> Result<String, ClientError> {
    let id = out.trim().split(';').next().unwrap_or("").trim();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(ClientError(format!(
            "sbatch printed {:?} instead of a job id",
            out.trim()
        )));
    }
    Ok(id.to_owned())
}

/// `squeue -r -o "%F %K %T"`: `<array job id> <task index> <state>` per line; tasks not
/// split off yet show as `N/A` or a range such as `[3-49%4]` (the rest of the array).
pub fn parse_squeue(out: &str) -> TaskStates {
    let mut states = TaskStates::default();
    for line in out.lines() {
        let mut f = line.split_whitespace();
        let (Some(job), Some(index), Some(state)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        match index.parse::<usize>() {
            Ok(index) => states.set(
                TaskId {
                    job: job.to_owned(),
                    index,
                },
                state,
            ),
            Err(_) => {
                states.rest.insert(job.to_owned(), state.to_owned());
            }
        }
    }
    states
}

/// `sacct -n -X -P -o JobID,State`: `<job>_<index>|<state>[ by <uid>]` per line; what
/// squeue said wins.
pub fn parse_sacct(out: &str, states: &mut TaskStates) {
    for line in out.lines() {
        let Some((id, state)) = line.split_once('|') else {
            continue;
        };
        let Some((job, index)) = id.split_once('_') else {
            continue;
        };
        let (Ok(index), Some(state)) = (index.parse::<usize>(), state.split_whitespace().next())
        else {
            continue;
        };
        states.add(
            TaskId {
                job: job.to_owned(),
                index,
            },
            state,
        );
    }
}

/// `squeue -r -o "%F %k"`: `<array job id> <comment>` per line (one per task), as distinct
/// `(job, comment)` pairs.
pub fn parse_comments(out: &str) -> Vec<(String, String)> {
    let mut seen: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.trim().split_once(' '))
        .map(|(job, comment)| (job.to_owned(), comment.trim().to_owned()))
        .collect();
    seen.sort();
    seen.dedup();
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(job: &str, index: usize) -> TaskId {
        TaskId {
            job: job.into(),
            index,
        }
    }

    #[test]
    fn squeue_lines_and_ranges() {
        let s = parse_squeue(
            "12 0 RUNNING\n12 1 COMPLETED\n12 [2-9%4] PENDING\n13 N/A PENDING\n\njunk\n",
        );
        assert_eq!(s.get(&t("12", 0)), Some("RUNNING"));
        assert_eq!(s.get(&t("12", 1)), Some("COMPLETED"));
        assert_eq!(s.get(&t("12", 7)), Some("PENDING"), "in the range");
        assert_eq!(s.get(&t("13", 0)), Some("PENDING"));
        assert_eq!(s.get(&t("14", 0)), None);
    }

    #[test]
    fn sacct_fills_in_what_squeue_forgot() {
        let mut s = parse_squeue("12 0 RUNNING\n");
        parse_sacct(
            "12_0|COMPLETED\n12_1|CANCELLED by 0\n12_[2-4]|PENDING\n12|FAILED\nbad\n",
            &mut s,
        );
        assert_eq!(s.get(&t("12", 0)), Some("RUNNING"), "squeue wins");
        assert_eq!(s.get(&t("12", 1)), Some("CANCELLED"));
        assert_eq!(s.get(&t("12", 3)), None);
    }

    #[test]
    fn job_ids_and_comments() {
        assert_eq!(parse_job_id("4242\n").unwrap(), "4242");
        assert_eq!(parse_job_id("4242;cluster\n").unwrap(), "4242");
        let e = parse_job_id("Submitted batch job 4242").unwrap_err();
        assert!(e.0.contains("instead of a job id"), "{e}");
        assert_eq!(
            parse_comments("7 runner-sub-1-ab\n7 runner-sub-1-ab\n8 (null)\n"),
            vec![
                ("7".to_owned(), "runner-sub-1-ab".to_owned()),
                ("8".to_owned(), "(null)".to_owned())
            ]
        );
    }

    #[test]
    fn sbatch_arguments_quote_the_paths_of_the_wrapped_command() {
        let req = SbatchRequest {
            job_name: "runner-j1".into(),
            comment: "runner-sub-3-ff".into(),
            sub: 3,
            tasks: 10,
            throttle: 4,
            runner: "/opt/my runner/runner".into(),
            job_dir: "/state/jobs/it's".into(),
            time_limit: Some(Duration::from_secs(61)),
            partition: Some("short".into()),
            cpus_per_task: Some(2),
            mem: Some("4G".into()),
            extra: vec!["--qos=normal".into()],
        };
        let args = sbatch_args(&req);
        assert_eq!(
            args,
            vec![
                "--parsable",
                "--job-name=runner-j1",
                "--comment=runner-sub-3-ff",
                "--array=0-9%4",
                "--no-requeue",
                "--output=/state/jobs/it's/slurm/logs/%A_%a.out",
                "--chdir=/state/jobs/it's",
                "--time=2",
                "--partition=short",
                "--cpus-per-task=2",
                "--mem=4G",
                "--qos=normal",
                "--wrap=exec '/opt/my runner/runner' exec-item --job-dir '/state/jobs/it'\\''s' --submission 3",
            ]
        );
    }

    #[test]
    fn terminal_states() {
        assert!(!is_terminal("PENDING"));
        assert!(!is_terminal("RUNNING"));
        assert!(!is_terminal("COMPLETING"));
        assert!(is_terminal("COMPLETED"));
        assert!(is_terminal("CANCELLED"));
        assert!(is_terminal("TIMEOUT"));
        assert!(is_terminal("UNKNOWN"));
        assert_eq!(slurm_minutes(Duration::from_secs(1)), 1);
        assert_eq!(slurm_minutes(Duration::from_secs(121)), 3);
    }
}
