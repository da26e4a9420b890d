//! What every attempt of a map shares: the template steps, job variables, environment,
//! working directory, limits, where logs go, and the run's cancellation.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::engine::attempt::vars::JobVars;
use crate::engine::controls::{Controls, KillSwitch};
use crate::engine::limits::enforcer::Enforcer;
use crate::engine::worktree::item::ItemWorktrees;
use crate::workflow::model::{Step, Workflow};

/// Everything an attempt needs that is the same for all items of a map.
pub struct AttemptCtx<E> {
    pub exec: E,
    pub steps: Arc<Vec<Step>>,
    pub vars: JobVars,
    /// Workflow env as `(name, value)` pairs, added to each step's environment.
    pub env: Vec<(String, String)>,
    pub dir: PathBuf,
    /// Per attempt of the whole template (`map.timeout`).
    pub timeout: Option<Duration>,
    pub kill_grace: Duration,
    /// `logs/items/` of the job; each item logs under `<stem>/<attempt>.out|err`.
    pub logs_dir: Option<PathBuf>,
    pub cancel: CancellationToken,
    pub kill: KillSwitch,
    /// `map.resources` and how they are enforced (`None`: no limits); set with
    /// [`AttemptCtx::with_limits`].
    pub limits: Option<Arc<Enforcer>>,
    /// Git isolation: each attempt runs in its item's worktree, merged back when it
    /// succeeds; set with [`AttemptCtx::with_worktrees`].
    pub worktrees: Option<Arc<ItemWorktrees>>,
}

impl<E> AttemptCtx<E> {
    /// The map of `wf` for a job with these variables, cancelled by `controls`.
    pub fn new(
        exec: E,
        wf: &Workflow,
        vars: JobVars,
        logs_dir: Option<PathBuf>,
        controls: &Controls,
    ) -> Self {
        AttemptCtx {
            exec,
            steps: Arc::new(wf.map.steps.clone()),
            env: vars.env_pairs(wf),
            vars,
            dir: wf.dir.clone(),
            timeout: wf.map.timeout,
            kill_grace: wf.map.kill_grace,
            logs_dir,
            cancel: controls.cancel.clone(),
            kill: controls.kill.clone(),
            limits: None,
            worktrees: None,
        }
    }

    /// Limit every attempt with `limits`.
    pub fn with_limits(mut self, limits: Option<Arc<Enforcer>>) -> Self {
        self.limits = limits;
        self
    }

    /// Run every attempt in its item's git worktree.
    pub fn with_worktrees(mut self, worktrees: Option<Arc<ItemWorktrees>>) -> Self {
        self.worktrees = worktrees;
        self
    }
}
