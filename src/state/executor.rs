//! Which executor (map backend) a job uses, remembered in the job directory: `--executor`
//! given to `run`, `resume` or `dlq retry` wins and is kept (`<job>/executor`) for later
//! runs of the job; otherwise the workflow's `executor:` key decides.

use std::path::Path;

use super::atomic::write_atomic;
use super::error::StateError;
use crate::workflow::model::ExecutorKind;

/// The file holding the remembered choice.
fn marker(job_dir: &Path) -> std::path::PathBuf {
    job_dir.join("executor")
}

/// Where earlier versions kept "slurm" (read only).
fn old_marker(job_dir: &Path) -> std::path::PathBuf {
    job_dir.join("slurm").join("executor")
}

/// The executor of a run of the job in `job_dir`.
pub fn choose_executor(
    job_dir: &Path,
    workflow: ExecutorKind,
    flag: Option<ExecutorKind>,
) -> Result<ExecutorKind, StateError> {
    if let Some(kind) = flag {
        write_atomic(&marker(job_dir), format!("{}\n", kind.name()).as_bytes())?;
        let _ = std::fs::remove_file(old_marker(job_dir));
        return Ok(kind);
    }
    for path in [marker(job_dir), old_marker(job_dir)] {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                return ExecutorKind::parse(text.trim())
                    .map_err(|detail| StateError::Corrupt { path, detail });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StateError::io("read", &path, e)),
        }
    }
    Ok(workflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_is_remembered_until_another_flag() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        assert_eq!(
            choose_executor(p, ExecutorKind::Local, None).unwrap(),
            ExecutorKind::Local
        );
        assert_eq!(
            choose_executor(p, ExecutorKind::Local, Some(ExecutorKind::Slurm)).unwrap(),
            ExecutorKind::Slurm
        );
        assert_eq!(
            choose_executor(p, ExecutorKind::Local, None).unwrap(),
            ExecutorKind::Slurm
        );
        assert_eq!(
            choose_executor(p, ExecutorKind::Slurm, Some(ExecutorKind::Local)).unwrap(),
            ExecutorKind::Local
        );
        assert_eq!(
            choose_executor(p, ExecutorKind::Slurm, None).unwrap(),
            ExecutorKind::Local
        );
    }

    #[test]
    fn the_old_slurm_marker_is_read() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("slurm")).unwrap();
        std::fs::write(d.path().join("slurm/executor"), "slurm\n").unwrap();
        assert_eq!(
            choose_executor(d.path(), ExecutorKind::Local, None).unwrap(),
            ExecutorKind::Slurm
        );
    }
}
