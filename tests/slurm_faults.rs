//! Slurm against stand-in `sbatch`/`squeue`/`sacct`/`scancel` scripts on `PATH` (no real
//! Slurm needed): a refused submission is an infrastructure failure (exit 1 with Slurm's
//! reason), a `squeue` that cannot answer while a resume decides what to adopt stops the
//! resume instead of submitting the items a second time, and an array's shape (tasks,
//! throttle, CPUs) follows `items_per_task`, `parallel_per_task` and `max_parallel`.

mod common;
#[path = "common/crash.rs"]
mod crash;

use std::time::Duration;

use common::*;
use crash::*;

/// The stand-in Slurm: `sbatch` logs each call to `sbatch.log`, answers with job id 1001 and
/// lists the array's tasks as RUNNING in `squeue.txt` (forever: nothing really runs);
/// `refuse-sbatch` and `squeue-down` flag files make them fail like a broken cluster.
fn fake_slurm(p: &Project) -> String {
    let bin = p.path().join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let root = p.path().display().to_string();
    let scripts = [
        (
            "sbatch",
            format!(
                r#"#!/bin/sh
echo "$*" >> {root}/sbatch.log
if [ -f {root}/refuse-sbatch ]; then
  echo "sbatch: error: Batch job submission failed: Invalid partition name specified" >&2
  exit 1
fi
for a in "$@"; do
  case "$a" in
    --array=*) last=${{a#--array=0-}}; last=${{last%%%*}} ;;
    --comment=*) comment=${{a#--comment=}} ;;
  esac
done
: > {root}/squeue.txt
k=0
while [ "$k" -le "$last" ]; do echo "1001 $k RUNNING $comment" >> {root}/squeue.txt; k=$((k+1)); done
echo 1001
"#
            ),
        ),
        (
            "squeue",
            format!(
                r#"#!/bin/sh
if [ -f {root}/squeue-down ]; then
  echo "squeue: error: Unable to contact slurm controller (connect failure)" >&2
  exit 1
fi
case "$*" in
  *"%F %k"*) awk '{{print $1, $4}}' {root}/squeue.txt 2>/dev/null | sort -u ;;
  *) awk '{{print $1, $2, $3}}' {root}/squeue.txt 2>/dev/null ;;
esac
"#
            ),
        ),
        ("sacct", "#!/bin/sh\nexit 0\n".to_owned()),
        ("scancel", "#!/bin/sh\nexit 0\n".to_owned()),
    ];
    for (name, text) in scripts {
        let path = bin.join(name);
        std::fs::write(&path, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

const WF: &str = "name: fake-slurm
executor: slurm
slurm:
  poll_interval: 100ms
map:
  input: items.json
  max_parallel: 4
  agent_template:
    - shell: 'true'
";

fn sbatch_calls(p: &Project) -> usize {
    p.read("sbatch.log").lines().count()
}

#[test]
fn a_refused_submission_is_an_infrastructure_failure_not_bad_usage() {
    let p = Project::new();
    let path = fake_slurm(&p);
    p.file("items.json", &numbered_items(3));
    p.file("wf.yml", WF);
    p.file("refuse-sbatch", "");
    let out = run_with(
        &p,
        &p.state_dir(),
        &["run", "wf.yml", "--job-id", "refused"],
        &[("PATH", &path)],
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "a refusing Slurm is exit 1, not 2: {err}");
    assert!(err.contains("Invalid partition name specified"), "{err}");
    assert!(sbatch_calls(&p) >= 1);
    let st = p.status("refused");
    assert_eq!(st["state"], "failed", "{st}");
    assert_eq!(st["pending"], 3, "the items stay to do: {st}");
}

#[test]
fn resume_stops_instead_of_submitting_again_when_squeue_cannot_answer() {
    let p = Project::new();
    let path = fake_slurm(&p);
    p.file("items.json", &numbered_items(3));
    p.file("wf.yml", WF);
    let mut bg = spawn_with(
        &p,
        &p.state_dir(),
        &["run", "wf.yml", "--job-id", "adopt"],
        &[("PATH", &path)],
    );
    let subs = p.job_dir("adopt").join("slurm/submissions.jsonl");
    wait_until(
        "the submission to be recorded",
        Duration::from_secs(20),
        || std::fs::read_to_string(&subs).is_ok_and(|s| s.ends_with('\n')),
    );
    bg.kill9();
    assert_eq!(sbatch_calls(&p), 1);

    // The tasks may still run on the cluster, but squeue cannot say so.
    p.file("squeue-down", "");
    let mut bg = spawn_with(&p, &p.state_dir(), &["resume", "adopt"], &[("PATH", &path)]);
    let exit = bg.wait_code(Duration::from_secs(30));
    let err = bg.stderr();
    assert_eq!(exit, Some(1), "{err}");
    assert!(err.contains("Unable to contact slurm controller"), "{err}");
    assert!(err.contains("nothing was submitted again"), "{err}");
    assert_eq!(
        sbatch_calls(&p),
        1,
        "an unknown answer must not resubmit (a double run): {}",
        p.read("sbatch.log")
    );

    // Slurm answers again: the resume adopts the running array instead of submitting it.
    std::fs::remove_file(p.path().join("squeue-down")).unwrap();
    let mut bg = spawn_with(&p, &p.state_dir(), &["resume", "adopt"], &[("PATH", &path)]);
    wait_until("the adoption", Duration::from_secs(20), || {
        bg.stderr().contains("adopted 3 Slurm task(s)")
    });
    bg.kill9();
    assert_eq!(sbatch_calls(&p), 1, "{}", p.read("sbatch.log"));
}

#[test]
fn items_are_batched_per_task_and_the_throttle_counts_items_in_flight() {
    let p = Project::new();
    let path = fake_slurm(&p);
    p.file("items.json", &numbered_items(7));
    // The old name `cpus_per_item` still works; a task runs 2 items at once (its CPUs).
    p.file(
        "wf.yml",
        "name: fake-slurm
executor: slurm
slurm:
  poll_interval: 100ms
  cpus_per_item: 2
  items_per_task: 3
map:
  input: items.json
  max_parallel: 4
  agent_template:
    - shell: 'true'
",
    );
    let mut bg = spawn_with(
        &p,
        &p.state_dir(),
        &["run", "wf.yml", "--job-id", "batched"],
        &[("PATH", &path)],
    );
    let subs = p.job_dir("batched").join("slurm/submissions.jsonl");
    wait_until("the submission", Duration::from_secs(20), || {
        std::fs::read_to_string(&subs).is_ok_and(|s| s.ends_with('\n'))
    });
    bg.kill9();
    let call = p.read("sbatch.log");
    // 7 items in tasks of 3: 3 tasks; 4 items in flight at 2 per task: 2 tasks at once.
    assert!(call.contains("--array=0-2%2 "), "{call}");
    assert!(call.contains("--cpus-per-task=2 "), "{call}");
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&subs).unwrap().trim()).unwrap();
    let batches: Vec<Vec<u64>> = line["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t.as_array()
                .unwrap()
                .iter()
                .map(|a| a["idx"].as_u64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(batches, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
}
