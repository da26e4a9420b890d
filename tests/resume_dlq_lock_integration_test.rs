//! `resume`, `dlq retry|show|purge` and the job lock, driven through the binary.

mod common;
#[path = "common/crash.rs"]
mod crash;

use std::time::Duration;

use common::*;
use crash::*;

const WAIT: Duration = Duration::from_secs(8);

/// 10 items: 1-3 succeed, 4-6 fail until `fixed` exists, 7-10 block until `go` exists.
const WF_MAIN: &str = r#"name: rdl
map:
  input: items.json
  max_parallel: 4
  agent_template:
    - shell: |
        echo ${item_id} >> exec.log
        case ${item_id} in
          4|5|6) [ -f fixed ] || { echo "item ${item_id} is not fixed" >&2; exit 7; } ;;
          7|8|9|10) touch started.${item_id}; while [ ! -f go ]; do sleep 0.05; done ;;
        esac
reduce:
  - shell: "echo ${map.successful}/${map.total} > summary.txt"
"#;

fn started_all(p: &Project, ids: std::ops::RangeInclusive<usize>) -> bool {
    ids.into_iter()
        .all(|i| p.path().join(format!("started.{i}")).exists())
}

fn clear_started(p: &Project) {
    for i in 1..=10 {
        let _ = std::fs::remove_file(p.path().join(format!("started.{i}")));
    }
}

/// Move `exec.log` aside and return its counts.
fn take_exec(p: &Project) -> std::collections::BTreeMap<String, usize> {
    let text = p.read("exec.log");
    let _ = std::fs::remove_file(p.path().join("exec.log"));
    line_counts(&text)
}

fn assert_no_double_success(p: &Project, job: &str) {
    let recs = journal_records(&p.job_dir(job).join("journal.log"));
    let doubles: Vec<_> = succeeded_records(&recs)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(
        doubles.is_empty(),
        "items recorded successful twice: {doubles:?}"
    );
}

#[test]
fn kill_dlq_lock_then_resume_runs_the_rest_once() {
    let p = Project::new();
    p.file("items.json", &numbered_items(10));
    p.file("wf.yml", WF_MAIN);
    let journal = p.job_dir("j1").join("journal.log");

    // First run: 1-6 finish (4-6 into the DLQ), 7-10 block; then SIGKILL.
    let mut run = spawn(&p, &["run", "wf.yml", "--job-id", "j1"]);
    wait_until("items 7-10 to start and 1-6 to be recorded", WAIT, || {
        started_all(&p, 7..=10) && item_done_count(&journal) >= 6
    });
    run.kill9();
    assert_eq!(take_exec(&p), once_each(1..=10));

    let st = p.status("j1");
    assert_eq!(st["state"], "interrupted", "{st}");
    assert_eq!(st["total"], 10, "{st}");
    assert_eq!(st["successful"], 3, "{st}");
    assert_eq!(st["dlq"], 3, "{st}");
    assert_eq!(st["pending"], 4, "{st}");
    assert_eq!(dlq_ids(&p, "j1"), ["4", "5", "6"]);

    // A resume that blocks (7-10 wait for `go`) holds the lock...
    clear_started(&p);
    p.file("fixed", "");
    let mut first = spawn(&p, &["resume", "j1"]);
    wait_until("the first resume to start items 7-10", WAIT, || {
        started_all(&p, 7..=10)
    });
    assert!(p.job_dir("j1").join("lock").exists());
    assert_eq!(p.status("j1")["state"], "running");

    // ...so a second resume (and a dlq retry) is refused at once with exit 3, naming the holder.
    let host = nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    for args in [&["resume", "j1"][..], &["dlq", "retry", "j1"][..]] {
        let t = std::time::Instant::now();
        let out = p.run(args);
        assert_eq!(code(&out), 3, "{args:?}: {}", stderr(&out));
        assert!(t.elapsed() < Duration::from_secs(3), "{args:?} waited");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("pid {}", first.pid())),
            "{args:?} does not name the holder's pid {}: {err}",
            first.pid()
        );
        assert!(
            err.contains(&host),
            "{args:?} does not name host {host}: {err}"
        );
    }

    // Crash the resume too, then finish with `go` present.
    first.kill9();
    let _ = take_exec(&p);
    p.file("go", "");
    let out = p.run(&["resume", "j1"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        take_exec(&p),
        once_each(4..=10),
        "the final resume ran items 4-10 once each"
    );

    assert!(dlq_list(&p, "j1").is_empty(), "DLQ not empty");
    assert!(
        !p.job_dir("j1").join("lock").exists(),
        "lock file left behind"
    );
    let st = p.status("j1");
    assert_eq!(st["state"], "completed", "{st}");
    assert_eq!(st["total"], 10, "{st}");
    assert_eq!(st["successful"], 10, "{st}");
    assert_eq!(st["failed"], 0, "{st}");
    assert_eq!(st["pending"], 0, "{st}");
    assert_eq!(st["dlq"], 0, "{st}");
    assert_eq!(p.read("summary.txt").trim(), "10/10");
    assert_no_double_success(&p, "j1");
}

