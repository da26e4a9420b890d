//! The Slurm executor on a real single-node Slurm (issue 7). `.ci/run` starts one with
//! `scripts/ci-slurm-setup.sh` and sets `RUNNER_REQUIRE_SLURM=1`: the tests then run and
//! fail when Slurm is unusable. Without that variable they are `ignored` (run them with
//! `RUNNER_REQUIRE_SLURM=1 cargo test --test slurm` on a machine with Slurm).
//!
//! - 200 items, 3 failing: 197 successes, 3 DLQ entries with their exit codes, exit 1; after
//!   the fix (a flag file) `dlq retry` clears them, on Slurm too.
//! - The coordinator is SIGKILLed mid-run; `resume` adopts the tasks still queued or running
//!   and collects finished ones: every item runs once and is submitted once.
//! - A task whose `runner exec-item` is killed loses its item, which goes back to the queue
//!   (`task_lost`) until the lost limit, then to the DLQ.
//! - Batched tasks (10 items each): one array task is `scancel`led mid-batch; its finished
//!   items are kept, its unfinished ones run again, every item is recorded once.

mod common;
#[path = "common/crash.rs"]
mod crash;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use crash::*;

const ITEMS: usize = 200;

fn slurm_available() -> bool {
    let out = std::process::Command::new("sinfo")
        .args(["-h", "-o", "%t"])
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l.starts_with("idle") || l.starts_with("mix") || l.starts_with("alloc")),
        _ => false,
    }
}

/// Fails the test, naming what is wrong, when the Slurm that CI promised is unusable.
macro_rules! require_slurm {
    () => {
        assert!(
            slurm_available(),
            "RUNNER_REQUIRE_SLURM=1 but Slurm is not usable: `sinfo -h -o %t` shows no idle, mixed or allocated node"
        );
    };
}

fn workflow(name: &str, step: &str) -> String {
    format!(
        r#"name: {name}
executor: slurm
slurm:
  poll_interval: 200ms
  array_size: 50
map:
  input: items.json
  max_parallel: 16
  timeout: 1m
  agent_template:
    - shell: '{step}'
"#
    )
}

fn status(p: &Project, job: &str) -> serde_json::Value {
    let o = p.run(&["status", job, "--json"]);
    serde_json::from_slice(&o.stdout).expect("status json")
}

/// Item index -> how many submissions held an attempt of it (`slurm/submissions.jsonl`:
/// one line per sbatch, `tasks` holding each array task's `{idx, attempt}` batch).
fn submitted_items(p: &Project, job: &str) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for v in submissions(p, job) {
        for task in v["tasks"].as_array().expect("tasks") {
            for a in task.as_array().expect("a task's batch") {
                *m.entry(a["idx"].as_u64().expect("idx")).or_default() += 1;
            }
        }
    }
    m
}

