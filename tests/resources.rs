//! `map.resources` (issue 14): limits per attempt and what each attempt used.
//!
//! The limit tests force the rlimit path (`RUNNER_LIMITS=rlimit`), which every Linux
//! machine has: an item that allocates too much, a fork bomb and a CPU spinner each fail
//! with their own class; `retry.on` tells them apart. The cgroup path is tested where
//! build.rs found that cgroups can be created here (`ignored`, saying why, elsewhere).

mod common;
#[path = "common/extra.rs"]
mod extra;

use common::*;
use extra::*;

/// A workflow whose items (`mem`, `fork`, `cpu`, `ok`) misbehave each their own way.
fn misbehaving(items: &str, resources: &str, retry: &str) -> String {
    format!(
        r#"name: limits
map:
  input: {{ command: "printf '{items}'" }}
  id: '${{item}}'
  max_parallel: 4
  resources: {resources}
{retry}  agent_template:
    - shell: |
        case ${{item}} in
          mem) tail /dev/zero ;;
          fork) echo $$ > fork.pgid; for i in $(seq 60); do sleep 30 & done; wait ;;
          cpu) while :; do :; done ;;
          ok) echo fine ;;
        esac
"#
    )
}

fn rlimit_run(p: &Project, args: &[&str]) -> std::process::Output {
    p.cmd()
        .env("RUNNER_LIMITS", "rlimit")
        .args(args)
        .output()
        .expect("run runner")
}

/// `runner -v run wf.yml --json` on the cgroup path (exit 1: an item went over a limit).
/// `None` when runner says it cannot use cgroups here and build.rs did not expect it to
/// (`usable`): the test is then skipped, saying why on stderr (it is `ignored` too, unless
/// run with `--include-ignored`).
fn cgroup_run(p: &Project, usable: bool) -> Option<std::process::Output> {
    let out = p
        .cmd()
        .env("RUNNER_LIMITS", "cgroup")
        .args(["-v", "run", "wf.yml", "--json"])
        .output()
        .expect("run runner");
    if code(&out) == 2 && stderr(&out).contains("RUNNER_LIMITS=cgroup, but") {
        assert!(
            !usable,
            "build.rs could create cgroups here, but runner cannot: {}",
            stderr(&out)
        );
        eprintln!(
            "SKIPPED: the cgroup path is not tested on this machine: {}",
            stderr(&out).trim()
        );
        return None;
    }
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("resource limits: cgroup v2"),
        "{}",
        stderr(&out)
    );
    Some(out)
}