/// Items fail (exit 7) while `fixed` is missing when their id is listed in `FAIL`.
fn wf_failing(extra: &str, fail: &str, max_parallel: usize) -> String {
    format!(
        r#"name: rdl
map:
  input: items.json
  max_parallel: {max_parallel}
  agent_template:
    - shell: |
        echo ${{item_id}} >> exec.log
        case ${{item_id}} in
          {fail}) [ -f fixed ] || {{ echo "item ${{item_id}} is not fixed" >&2; exit 7; }} ;;
        esac
{extra}reduce:
  - shell: "echo ${{map.successful}}/${{map.total}} > summary.txt"
"#
    )
}

#[test]
fn item_pending_in_journal_and_in_dlq_runs_once() {
    let p = Project::new();
    p.file("items.json", &numbered_items(3));
    p.file("wf.yml", &wf_failing("", "3", 1));
    let out = p.run(&["run", "wf.yml", "--job-id", "j"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(dlq_ids(&p, "j"), ["3"]);
    let _ = take_exec(&p);

    // Cut the journal just before item 3's item_done: it is pending per the journal but
    // still in dlq.jsonl (what a crash between the DLQ write and the journal record leaves).
    let journal = p.job_dir("j").join("journal.log");
    let bytes = std::fs::read(&journal).unwrap();
    let mut offset = 0;
    let mut cut = None;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(line);
        if text.contains(r#""t":"item_done""#) && text.contains(r#""idx":2,"#) {
            cut = Some(offset);
        }
        offset += line.len();
    }
    let cut = cut.expect("item_done of idx 2 in the journal");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap()
        .set_len(cut as u64)
        .unwrap();
    let st = p.status("j");
    assert_eq!(st["pending"], 1, "{st}");
    assert_eq!(st["successful"], 2, "{st}");
    let dlq_file = std::fs::read_to_string(p.job_dir("j").join("dlq.jsonl")).unwrap();
    assert!(
        dlq_file.contains(r#""item_id":"3""#),
        "the DLQ entry is still there"
    );
    // One rule, one number: the journal has it pending, so neither status nor dlq list
    // counts it in the DLQ.
    assert_eq!(st["dlq"], 0, "{st}");
    assert!(dlq_ids(&p, "j").is_empty());

    p.file("fixed", "");
    let out = p.run(&["resume", "j"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(take_exec(&p), once_each(3..=3), "item 3 runs exactly once");
    assert!(dlq_list(&p, "j").is_empty(), "DLQ not cleaned");
    let st = p.status("j");
    assert_eq!(st["state"], "completed", "{st}");
    assert_eq!(st["successful"], 3, "{st}");
    assert_eq!(st["dlq"], 0, "{st}");
    assert_eq!(p.read("summary.txt").trim(), "3/3");
    assert_no_double_success(&p, "j");
}

#[test]
fn dlq_retry_success_cleans_dlq_and_releases_lock() {
    let p = Project::new();
    p.file("items.json", &numbered_items(4));
    p.file("wf.yml", &wf_failing("", "2|3", 2));
    let out = p.run(&["run", "wf.yml", "--job-id", "j"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(dlq_ids(&p, "j"), ["2", "3"]);
    assert_eq!(p.read("summary.txt").trim(), "2/4");
    let _ = take_exec(&p);

    p.file("fixed", "");
    let out = p.run(&["dlq", "retry", "j"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(take_exec(&p), once_each(2..=3));
    assert!(dlq_list(&p, "j").is_empty(), "DLQ not cleaned");
    assert!(
        !p.job_dir("j").join("lock").exists(),
        "lock file left behind"
    );
    let st = p.status("j");
    assert_eq!(st["state"], "completed", "{st}");
    assert_eq!(st["successful"], 4, "{st}");
    assert_eq!(st["dlq"], 0, "{st}");
    assert_eq!(p.read("summary.txt").trim(), "4/4", "reduce ran again");

    // Nothing left: a retry says so and exits 0 without running anything.
    let out = p.run(&["dlq", "retry", "j"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(take_exec(&p).is_empty());
}

#[test]
fn failed_dlq_retry_appends_the_attempt() {
    let p = Project::new();
    p.file("items.json", &numbered_items(4));
    p.file("wf.yml", &wf_failing("", "2|3", 2));
    let out = p.run(&["run", "wf.yml", "--job-id", "j"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let _ = take_exec(&p);

    for round in 2..=3 {
        let out = p.run(&["dlq", "retry", "j", "--item", "2"]);
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        assert_eq!(take_exec(&p), once_each(2..=2), "only the named item ran");
        assert_eq!(dlq_ids(&p, "j"), ["2", "3"]);
        let list = dlq_list(&p, "j");
        let attempts = |id: &str| {
            list.iter()
                .find(|e| e["item_id"] == id)
                .map(|e| e["attempts"].clone())
                .unwrap()
        };
        assert_eq!(attempts("2"), round, "{list:?}");
        assert_eq!(attempts("3"), 1, "{list:?}");
        assert!(list.iter().all(|e| !e["last_error"].is_null()), "{list:?}");

        let out = p.run(&["dlq", "show", "j", "2"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let text = stdout(&out);
        for a in 1..=round {
            assert!(
                text.contains(&format!("attempt {a}: step 1 exited with code 7")),
                "attempt {a} missing from:\n{text}"
            );
        }
        assert!(!text.contains(&format!("attempt {}:", round + 1)), "{text}");
        assert!(
            text.contains("is not fixed"),
            "stderr tail missing:\n{text}"
        );
        assert!(
            !p.job_dir("j").join("lock").exists(),
            "lock file left behind"
        );
    }
    let st = p.status("j");
    assert_eq!(st["successful"], 2, "{st}");
    assert_eq!(st["dlq"], 2, "{st}");

    let out = p.run(&["dlq", "show", "j", "1"]);
    assert_eq!(code(&out), 2, "an item not in the DLQ: {}", stderr(&out));
}

#[test]
fn dlq_purge_removes_entries() {
    let p = Project::new();
    p.file("items.json", &numbered_items(4));
    p.file("wf.yml", &wf_failing("", "2|3", 2));
    let out = p.run(&["run", "wf.yml", "--job-id", "j"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(dlq_ids(&p, "j"), ["2", "3"]);
    let _ = take_exec(&p);

    let out = p.run(&["dlq", "purge", "j", "--item", "3"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(dlq_ids(&p, "j"), ["2"]);
    let out = p.run(&["dlq", "purge", "j", "--item", "nope"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let out = p.run(&["dlq", "purge", "j"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(dlq_list(&p, "j").is_empty());
    assert!(
        !p.job_dir("j").join("lock").exists(),
        "lock file left behind"
    );
    let st = p.status("j");
    assert_eq!(st["dlq"], 0, "{st}");
    assert_eq!(st["successful"], 2, "{st}");

    // Purged items are given up on: neither resume nor retry runs them.
    p.file("fixed", "");
    let out = p.run(&["resume", "j"]);
    assert_ne!(code(&out), 3, "{}", stderr(&out));
    let out = p.run(&["dlq", "retry", "j"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(take_exec(&p).is_empty(), "a purged item ran again");
}

/// `max_failures: 1` with one item at a time: item 2 fails, 3-5 stay pending.
fn partial_failure(p: &Project) {
    p.file("items.json", &numbered_items(5));
    p.file(
        "wf.yml",
        &wf_failing("error_policy:\n  max_failures: 1\n", "2", 1),
    );
    let out = p.run(&["run", "wf.yml", "--job-id", "j"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(take_exec(p), once_each(1..=2));
    let st = p.status("j");
    assert_eq!(st["successful"], 1, "{st}");
    assert_eq!(st["dlq"], 1, "{st}");
    assert_eq!(st["pending"], 3, "{st}");
    assert!(!p.path().join("summary.txt").exists(), "reduce ran early");
}

#[test]
fn resume_after_partial_failure() {
    let p = Project::new();
    partial_failure(&p);
    p.file("fixed", "");
    let out = p.run(&["resume", "j"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(take_exec(&p), once_each(2..=5));
    let st = p.status("j");
    assert_eq!(st["state"], "completed", "{st}");
    assert_eq!(st["successful"], 5, "{st}");
    assert!(dlq_list(&p, "j").is_empty());
    assert_eq!(p.read("summary.txt").trim(), "5/5");
    assert_no_double_success(&p, "j");
}

#[test]
fn resume_of_completed_job_says_so() {
    let p = Project::new();
    p.file("items.json", &numbered_items(3));
    p.file("wf.yml", &wf_failing("", "0", 2));
    let out = p.run(&["run", "wf.yml", "--job-id", "j"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let _ = take_exec(&p);
    std::fs::remove_file(p.path().join("summary.txt")).unwrap();

    let out = p.run(&["resume", "j"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already completed"),
        "{}",
        stderr(&out)
    );
    assert!(take_exec(&p).is_empty(), "items ran again");
    assert!(!p.path().join("summary.txt").exists(), "reduce ran again");
    assert!(
        !p.job_dir("j").join("lock").exists(),
        "lock file left behind"
    );
    assert_eq!(p.status("j")["state"], "completed");
}

#[test]
fn resume_refuses_changed_workflow_unless_forced() {
    let p = Project::new();
    partial_failure(&p);
    p.file("fixed", "");
    let wf = p.read("wf.yml");
    p.file("wf.yml", &format!("{wf}# edited\n"));

    let out = p.run(&["resume", "j"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("changed") && err.contains("--force"), "{err}");
    assert!(take_exec(&p).is_empty(), "items ran despite the refusal");
    assert_eq!(p.status("j")["pending"], 3);
    assert!(
        !p.job_dir("j").join("lock").exists(),
        "lock file left behind"
    );

    let out = p.run(&["resume", "j", "--force"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(take_exec(&p), once_each(2..=5));
    assert_eq!(p.status("j")["state"], "completed");
}

#[test]
fn pending_only_leaves_dlq_items_alone() {
    let p = Project::new();
    partial_failure(&p);
    p.file("fixed", "");
    let out = p.run(&["resume", "j", "--pending-only"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(take_exec(&p), once_each(3..=5));
    assert_eq!(dlq_ids(&p, "j"), ["2"]);
    let st = p.status("j");
    assert_eq!(st["successful"], 4, "{st}");
    assert_eq!(st["dlq"], 1, "{st}");
    assert_eq!(st["pending"], 0, "{st}");

    // A full resume then runs just the DLQ item.
    let out = p.run(&["resume", "j"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(take_exec(&p), once_each(2..=2));
    assert_eq!(p.status("j")["successful"], 5);
    assert_eq!(p.read("summary.txt").trim(), "5/5");
}

#[test]
fn resume_honours_max_parallel() {
    let p = Project::new();
    p.file("items.json", &numbered_items(9));
    // Item 1 fails first (max_parallel 1, max_failures 1), leaving 2-9 pending. On resume each
    // item waits (up to ~4 s, then fails) until 3 items have started: that needs 3 at once.
    // Each item also logs how many items are inside their running window; never above 3.
    p.file(
        "wf.yml",
        r#"name: mp
map:
  input: items.json
  max_parallel: 1
  agent_template:
    - shell: |
        if [ ${item_id} = 1 ] && [ ! -f fixed ]; then exit 7; fi
        mkdir -p run started
        touch run/${item_id} started/${item_id}
        echo $(ls run | wc -l) >> conc.log
        i=0
        while [ $(ls started | wc -l) -lt 3 ]; do i=$((i+1)); [ $i -lt 200 ] || exit 9; sleep 0.02; done
        sleep 0.05
        rm run/${item_id}
error_policy:
  max_failures: 1
"#,
    );
    let out = p.run(&["run", "wf.yml", "--job-id", "j"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(p.status("j")["pending"], 8);
    p.file("fixed", "");
    let out = p.run(&["resume", "j", "--max-parallel", "3"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let conc: Vec<usize> = p
        .read("conc.log")
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(conc.len(), 9, "{conc:?}");
    let max = conc.iter().copied().max().unwrap();
    assert!(max <= 3, "more than 3 items ran at once: {conc:?}");
    assert_eq!(p.status("j")["successful"], 9);
}