fn submissions(p: &Project, job: &str) -> Vec<serde_json::Value> {
    let text =
        std::fs::read_to_string(p.job_dir(job).join("slurm/submissions.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).expect("submission line"))
        .collect()
}

#[test]
#[cfg_attr(
    not(runner_require_slurm),
    ignore = "needs Slurm: RUNNER_REQUIRE_SLURM=1 (set by .ci/run)"
)]
fn failing_items_reach_the_dlq_and_dlq_retry_clears_them() {
    require_slurm!();
    let p = Project::new();
    p.file("items.json", &numbered_items(ITEMS));
    p.file(
        "wf.yml",
        &workflow(
            "slurm-dlq",
            "echo ${item.id} >> exec.log; case ${item.id} in 13|77|150) test -f fixed || exit 42;; esac",
        ),
    );
    let t0 = std::time::Instant::now();
    let o = p.run(&["run", "wf.yml", "--job-id", "dlq1"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    eprintln!("200 items on slurm: {:?}", t0.elapsed());
    let st = status(&p, "dlq1");
    assert_eq!(st["successful"], 197, "{st}");
    assert_eq!(st["dlq"], 3, "{st}");
    let dlq = dlq_list(&p, "dlq1");
    assert_eq!(dlq_ids(&p, "dlq1"), vec!["13", "150", "77"]);
    for e in &dlq {
        assert_eq!(e["exit_code"], 42, "{e}");
        assert_eq!(e["last_error"]["class"], "exit", "{e}");
    }
    assert_eq!(line_counts(&p.read("exec.log")), once_each(1..=ITEMS));
    assert_eq!(submitted_items(&p, "dlq1"), once_each_u64(0..ITEMS));

    // The fix, then a DLQ retry: on Slurm too (the job remembers its executor from the file).
    p.file("fixed", "");
    let o = p.run(&["dlq", "retry", "dlq1"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let st = status(&p, "dlq1");
    assert_eq!(st["successful"], 200, "{st}");
    assert_eq!(st["dlq"], 0, "{st}");
    assert!(dlq_list(&p, "dlq1").is_empty());
    let subs = submitted_items(&p, "dlq1");
    for idx in [12u64, 76, 149] {
        assert_eq!(
            subs[&idx], 2,
            "item index {idx} is submitted again by the retry"
        );
    }
    let runs = line_counts(&p.read("exec.log"));
    assert_eq!(runs["13"], 2);
    assert_eq!(runs.values().sum::<usize>(), ITEMS + 3);
}

fn once_each_u64(r: std::ops::Range<usize>) -> BTreeMap<u64, usize> {
    r.map(|i| (i as u64, 1)).collect()
}

#[test]
#[cfg_attr(
    not(runner_require_slurm),
    ignore = "needs Slurm: RUNNER_REQUIRE_SLURM=1 (set by .ci/run)"
)]
fn killed_coordinator_resumes_by_adopting_its_tasks() {
    require_slurm!();
    let p = Project::new();
    p.file("items.json", &numbered_items(ITEMS));
    p.file(
        "wf.yml",
        &workflow("slurm-kill", "sleep 0.3; echo ${item.id} >> exec.log"),
    );
    let mut bg = spawn(&p, &["run", "wf.yml", "--job-id", "kill1"]);
    let journal = p.job_dir("kill1").join("journal.log");
    wait_until("40 items recorded", Duration::from_secs(90), || {
        item_done_count(&journal) >= 40
    });
    bg.kill9();
    let before = item_done_count(&journal);
    assert!(before < ITEMS, "the run finished before the kill");
    // Tasks of the dead coordinator go on running on the cluster meanwhile.
    let o = p.run(&["resume", "kill1"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("adopted"), "{stderr}");
    let st = status(&p, "kill1");
    assert_eq!(st["successful"], 200, "{st}");
    // Every item ran once and was submitted once: nothing finished or still running was
    // submitted again.
    let twice: Vec<String> = line_counts(&p.read("exec.log"))
        .into_iter()
        .filter(|(_, n)| *n != 1)
        .map(|(id, n)| format!("{id}x{n}"))
        .collect();
    assert!(
        twice.is_empty(),
        "items not run exactly once: {twice:?}\nresume stderr:\n{stderr}\nsubmissions:\n{}",
        std::fs::read_to_string(p.job_dir("kill1").join("slurm/submissions.jsonl"))
            .unwrap_or_default()
    );
    assert_eq!(line_counts(&p.read("exec.log")), once_each(1..=ITEMS));
    assert_eq!(submitted_items(&p, "kill1"), once_each_u64(0..ITEMS));
    let records = journal_records(&journal);
    assert!(
        succeeded_records(&records).values().all(|&n| n == 1),
        "an item was recorded twice"
    );
}

#[test]
#[cfg_attr(
    not(runner_require_slurm),
    ignore = "needs Slurm: RUNNER_REQUIRE_SLURM=1 (set by .ci/run)"
)]
fn a_task_that_ends_without_an_outcome_loses_its_item_until_the_lost_limit() {
    require_slurm!();
    let p = Project::new();
    p.file("items.json", &numbered_items(3));
    // Item 2's task dies under it (`runner exec-item` is SIGKILLed, as by an OOM kill or a
    // node failure): no outcome file, every time.
    p.file(
        "wf.yml",
        &workflow(
            "slurm-lost",
            "if [ ${item.id} = 2 ]; then kill -9 $PPID; sleep 1; fi",
        ),
    );
    let o = p.run(&["run", "wf.yml", "--job-id", "lost1"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    let dlq = dlq_list(&p, "lost1");
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0]["item_id"], "2");
    assert_eq!(dlq[0]["last_error"]["class"], "task_lost", "{dlq:?}");
    assert_eq!(
        dlq[0]["attempts"], 4,
        "lost once, then three more times: {dlq:?}"
    );
    let tail = dlq[0]["stderr_tail"].as_str().unwrap_or("").to_owned();
    assert!(tail.contains("without an outcome"), "{dlq:?}");
    assert_eq!(status(&p, "lost1")["successful"], 2);
}

#[test]
#[cfg_attr(
    not(runner_require_slurm),
    ignore = "needs Slurm: RUNNER_REQUIRE_SLURM=1 (set by .ci/run)"
)]
fn a_task_cancelled_mid_batch_loses_only_its_unfinished_items() {
    require_slurm!();
    let p = Project::new();
    p.file("items.json", &numbered_items(40));
    // 4 tasks of 10 items, 2 at a time: task 0 runs items 1..=10 for about 5 s.
    p.file(
        "wf.yml",
        r#"name: slurm-batch
executor: slurm
slurm:
  poll_interval: 200ms
  items_per_task: 10
  parallel_per_task: 2
map:
  input: items.json
  max_parallel: 8
  timeout: 1m
  agent_template:
    - shell: 'sleep 1; echo ${item.id} >> done.log'
"#,
    );
    let mut bg = spawn(&p, &["run", "wf.yml", "--job-id", "batch1"]);
    wait_until("the array to be submitted", Duration::from_secs(60), || {
        !submissions(&p, "batch1").is_empty()
    });
    let job = submissions(&p, "batch1")[0]["slurm_job_id"]
        .as_str()
        .expect("job id")
        .to_owned();
    let first_task: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
    let done_in_first = || {
        line_counts(&p.read("done.log"))
            .keys()
            .filter(|id| first_task.contains(id))
            .count()
    };
    wait_until(
        "two items of task 0 to finish",
        Duration::from_secs(60),
        || done_in_first() >= 2,
    );
    let out = std::process::Command::new("scancel")
        .arg(format!("{job}_0"))
        .output()
        .expect("scancel");
    assert!(out.status.success(), "{out:?}");
    let code = bg.wait_code(Duration::from_secs(120));
    let stderr = bg.stderr();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(status(&p, "batch1")["successful"], 40);

    let records = journal_records(&p.job_dir("batch1").join("journal.log"));
    assert!(
        succeeded_records(&records).values().all(|&n| n == 1),
        "an item was recorded twice"
    );
    assert_eq!(succeeded_records(&records).len(), 40);
    let lost: Vec<u64> = records
        .iter()
        .filter(|r| r["t"] == "attempt" && r["attempt"]["failure"]["class"] == "task_lost")
        .map(|r| r["idx"].as_u64().expect("idx"))
        .collect();
    assert!(!lost.is_empty(), "task 0 was cut short: {stderr}");
    assert!(
        lost.iter().all(|&i| i < 10),
        "only task 0's items were lost: {lost:?}"
    );
    let kept = 10 - lost.len();
    assert!(kept >= 2, "its finished items were kept: {lost:?}");
    // Items that were not lost ran once; the lost ones ran again (once more each).
    let done = line_counts(&p.read("done.log"));
    for idx in 0..40u64 {
        let id = (idx + 1).to_string();
        let n = done.get(&id).copied().unwrap_or(0);
        if lost.contains(&idx) {
            assert!((1..=2).contains(&n), "lost item {id} done {n} times");
        } else {
            assert_eq!(n, 1, "item {id} ran {n} times");
        }
    }
    let again: Vec<u64> = submitted_items(&p, "batch1")
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(again, lost, "exactly the lost items were submitted again");
}