/// `dlq list --json` as (item id, failure class) pairs, sorted.
fn dlq_classes(p: &Project, job: &str) -> Vec<(String, String)> {
    let out = run_expect(p, &["dlq", "list", job, "--json"], 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("dlq JSON");
    let mut pairs: Vec<(String, String)> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            (
                e["item_id"].as_str().unwrap_or_default().to_owned(),
                e["failure_class"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    pairs.sort();
    pairs
}

#[test]
fn each_limit_fails_its_item_with_its_own_class() {
    let p = Project::new();
    p.file(
        "wf.yml",
        &misbehaving(
            r"mem\nfork\ncpu\nok\n",
            "{ memory: 64M, processes: 20, cpu_time: 1s }",
            "",
        ),
    );
    let out = rlimit_run(&p, &["run", "wf.yml", "--json"]);
    assert_eq!(code(&out), 1, "stderr:\n{}", stderr(&out));
    let job = p.only_job();
    assert_eq!(
        dlq_classes(&p, &job),
        [
            ("cpu".into(), "cpu_limit".into()),
            ("fork".into(), "process_limit".into()),
            ("mem".into(), "memory_limit".into()),
        ]
    );
    // The fork bomb's processes are gone with it.
    let pgid: i32 = p.read("fork.pgid").trim().parse().expect("pgid");
    wait_until(
        std::time::Duration::from_secs(10),
        "the fork bomb's group to be gone",
        || !group_alive(pgid),
    );
    // The events say it too, with what the attempt used.
    let finished = events_named(&out, "item_finished");
    let cpu = finished
        .iter()
        .find(|e| e["item_id"] == "cpu")
        .expect("cpu item");
    assert_eq!(cpu["failure_class"], "cpu_limit");
    assert!(
        cpu["usage"]["cpu_ms"].as_u64().unwrap_or(0) >= 500,
        "a 1s CPU limit ends after about 1s of CPU: {cpu}"
    );
    assert!(
        cpu["error"]
            .as_str()
            .unwrap_or_default()
            .contains("CPU time limit (1s)"),
        "{cpu}"
    );
    // `dlq list --class` selects by the new classes.
    let out = run_expect(&p, &["dlq", "list", &job, "--class", "memory_limit"], 0);
    let text = stdout(&out);
    assert!(text.contains("mem") && !text.contains("fork"), "{text}");
    // The human listing names every entry's class.
    let out = run_expect(&p, &["dlq", "list", &job], 0);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    for class in ["memory_limit", "cpu_limit", "process_limit"] {
        assert!(text.contains(class), "{class}: {text}");
    }
}

fn group_alive(pgid: i32) -> bool {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .any(|stat| {
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.first().is_some_and(|s| *s != "Z") && f.get(2) == Some(&pgid.to_string().as_str())
        })
}

#[test]
fn retry_on_timeout_does_not_retry_a_memory_limit() {
    let p = Project::new();
    let retry = "  retry: { max_attempts: 3, on: [timeout], initial_delay: 0s }\n";
    p.file("wf.yml", &misbehaving(r"mem\n", "{ memory: 64M }", retry));
    let out = rlimit_run(&p, &["run", "wf.yml", "--json"]);
    assert_eq!(code(&out), 1);
    assert!(events_named(&out, "item_retrying").is_empty());
    let done = &events_named(&out, "item_finished")[0];
    assert_eq!(done["attempts"], 1, "{done}");
    assert_eq!(done["failure_class"], "memory_limit");

    // ...while `on: [memory_limit]` does.
    let p = Project::new();
    let retry = "  retry: { max_attempts: 2, on: [memory_limit], initial_delay: 0s }\n";
    p.file("wf.yml", &misbehaving(r"mem\n", "{ memory: 64M }", retry));
    let out = rlimit_run(&p, &["run", "wf.yml", "--json"]);
    let retries = events_named(&out, "item_retrying");
    assert_eq!(retries.len(), 1, "{}", stdout(&out));
    assert_eq!(retries[0]["failure_class"], "memory_limit");
    assert_eq!(events_named(&out, "item_finished")[0]["attempts"], 2);
}

#[test]
fn usage_is_recorded_everywhere() {
    let p = Project::new();
    // About 40 MB held by the shell, and some CPU time.
    p.file(
        "wf.yml",
        r#"name: usage
map:
  input: { command: "printf 'a\nb\n'" }
  max_parallel: 2
  agent_template:
    - shell: 'x=$(head -c 40000000 /dev/zero | tr "\0" a); i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done'
reduce:
  - shell: 'true'
"#,
    );
    let out = p.run(&[
        "run",
        "wf.yml",
        "--json",
        "--junit",
        "junit.xml",
        "--metrics-file",
        "m.prom",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let plausible = |rss: u64, cpu: u64| {
        assert!(rss >= 39_000, "peak RSS {rss} KiB for a 40 MB string");
        assert!(rss < 4_000_000, "peak RSS {rss} KiB");
        assert!((20..120_000).contains(&cpu), "CPU {cpu} ms");
    };
    for e in events_named(&out, "item_finished") {
        plausible(
            e["usage"]["peak_rss_kb"].as_u64().unwrap_or(0),
            e["usage"]["cpu_ms"].as_u64().unwrap_or(0),
        );
    }
    let job = p.only_job();
    let results = std::fs::read_to_string(p.job_dir(&job).join("results.jsonl")).unwrap();
    for line in results.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        plausible(
            r["peak_rss_kb"].as_u64().unwrap_or(0),
            r["cpu_ms"].as_u64().unwrap_or(0),
        );
    }
    let st = p.status(&job);
    for key in ["p50", "p95", "max"] {
        plausible(
            st["peak_rss_kb"][key].as_u64().unwrap_or(0),
            st["cpu_ms"][key].as_u64().unwrap_or(0),
        );
    }
    let human = stdout(&run_expect(&p, &["status", &job], 0));
    assert!(
        human.contains("memory:") && human.contains("CPU:"),
        "{human}"
    );
    let journal = std::fs::read_to_string(p.job_dir(&job).join("journal.log")).unwrap();
    assert!(journal.contains(r#""ran":{"at":"#), "{journal}");
    let junit = p.read("junit.xml");
    assert!(
        junit.contains(r#"<property name="peak_rss_kb""#) && junit.contains(r#"name="cpu_ms""#),
        "{junit}"
    );
    let prom = p.read("m.prom");
    assert!(prom.contains("runner_item_peak_rss_bytes_count{"), "{prom}");
    assert!(prom.contains("runner_item_cpu_seconds_sum{"), "{prom}");
}

#[test]
fn a_cpu_share_without_cgroups_is_refused_before_the_job_exists() {
    let p = Project::new();
    p.file(
        "wf.yml",
        "name: share\nmap:\n  input: { command: 'echo 1' }\n  resources: { cpu: 0.5 }\n  agent_template:\n    - shell: 'true'\n",
    );
    let out = rlimit_run(&p, &["run", "wf.yml"]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(
        err.contains("wf.yml: map.resources.cpu (a CPU share) needs cgroup v2")
            && err.contains("remove `cpu`"),
        "{err}"
    );
    assert!(p.jobs().is_empty(), "no job is left behind");
}

#[test]
fn run_v_names_the_mechanism() {
    let p = Project::new();
    p.file(
        "wf.yml",
        &misbehaving(r"ok\n", "{ memory: 1G, nice: 5 }", ""),
    );
    let out = rlimit_run(&p, &["-v", "run", "wf.yml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("info: resource limits: rlimits on each step's processes (no cgroup v2: RUNNER_LIMITS=rlimit)"),
        "{err}"
    );
}

#[test]
fn bad_limits_are_rejected_with_their_line() {
    for (resources, message) in [
        ("{ memory: 2X }", "unknown size unit"),
        ("{ memory: 10K }", "at least 1M"),
        ("{ cpu_time: 10ms }", "at least 1s"),
        ("{ processes: 0 }", "at least 1"),
        ("{ nice: 40 }", "from -20"),
        ("{ cpu: 0 }", "share in CPUs"),
        ("{ memroy: 1G }", "unknown field `memroy`"),
    ] {
        let p = Project::new();
        p.file(
            "wf.yml",
            &format!(
                "name: bad\nmap:\n  input: x.json\n  resources: {resources}\n  agent_template:\n    - shell: 'true'\n"
            ),
        );
        let out = p.run(&["validate", "wf.yml"]);
        assert_eq!(code(&out), 2, "{resources}");
        let err = stderr(&out);
        assert!(err.contains("wf.yml:4:"), "{resources}: {err}");
        assert!(err.contains(message), "{resources}: {err}");
    }
}

/// The cgroup path where this machine lets runner create cgroups (root, or a delegated
/// subtree), even without controllers: CPU time summed over the whole cgroup, so two
/// background spinners that the shell does not wait for are caught too.
#[test]
#[cfg_attr(
    not(runner_cgroups),
    ignore = "build.rs could not create a cgroup v2 group on this machine (needs root or a delegated cgroup)"
)]
fn cgroup_path_sums_cpu_time_over_the_whole_step() {
    let p = Project::new();
    p.file(
        "wf.yml",
        r#"name: cg
map:
  input: { command: "echo 1" }
  resources: { cpu_time: 1s }
  agent_template:
    - shell: '(while :; do :; done) & (while :; do :; done) & wait'
"#,
    );
    let Some(out) = cgroup_run(&p, cfg!(runner_cgroups)) else {
        return;
    };
    let done = &events_named(&out, "item_finished")[0];
    assert_eq!(done["failure_class"], "cpu_limit", "{done}");
    assert!(
        done["usage"]["cpu_ms"].as_u64().unwrap_or(0) >= 900,
        "{done}"
    );
}

/// Memory and process limits enforced by the kernel (memory.max, pids.max) where the
/// memory and pids controllers can be delegated to runner.
#[test]
#[cfg_attr(
    not(runner_cgroup_controllers),
    ignore = "no cgroup v2 with the memory and pids controllers runner can delegate here (build.rs)"
)]
fn cgroup_path_enforces_memory_and_processes() {
    let p = Project::new();
    p.file(
        "wf.yml",
        &misbehaving(r"mem\nfork\nok\n", "{ memory: 64M, processes: 20 }", ""),
    );
    if cgroup_run(&p, cfg!(runner_cgroup_controllers)).is_none() {
        return;
    }
    assert_eq!(
        dlq_classes(&p, &p.only_job()),
        [
            ("fork".into(), "process_limit".into()),
            ("mem".into(), "memory_limit".into()),
        ]
    );
}
