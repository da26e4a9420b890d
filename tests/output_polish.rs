//! Output a person reads (issue 10, items 5-7): one warning style that honours `--color`,
//! `job_started` first in NDJSON, readable rates, errors said once, failed setups named,
//! metrics without float noise, `-q` really quiet.

mod common;

use common::*;

/// A finished job whose checkpoint is then damaged (so reading it warns).
fn job_with_bad_checkpoint(p: &Project) {
    p.file(
        "wf.yml",
        "name: cp\nmap:\n  input: { command: 'seq 3' }\n  agent_template:\n    - shell: 'true'\n",
    );
    let out = p.run(&["run", "wf.yml", "--job-id", "cp"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    std::fs::write(p.job_dir("cp").join("checkpoint.bin"), "garbage\n").unwrap();
}

#[test]
fn warnings_have_one_style_and_colour_only_when_allowed() {
    let p = Project::new();
    job_with_bad_checkpoint(&p);
    let out = p.run(&["status", "cp", "--color", "never"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(err.contains("warning: ignoring the checkpoint"), "{err}");
    assert!(
        !err.contains('\x1b'),
        "no colour codes into a pipe: {err:?}"
    );
    assert!(!err.contains("WARN"), "no logging-layer style: {err}");
    assert!(!err.contains("runner::"), "no module paths: {err}");
    let out = p.run(&["status", "cp", "--color", "always"]);
    assert!(
        stderr(&out).contains("\x1b[33mwarning:\x1b[0m ignoring the checkpoint"),
        "{:?}",
        stderr(&out)
    );
    // The default (auto) into a pipe is plain.
    let out = p.run(&["status", "cp"]);
    assert!(!stderr(&out).contains('\x1b'), "{:?}", stderr(&out));
}

#[test]
fn job_started_is_the_first_ndjson_event_even_with_warnings() {
    let p = Project::new();
    p.file("items.json", "[1, 2, 3]");
    p.file(
        "wf.yml",
        "name: js\nmap:\n  input: items.json\n  agent_template:\n    - shell: 'test -f go'\n",
    );
    let out = p.run(&["run", "wf.yml", "--job-id", "js"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    // The workflow file is gone: resume warns that it runs the saved copy.
    std::fs::remove_file(p.path().join("wf.yml")).unwrap();
    p.file("go", "");
    let out = p.run(&["resume", "js", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON"))
        .collect();
    assert_eq!(events[0]["event"], "job_started", "{events:?}");
    let warning = events
        .iter()
        .position(|e| e["event"] == "warning")
        .expect("the warning is an event too");
    assert!(warning > 0);
}

#[test]
fn a_slow_map_shows_seconds_per_item_not_zero_items_per_second() {
    let p = Project::new();
    p.file(
        "wf.yml",
        "name: slow\nmap:\n  input: { command: 'echo 1' }\n  agent_template:\n    - shell: 'sleep 2.2'\n",
    );
    let out = p.run(&["run", "wf.yml"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(!err.contains(" 0 items/s"), "{err}");
    assert!(err.contains(" s/item)"), "{err}");
}

#[test]
fn a_missing_workflow_file_is_reported_once() {
    let p = Project::new();
    let out = p.run(&["run", "nope.yml"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(err.contains("nope.yml"), "{err}");
}

#[test]
fn validate_names_the_location_once() {
    let p = Project::new();
    p.file(
        "bad.yml",
        "name: x\nmap:\n  input: items.json\n  bogus: 1\n  agent_template:\n    - shell: 'true'\n",
    );
    let out = p.run(&["validate", "bad.yml"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{err}");
    assert!(err.contains("bad.yml:4:3: unknown field `bogus`"), "{err}");
    assert!(!err.contains("line 4 column 3"), "{err}");
}

#[test]
fn status_says_why_a_job_is_unreadable() {
    let p = Project::new();
    job_with_bad_checkpoint(&p);
    std::fs::write(p.job_dir("cp").join("job.json"), "{not json").unwrap();
    let out = p.run(&["status"]);
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!text.contains("null"), "{text}");
    assert!(text.contains("unreadable"), "{text}");
    assert!(text.contains("cannot read this job:"), "{text}");
    assert!(
        text.contains("job.json"),
        "the reason names the file: {text}"
    );
}

#[test]
fn a_failed_setup_says_which_step_failed() {
    let p = Project::new();
    p.file(
        "s.yml",
        "name: s\nsetup:\n  - shell: |\n      echo preparing\n      echo 'disk full' >&2\n      exit 3\nmap:\n  input: items.json\n  agent_template:\n    - shell: 'true'\n",
    );
    let out = p.run(&["run", "s.yml", "--job-id", "s"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert!(
        err.contains(
            "job s failed: setup step 1 (`echo preparing ...`) exited with code 3: disk full"
        ),
        "{err}"
    );
    assert!(!err.contains("0/0 succeeded"), "{err}");
    assert!(
        !err.contains("echo preparing\necho"),
        "multi-line steps are shown by their first line: {err}"
    );
}

#[test]
fn metrics_have_no_float_noise() {
    let p = Project::new();
    p.file(
        "wf.yml",
        "name: m\nmap:\n  input: { command: 'seq 12' }\n  max_parallel: 4\n  agent_template:\n    - shell: 'sleep 0.0$((${item} % 7))'\n",
    );
    let out = p.run(&["run", "wf.yml", "--metrics-file", "m.prom"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = p.read("m.prom");
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        let (whole, frac) = value.split_once('.').unwrap_or((value, ""));
        assert!(
            whole.chars().all(|c| c.is_ascii_digit()) && frac.len() <= 3,
            "{line}"
        );
    }
}

#[test]
fn quiet_keeps_setup_and_reduce_output_off_stderr() {
    let p = Project::new();
    p.file(
        "wf.yml",
        "name: q\nsetup:\n  - shell: 'echo SETUP-OUT'\nmap:\n  input: { command: 'seq 2' }\n  agent_template:\n    - shell: 'true'\nreduce:\n  - shell: 'echo REDUCE-OUT'\n",
    );
    let out = p.run(&["-q", "run", "wf.yml", "--job-id", "q"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(!err.contains("REDUCE-OUT"), "{err}");
    assert!(!err.contains("SETUP-OUT"), "{err}");
    assert!(err.contains("job q"), "-q keeps the job id line: {err}");
    // The output is still in the job's logs.
    let logs = p.run(&["logs", "q"]);
    assert!(stdout(&logs).contains("REDUCE-OUT"), "{}", stdout(&logs));
}
