//! `runner exec-item` (hidden): one array task of the Slurm executor.

use anyhow::bail;

use crate::cli::args::ExecItemArgs;

pub fn exec_item(_a: &ExecItemArgs) -> anyhow::Result<i32> {
    bail!("the Slurm executor is not available in this build")
}
