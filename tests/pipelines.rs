//! Pipelines (issue 13): a DAG of jobs, each an ordinary job `<pipeline-id>.<node>`; the
//! pipeline is a job too (status, resume, pause/stop); validation of needs and cycles; crash
//! safety under kill -9.

mod common;
#[path = "common/crash.rs"]
mod crash;
#[path = "common/extra.rs"]
mod extra;

use std::time::{Duration, Instant};

use common::*;
use crash::*;
use extra::{events, run_expect};

/// A workflow over `n` items that appends `<tag>-<id>` to `exec.log`; the item whose id
/// is `fail_id` fails unless the file `fixed` exists.
fn workflow(p: &Project, file: &str, tag: &str, n: usize, fail_id: Option<usize>) {
    p.file(&format!("{tag}.items.json"), &numbered_items(n));
    let check = fail_id
        .map(|f| format!("; [ ${{item_id}} != {f} ] || [ -f fixed ]"))
        .unwrap_or_default();
    p.file(
        file,
        &format!(
            "name: {tag}\nmap:\n  input: {tag}.items.json\n  max_parallel: 2\n  agent_template:\n    - shell: \"echo {tag}-${{item_id}} >> exec.log{check}\"\n"
        ),
    );
}

fn exec_count(p: &Project, prefix: &str) -> usize {
    p.read("exec.log")
        .lines()
        .filter(|l| l.starts_with(&format!("{prefix}-")))
        .count()
}

