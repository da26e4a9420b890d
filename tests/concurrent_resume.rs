//! SPEC 5 "Concurrency": 8 simultaneous `resume` of one job: exactly one runs, seven exit 3.

mod common;
#[path = "common/crash.rs"]
mod crash;

use std::time::{Duration, Instant};

use common::*;
use crash::*;

#[test]
fn eight_simultaneous_resumes_one_runs_seven_exit_3() {
    let p = Project::new();
    p.file("items.json", &numbered_items(6));
    // Every item waits for `go`, so whichever resume wins holds the lock until we say so.
    p.file(
        "wf.yml",
        r#"name: conc
map:
  input: items.json
  max_parallel: 2
  agent_template:
    - shell: |
        echo ${item_id} >> exec.log
        touch started.${item_id}
        while [ ! -f go ]; do sleep 0.05; done
reduce:
  - shell: "echo ${map.successful}/${map.total} > summary.txt"
"#,
    );
    let started =
        |a: usize, b: usize| (a..=b).all(|i| p.path().join(format!("started.{i}")).exists());

    // Interrupt a run while items 1-2 are in flight.
    let mut run = spawn(&p, &["run", "wf.yml", "--job-id", "j"]);
    wait_until("items 1-2 to start", Duration::from_secs(8), || {
        started(1, 2)
    });
    run.kill9();
    wait_until("the lock to be released", Duration::from_secs(5), || {
        p.status("j")["state"] != "running"
    });
    assert_eq!(p.status("j")["pending"], 6);
    std::fs::remove_file(p.path().join("exec.log")).unwrap();
    for i in 1..=2 {
        std::fs::remove_file(p.path().join(format!("started.{i}"))).unwrap();
    }

    let t0 = Instant::now();
    let mut all: Vec<Bg> = (0..8).map(|_| spawn(&p, &["resume", "j"])).collect();

    // Seven exit 3 at once; one keeps running (its items wait for `go`).
    let deadline = t0 + Duration::from_secs(5);
    let mut codes: Vec<Option<i32>> = vec![None; 8];
    while codes.iter().filter(|c| c.is_some()).count() < 7 && Instant::now() < deadline {
        for (c, bg) in codes.iter_mut().zip(all.iter_mut()) {
            if c.is_none() {
                *c = bg.child.try_wait().unwrap().map(|s| s.code().unwrap_or(-1));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let losers_done = t0.elapsed();
    let running: Vec<usize> = (0..8).filter(|&i| codes[i].is_none()).collect();
    assert_eq!(
        running.len(),
        1,
        "exactly one resume must keep running, exit codes: {codes:?}"
    );
    let winner = running[0];
    for (i, c) in codes.iter().enumerate() {
        if i == winner {
            continue;
        }
        assert_eq!(*c, Some(3), "resume {i}: {}", all[i].stderr());
        let err = all[i].stderr();
        assert!(
            err.contains(&format!("pid {}", all[winner].pid())),
            "resume {i} does not name the holder (pid {}): {err}",
            all[winner].pid()
        );
    }
    wait_until("the winner to start items", Duration::from_secs(8), || {
        started(1, 2)
    });
    assert_eq!(p.status("j")["state"], "running");

    p.file("go", "");
    let code = all[winner].wait_code(Duration::from_secs(10));
    assert_eq!(code, Some(0), "the winner: {}", all[winner].stderr());
    assert_eq!(line_counts(&p.read("exec.log")), once_each(1..=6));
    let st = p.status("j");
    assert_eq!(st["state"], "completed", "{st}");
    assert_eq!(st["successful"], 6, "{st}");
    assert_eq!(p.read("summary.txt").trim(), "6/6");
    assert!(
        !p.job_dir("j").join("lock").exists(),
        "lock file left behind"
    );
    eprintln!("7 losers exited 3 within {losers_done:?}");
}