#[test]
fn a_failed_job_skips_its_dependents_and_resume_runs_what_is_left_once() {
    let p = Project::new();
    workflow(&p, "import.yml", "import", 3, None);
    workflow(&p, "scoring.yml", "scoring", 3, Some(2));
    workflow(&p, "matching.yml", "matching", 2, None);
    workflow(&p, "report.yml", "report", 1, None);
    p.file(
        "nightly.pipeline.yml",
        "name: nightly\nmax_parallel_jobs: 2\njobs:\n  import: { workflow: import.yml }\n  scoring: { workflow: scoring.yml, needs: [import], priority: high }\n  matching: { workflow: matching.yml, needs: [scoring] }\n  report: { workflow: report.yml, needs: [scoring, matching], when: always }\n",
    );
    let out = run_expect(
        &p,
        &["run", "nightly.pipeline.yml", "--job-id", "n1", "--json"],
        1,
    );
    let evs = events(&out);
    assert_eq!(evs[0]["event"], "pipeline_started", "{evs:?}");
    let skipped: Vec<_> = evs
        .iter()
        .filter(|e| e["event"] == "node_skipped")
        .map(|e| e["node"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(skipped, ["matching"]);
    let last = evs.last().unwrap();
    assert_eq!(last["event"], "pipeline_finished");
    assert_eq!(last["state"], "failed");
    assert_eq!(last["exit_code"], 1);

    // Each node is an ordinary job; the pipeline's status lists them.
    assert_eq!(p.status("n1.scoring")["dlq"], 1);
    let st = p.status("n1");
    assert_eq!(st["kind"], "pipeline");
    assert_eq!(st["state"], "failed");
    let nodes: Vec<(String, String)> = st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap().to_owned(),
                n["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        nodes,
        [
            ("import".into(), "completed".into()),
            ("scoring".into(), "failed".into()),
            ("matching".into(), "skipped".into()),
            ("report".into(), "completed".into()),
        ]
    );
    assert_eq!(st["nodes"][1]["successful"], 2);
    assert_eq!(st["nodes"][1]["total"], 3);
    let table = stdout(&p.run(&["status"]));
    assert!(table.contains("nightly (pipeline)"), "{table}");

    // Resume: the failed node resumes (only its failed item), the skipped one runs, the
    // completed ones do not run again.
    p.file("fixed", "");
    let before = (exec_count(&p, "import"), exec_count(&p, "report"));
    run_expect(&p, &["resume", "n1"], 0);
    assert_eq!((exec_count(&p, "import"), exec_count(&p, "report")), before);
    assert_eq!(
        exec_count(&p, "scoring"),
        4,
        "3 runs + the failed item again"
    );
    assert_eq!(exec_count(&p, "matching"), 2);
    let st = p.status("n1");
    assert_eq!(st["state"], "completed", "{st}");
    assert_eq!(st["successful"], 4);
    let again = p.run(&["resume", "n1"]);
    assert_eq!(code(&again), 0);
    assert!(
        stderr(&again).contains("already completed"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn ready_jobs_start_in_priority_order() {
    let p = Project::new();
    for t in ["a", "b", "c"] {
        workflow(&p, &format!("{t}.yml"), t, 1, None);
    }
    p.file(
        "p.yml",
        "name: prio\nmax_parallel_jobs: 1\njobs:\n  a: { workflow: a.yml, priority: low }\n  b: { workflow: b.yml }\n  c: { workflow: c.yml, priority: critical }\n",
    );
    let out = run_expect(&p, &["run", "p.yml", "--json"], 0);
    let started: Vec<String> = events(&out)
        .iter()
        .filter(|e| e["event"] == "node_started")
        .map(|e| e["node"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(started, ["c", "b", "a"]);
}

#[test]
fn validate_rejects_cycles_naming_them_and_unknown_needs() {
    let p = Project::new();
    workflow(&p, "w.yml", "w", 1, None);
    p.file(
        "cycle.yml",
        "name: c\njobs:\n  import: { workflow: w.yml, needs: [scoring] }\n  scoring: { workflow: w.yml, needs: [import] }\n",
    );
    let out = run_expect(&p, &["validate", "cycle.yml"], 2);
    let err = stderr(&out);
    assert!(err.contains("cycle.yml:3:"), "{err}");
    assert!(err.contains("import -> scoring -> import"), "{err}");

    p.file(
        "unknown.yml",
        "name: u\njobs:\n  import: { workflow: w.yml }\n  scoring: { workflow: w.yml, needs: [imports] }\n",
    );
    let err = stderr(&run_expect(&p, &["validate", "unknown.yml"], 2));
    assert!(err.contains("unknown.yml:4:"), "{err}");
    assert!(err.contains("`imports`, which is not a job"), "{err}");

    // A referenced workflow is validated too, and named with its own location.
    p.file(
        "bad.yml",
        "name: bad\nmap:\n  input: x.json\n  agent_template:\n    - shell: echo\n  bogus: 1\n",
    );
    p.file("refs.yml", "name: r\njobs:\n  a: { workflow: bad.yml }\n");
    let err = stderr(&run_expect(&p, &["validate", "refs.yml"], 2));
    assert!(
        err.contains("refs.yml:3:") && err.contains("bad.yml:6:"),
        "{err}"
    );
    // Nothing ran, no job was created.
    run_expect(&p, &["run", "cycle.yml"], 2);
    assert!(p.jobs().is_empty());

    p.file(
        "ok.yml",
        "name: ok\njobs:\n  a: { workflow: w.yml }\n  b: { workflow: w.yml, needs: [a] }\n",
    );
    let err = stderr(&run_expect(&p, &["validate", "ok.yml"], 0));
    assert!(err.contains("2 job(s)"), "{err}");
}

#[test]
fn stop_reaches_the_running_jobs_and_resume_finishes() {
    let p = Project::new();
    p.file("items.json", &numbered_items(4));
    p.file(
        "slow.yml",
        "name: slow\nmap:\n  input: items.json\n  max_parallel: 1\n  agent_template:\n    - shell: \"echo ${item_id} >> started.log; while [ ! -f go ]; do sleep 0.05; done\"\n",
    );
    workflow(&p, "after.yml", "after", 1, None);
    p.file(
        "p.yml",
        "name: s\njobs:\n  slow: { workflow: slow.yml }\n  after: { workflow: after.yml, needs: [slow] }\n",
    );
    let mut bg = spawn(&p, &["run", "p.yml", "--job-id", "s1"]);
    wait_until("the first item", Duration::from_secs(20), || {
        !p.read("started.log").is_empty()
    });
    // Pause reaches the running job.
    run_expect(&p, &["pause", "s1", "--reason", "maintenance"], 0);
    assert_eq!(p.status("s1")["state"], "paused");
    wait_until("the job to pause", Duration::from_secs(20), || {
        p.status("s1.slow")["state"] == "paused"
    });
    run_expect(&p, &["resume", "s1"], 0);
    wait_until("the job to go on", Duration::from_secs(20), || {
        p.status("s1.slow")["state"] == "running"
    });
    run_expect(&p, &["stop", "s1", "--grace", "100ms"], 0);
    assert_eq!(
        bg.wait_code(Duration::from_secs(30)),
        Some(143),
        "{}",
        bg.stderr()
    );
    let st = p.status("s1");
    assert_eq!(st["state"], "interrupted", "{st}");
    assert_eq!(st["nodes"][0]["state"], "interrupted", "{st}");
    p.file("go", "");
    run_expect(&p, &["resume", "s1"], 0);
    assert_eq!(p.status("s1")["state"], "completed");
    assert_eq!(p.status("s1.slow")["successful"], 4);
}

#[test]
fn kill9_of_the_pipeline_then_resume_records_every_item_once() {
    const NODES: [&str; 3] = ["a", "b", "c"];
    const ITEMS: usize = 40;
    let seed = std::env::var("RUNNER_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e11);
    eprintln!("crash seed: {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let p = Project::new();
    p.file("items.json", &numbered_items(ITEMS));
    for n in NODES {
        p.file(
            &format!("{n}.yml"),
            &format!(
                "name: {n}\nmap:\n  input: items.json\n  max_parallel: 4\n  agent_template:\n    - shell: \"sleep 0.0$((${{item_id}} % 5)); echo {n}-${{item_id}} >> exec.log\"\n"
            ),
        );
    }
    p.file(
        "p.yml",
        "name: k\nmax_parallel_jobs: 2\njobs:\n  a: { workflow: a.yml }\n  b: { workflow: b.yml }\n  c: { workflow: c.yml, needs: [a, b] }\n",
    );
    let journal = p.job_dir("k1").join("pipeline.jsonl");
    let t0 = Instant::now();
    for k in 0..5 {
        let mut bg = if k == 0 {
            spawn(&p, &["run", "p.yml", "--job-id", "k1"])
        } else {
            spawn(&p, &["resume", "k1"])
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::fs::read_to_string(&journal)
            .unwrap_or_default()
            .contains("node_started")
            && bg.child.try_wait().unwrap().is_none()
        {
            assert!(
                Instant::now() < deadline,
                "no node started: {}",
                bg.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.u64(20..400)));
        bg.kill9();
        // The nodes die with their pipeline: their locks are free again.
        for n in NODES {
            let id = format!("k1.{n}");
            if p.job_dir(&id).join("job.json").exists() {
                wait_until("the node's lock", Duration::from_secs(10), || {
                    p.status(&id)["state"] != "running"
                });
            }
        }
    }
    let out = p.run(&["resume", "k1"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let st = p.status("k1");
    assert_eq!(st["state"], "completed", "{st}");
    for n in NODES {
        let id = format!("k1.{n}");
        let recs = journal_records(&p.job_dir(&id).join("journal.log"));
        let ok = succeeded_records(&recs);
        assert_eq!(ok.len(), ITEMS, "node {n}: items without a success record");
        assert!(
            ok.values().all(|c| *c == 1),
            "node {n}: items recorded successful more than once: {ok:?}"
        );
        let ran = line_counts(&p.read("exec.log"));
        for i in 1..=ITEMS {
            assert!(
                ran.contains_key(&format!("{n}-{i}")),
                "node {n} item {i} never ran"
            );
        }
    }
    // `c` needs a and b: none of its items ran before both completed.
    let log = p.read("exec.log");
    let log: Vec<&str> = log.lines().collect();
    let first_c = log.iter().position(|l| l.starts_with("c-")).unwrap();
    let last_ab = log
        .iter()
        .rposition(|l| l.starts_with("a-") || l.starts_with("b-"))
        .unwrap();
    assert!(first_c > last_ab, "c started before its needs ended");
    eprintln!("pipeline crash test: {:?}", t0.elapsed());
}

#[test]
fn the_shipped_pipeline_and_schedules_examples_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/nightly");
    let p = Project::new();
    let out = p.run(&[
        "validate",
        dir.join("nightly.pipeline.yml").to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = p.run(&[
        "schedule",
        "list",
        dir.join("schedules.yml").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let l: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(l.as_array().unwrap().len(), 3);
}
