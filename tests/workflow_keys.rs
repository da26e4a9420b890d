//! Every key of the workflow format (SPEC 2), Prodigy aliases included, driven through the
//! built binary.
mod common;
#[path = "common/extra.rs"]
mod extra;
use common::*;
use extra::*;

const ABC: &str = r#"[{"id":"a","n":1},{"id":"b","n":2},{"id":"c","n":3}]"#;

#[test]
fn mode_mapreduce_and_steps_alias_run() {
    let p = Project::new();
    p.file("items.json", ABC);
    p.file(
        "wf.yml",
        "name: m\nmode: mapreduce\nmap:\n  input: items.json\n  steps:\n    - shell: \"echo ${item.n} >> seen.txt\"\n",
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(sorted_lines(&p, "seen.txt"), ["1", "2", "3"]);
}

#[test]
fn other_mode_and_both_template_keys_are_rejected() {
    let p = Project::new();
    p.file("items.json", ABC);
    p.file(
        "wf.yml",
        "name: m\nmode: standard\nmap:\n  input: items.json\n  steps:\n    - shell: \"true\"\n",
    );
    let out = run_expect(&p, &["validate", "wf.yml"], 2);
    assert!(stderr(&out).contains("mode"), "{}", stderr(&out));
    p.file(
        "wf2.yml",
        "name: m\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"true\"\n  steps:\n    - shell: \"true\"\n",
    );
    let out = run_expect(&p, &["validate", "wf2.yml"], 2);
    assert!(stderr(&out).contains("steps"), "{}", stderr(&out));
}

#[test]
fn commands_wrapper_form_for_setup_map_and_reduce() {
    let p = Project::new();
    p.file(
        "wf.yml",
        r#"name: cmds
setup:
  commands:
    - shell: "echo '[{\"id\":\"x\"},{\"id\":\"y\"}]' > items.json"
    - shell: "echo setup2 > setup.txt"
map:
  input: items.json
  agent_template:
    commands:
      - shell: "echo ${item_id} >> seen.txt"
      - shell: "echo ${item_id} >> seen2.txt"
reduce:
  commands:
    - shell: "echo ${map.successful} > reduce.txt"
"#,
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(p.read("setup.txt").trim(), "setup2");
    assert_eq!(sorted_lines(&p, "seen.txt"), ["x", "y"]);
    assert_eq!(sorted_lines(&p, "seen2.txt"), ["x", "y"]);
    assert_eq!(p.read("reduce.txt").trim(), "2");
}

fn timeout_alias(key_line: &str) {
    let p = Project::new();
    p.file(
        "wf.yml",
        &format!(
            "name: to\nmap:\n  input: {{command: \"echo x\"}}\n  {key_line}\n  agent_template:\n    - shell: \"sleep 20\"\n"
        ),
    );
    let start = std::time::Instant::now();
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 1);
    assert!(
        start.elapsed().as_secs() < 10,
        "the timeout was not enforced"
    );
    let fin = events_named(&out, "item_finished");
    assert_eq!(fin.len(), 1);
    assert_eq!(fin[0]["status"], "dlq");
    assert!(
        fin[0]["error"].as_str().unwrap_or("").contains("timed out"),
        "{:?}",
        fin[0]
    );
}

#[test]
fn agent_timeout_secs_alias_times_out() {
    timeout_alias("agent_timeout_secs: 1");
}

#[test]
fn timeout_per_agent_alias_times_out() {
    timeout_alias("timeout_per_agent: \"1s\"");
}

#[test]
fn retry_on_failure_alias_gives_extra_attempts() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        "name: r\nmap:\n  input: items.json\n  retry_on_failure: 2\n  agent_template:\n    - shell: \"echo try >> tries.txt; exit 7\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 1);
    assert_eq!(lines(&p, "tries.txt").len(), 3, "1 attempt + 2 retries");
    let fin = events_named(&out, "item_finished");
    assert_eq!(fin[0]["attempts"], 3);
    assert_eq!(fin[0]["exit_code"], 7);
}

fn thirty_items_policy(policy: &str) -> (Project, serde_json::Value, i32) {
    let p = Project::new();
    p.file(
        "wf.yml",
        &format!(
            "name: pol\n{policy}\nmap:\n  input: {{command: \"seq 1 30\"}}\n  max_parallel: 1\n  agent_template:\n    - shell: \"test ${{item}} -gt 20\"\n"
        ),
    );
    let out = p.run(&["run", "wf.yml", "-q"]);
    let c = code(&out);
    let st = p.status(&p.only_job());
    (p, st, c)
}

#[test]
fn top_level_on_item_failure_skip_keeps_failures_out_of_dlq() {
    let (_p, st, c) = thirty_items_policy("on_item_failure: skip");
    assert_eq!(c, 1);
    assert_eq!(st["successful"], 10);
    assert_eq!(st["failed"], 20);
    assert_eq!(st["dlq"], 0);
    assert_eq!(st["pending"], 0);
}

#[test]
fn top_level_on_item_failure_stop_stops_dispatching() {
    let (_p, st, c) = thirty_items_policy("on_item_failure: stop");
    assert_eq!(c, 1);
    assert_eq!(st["failed"], 1);
    assert_eq!(st["dlq"], 1);
    assert_eq!(st["pending"], 29);
    assert_eq!(st["state"], "failed");
}

#[test]
fn top_level_continue_on_failure_false_means_stop() {
    let (_p, st, c) = thirty_items_policy("continue_on_failure: false");
    assert_eq!(c, 1);
    assert_eq!(st["failed"], 1);
    assert_eq!(st["pending"], 29);
}

#[test]
fn top_level_max_failures_stops_after_n() {
    let (_p, st, c) = thirty_items_policy("max_failures: 3");
    assert_eq!(c, 1);
    assert_eq!(st["failed"], 3);
    assert_eq!(st["dlq"], 3);
    assert_eq!(st["pending"], 27);
}

#[test]
fn top_level_failure_threshold_stops_after_ten_finished() {
    let (_p, st, c) = thirty_items_policy("failure_threshold: 0.5");
    assert_eq!(c, 1);
    assert_eq!(st["failed"], 10, "{st}");
    assert_eq!(st["pending"], 20, "{st}");
}

#[test]
fn error_policy_block_dlq_skip_stop_and_limits() {
    let (_p, st, _) = thirty_items_policy("error_policy:\n  on_item_failure: dlq");
    assert_eq!(st["dlq"], 20);
    assert_eq!(st["successful"], 10);
    let (_p, st, _) = thirty_items_policy("error_policy:\n  on_item_failure: skip");
    assert_eq!(st["dlq"], 0);
    assert_eq!(st["failed"], 20);
    let (_p, st, _) = thirty_items_policy("error_policy:\n  on_item_failure: stop");
    assert_eq!(st["failed"], 1);
    assert_eq!(st["pending"], 29);
    let (_p, st, _) = thirty_items_policy("error_policy:\n  max_failures: 2");
    assert_eq!(st["failed"], 2);
    assert_eq!(st["pending"], 28);
    let (_p, st, _) = thirty_items_policy("error_policy:\n  failure_threshold: 0.5");
    assert_eq!(st["failed"], 10);
    let p = Project::new();
    p.file(
        "wf.yml",
        "name: pol\nerror_policy:\n  on_item_failure: explode\nmap:\n  input: x.json\n  agent_template:\n    - shell: \"true\"\n",
    );
    let out = run_expect(&p, &["validate", "wf.yml"], 2);
    assert!(stderr(&out).contains("explode"), "{}", stderr(&out));
}

#[test]
fn env_step_env_and_working_dir() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    std::fs::create_dir_all(p.path().join("sub")).unwrap();
    p.file(
        "wf.yml",
        r#"name: envs
env:
  GREETING: hello
  DERIVED: "${env.GREETING}-world"
map:
  input: items.json
  agent_template:
    - shell: "echo $GREETING $DERIVED $LOCAL > env.txt; pwd > pwd-default.txt"
      env:
        LOCAL: step-only
    - shell: "pwd > pwd.txt; echo ${LOCAL:-unset} > local-after.txt"
      working_dir: sub
"#,
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(p.read("env.txt").trim(), "hello hello-world step-only");
    let root = std::fs::canonicalize(p.path()).unwrap();
    let pwd_default = std::fs::canonicalize(p.read("pwd-default.txt").trim()).unwrap();
    assert_eq!(
        pwd_default, root,
        "steps run in the workflow file's directory"
    );
    let pwd = std::fs::canonicalize(p.read("sub/pwd.txt").trim()).unwrap();
    assert_eq!(pwd, root.join("sub"));
    assert_eq!(
        p.read("sub/local-after.txt").trim(),
        "unset",
        "step env is per step"
    );
}

#[test]
fn json_path_selects_nested_items() {
    let p = Project::new();
    p.file(
        "data.json",
        r#"{"meta":{"n":2},"items":[{"id":"p","v":1},{"id":"q","v":2}]}"#,
    );
    p.file(
        "wf.yml",
        "name: jp\nmap:\n  input: data.json\n  json_path: \"$.items[*]\"\n  agent_template:\n    - shell: \"echo ${item_id}=${item.v} >> seen.txt\"\n",
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(sorted_lines(&p, "seen.txt"), ["p=1", "q=2"]);
}

fn selected(p: &Project, map_keys: &str) -> Vec<String> {
    p.file(
        "items.json",
        r#"[{"id":"a","size":50,"kind":"png","pri":2,"g":"x"},
            {"id":"b","size":150,"kind":"png","pri":null,"g":"y"},
            {"id":"c","size":250,"kind":"jpg","pri":5,"g":"x"},
            {"id":"d","size":350,"kind":"png","pri":1,"g":"y"},
            {"id":"e","size":450,"kind":"gif","g":"x"}]"#,
    );
    p.file(
        "wf.yml",
        &format!(
            "name: sel\nmap:\n  input: items.json\n{map_keys}  max_parallel: 1\n  agent_template:\n    - shell: \"echo ${{item_id}} >> order.txt\"\n"
        ),
    );
    let _ = std::fs::remove_file(p.path().join("order.txt"));
    let _ = std::fs::remove_dir_all(p.state_dir());
    run_expect(p, &["run", "wf.yml"], 0);
    lines(p, "order.txt")
}

#[test]
fn filter_jq_and_prodigy_operators() {
    let p = Project::new();
    assert_eq!(
        selected(&p, "  filter: 'item.size > 100 and item.kind == \"png\"'\n"),
        ["b", "d"]
    );
    assert_eq!(
        selected(&p, "  filter: 'item.size > 100 && item.kind == \"png\"'\n"),
        ["b", "d"]
    );
    assert_eq!(
        selected(
            &p,
            "  filter: 'item.kind == \"jpg\" || item.kind == \"gif\"'\n"
        ),
        ["c", "e"]
    );
    assert_eq!(
        selected(&p, "  filter: '!(item.kind == \"png\")'\n"),
        ["c", "e"]
    );
    assert_eq!(selected(&p, "  filter: '.size < 200'\n"), ["a", "b"]);
    assert_eq!(selected(&p, "  filter: '$item.size >= 450'\n"), ["e"]);
}

#[test]
fn sort_by_desc_asc_nulls_last_and_multi_key() {
    let p = Project::new();
    assert_eq!(
        selected(&p, "  sort_by: \"item.pri DESC\"\n"),
        ["c", "a", "d", "b", "e"]
    );
    assert_eq!(
        selected(&p, "  sort_by: \"item.pri ASC\"\n"),
        ["d", "a", "c", "b", "e"]
    );
    assert_eq!(
        selected(&p, "  sort_by: \"item.g ASC, item.size DESC\"\n"),
        ["e", "c", "a", "d", "b"]
    );
}

#[test]
fn distinct_offset_and_max_items() {
    let p = Project::new();
    // distinct keeps the first item per group
    assert_eq!(selected(&p, "  distinct: \"item.g\"\n"), ["a", "b"]);
    assert_eq!(selected(&p, "  offset: 1\n  max_items: 2\n"), ["b", "c"]);
    assert_eq!(
        selected(
            &p,
            "  sort_by: \"item.size DESC\"\n  offset: 1\n  max_items: 3\n"
        ),
        ["d", "c", "b"]
    );
}

#[test]
fn id_template_names_items() {
    let p = Project::new();
    p.file(
        "items.json",
        r#"[{"path":"img/one.png"},{"path":"img/two.png"}]"#,
    );
    p.file(
        "wf.yml",
        "name: ids\nmap:\n  input: items.json\n  id: \"file-${item.path}\"\n  agent_template:\n    - shell: \"echo ${item_id} >> ids.txt\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 0);
    assert_eq!(
        sorted_lines(&p, "ids.txt"),
        ["file-img/one.png", "file-img/two.png"]
    );
    let mut ids: Vec<String> = events_named(&out, "item_finished")
        .iter()
        .map(|e| e["item_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["file-img/one.png", "file-img/two.png"]);
}

#[test]
fn max_parallel_number_and_env_template() {
    let p = Project::new();
    p.file("items.json", ABC);
    p.file(
        "wf.yml",
        "name: mp\nenv:\n  N: \"3\"\nmap:\n  input: items.json\n  max_parallel: \"${env.N}\"\n  agent_template:\n    - shell: \"true\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 0);
    let ms = events_named(&out, "map_started");
    assert_eq!(ms[0]["max_parallel"], 3, "{ms:?}");
    let out = run_expect(&p, &["run", "wf.yml", "--json", "--set", "N=1"], 0);
    assert_eq!(events_named(&out, "map_started")[0]["max_parallel"], 1);
    p.file(
        "wf2.yml",
        "name: mp\nmap:\n  input: items.json\n  max_parallel: 2\n  agent_template:\n    - shell: \"true\"\n",
    );
    let out = run_expect(&p, &["run", "wf2.yml", "--json"], 0);
    assert_eq!(events_named(&out, "map_started")[0]["max_parallel"], 2);
    p.file(
        "wf3.yml",
        "name: mp\nmap:\n  input: items.json\n  max_parallel: 0\n  agent_template:\n    - shell: \"true\"\n",
    );
    run_expect(&p, &["validate", "wf3.yml"], 2);
}

#[test]
fn capture_and_capture_format_json() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a","n":4}]"#);
    p.file(
        "wf.yml",
        r#"name: cap
setup:
  - shell: "echo from-setup"
    capture: greeting
map:
  input: items.json
  agent_template:
    - shell: "expr ${item.n} \\* 2"
      capture: doubled
    - shell: "echo '{\"k\":{\"v\":\"deep\"}}'"
      capture: obj
      capture_format: json
    - shell: "echo ${greeting} ${doubled} ${obj.k.v} > out.txt"
reduce:
  - shell: "cp ${map.results_file} results.jsonl"
"#,
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(p.read("out.txt").trim(), "from-setup 8 deep");
    let line: serde_json::Value = serde_json::from_str(p.read("results.jsonl").trim()).unwrap();
    assert_eq!(line["captured"]["doubled"], "8");
    assert_eq!(line["captured"]["obj"]["k"]["v"], "deep");
    p.file(
        "bad.yml",
        "name: cap\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"echo\"\n      capture: x\n      capture_format: xml\n",
    );
    let out = run_expect(&p, &["validate", "bad.yml"], 2);
    assert!(stderr(&out).contains("capture_format"), "{}", stderr(&out));
}

#[test]
fn on_failure_list_runs_and_item_still_fails() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        r#"name: onf
map:
  input: items.json
  agent_template:
    - shell: "exit 3"
      on_failure:
        - shell: "echo handled ${item_id} > handled.txt"
        - shell: "echo second >> handled.txt"
    - shell: "echo ran > step2.txt"
"#,
    );
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 1);
    assert_eq!(lines(&p, "handled.txt"), ["handled a", "second"]);
    assert_eq!(p.read("step2.txt"), "", "a failed step stops the item");
    assert_eq!(events_named(&out, "item_finished")[0]["status"], "dlq");
}

#[test]
fn on_failure_single_step_with_fail_workflow_false_forgives() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        r#"name: onf
map:
  input: items.json
  agent_template:
    - shell: "exit 3"
      on_failure:
        shell: "echo handled > handled.txt"
        fail_workflow: false
    - shell: "echo ran > step2.txt"
"#,
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(p.read("handled.txt").trim(), "handled");
    let st = p.status(&p.only_job());
    assert_eq!(st["successful"], 1);
    assert_eq!(st["dlq"], 0);
    // fail_workflow outside a single-step on_failure is an error
    p.file(
        "bad.yml",
        "name: onf\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"true\"\n      fail_workflow: false\n",
    );
    let out = run_expect(&p, &["validate", "bad.yml"], 2);
    assert!(stderr(&out).contains("fail_workflow"), "{}", stderr(&out));
}

fn items_from(input_yaml: &str, files: &[(&str, &str)]) -> Vec<String> {
    let p = Project::new();
    for (n, t) in files {
        p.file(n, t);
    }
    p.file(
        "wf.yml",
        &format!(
            "name: inp\nmap:\n  input: {input_yaml}\n  agent_template:\n    - shell: \"printf '%s\\\\n' ${{item}} >> items.txt\"\n"
        ),
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    sorted_lines(&p, "items.txt")
}

#[test]
fn input_file_forms_and_formats() {
    let arr = r#"[{"id":"a"},{"id":"b"}]"#;
    let want = [r#"{"id":"a"}"#, r#"{"id":"b"}"#];
    assert_eq!(items_from("items.json", &[("items.json", arr)]), want);
    assert_eq!(
        items_from("{file: items.json}", &[("items.json", arr)]),
        want
    );
    assert_eq!(
        items_from(
            "items.jsonl",
            &[("items.jsonl", "{\"id\":\"a\"}\n{\"id\":\"b\"}\n")]
        ),
        want
    );
    assert_eq!(
        items_from("one.json", &[("one.json", r#"{"id":"solo","x":1}"#)]),
        [r#"{"id":"solo","x":1}"#]
    );
    assert_eq!(
        items_from("lines.txt", &[("lines.txt", "alpha\nbeta\n")]),
        ["alpha", "beta"]
    );
}

#[test]
fn input_command_forms_and_formats() {
    // a bare string that names no existing file is a command (Prodigy's rule)
    assert_eq!(items_from("\"printf 'x\\\\ny\\\\n'\"", &[]), ["x", "y"]);
    assert_eq!(
        items_from(
            "{command: \"echo '[{\\\"id\\\":\\\"a\\\"},{\\\"id\\\":\\\"b\\\"}]'\"}",
            &[]
        ),
        [r#"{"id":"a"}"#, r#"{"id":"b"}"#]
    );
    assert_eq!(
        items_from(
            "{command: \"cat gen.jsonl\"}",
            &[("gen.jsonl", "{\"id\":1}\n{\"id\":2}\n")]
        ),
        [r#"{"id":1}"#, r#"{"id":2}"#]
    );
    assert_eq!(
        items_from("{command: \"echo '{\\\"id\\\":\\\"one\\\"}'\"}", &[]),
        [r#"{"id":"one"}"#]
    );
}

#[test]
fn input_with_both_file_and_command_is_rejected() {
    let p = Project::new();
    p.file(
        "wf.yml",
        "name: inp\nmap:\n  input: {file: a.json, command: \"echo\"}\n  agent_template:\n    - shell: \"true\"\n",
    );
    run_expect(&p, &["validate", "wf.yml"], 2);
}

fn unknown_key(yaml: &str, key: &str, line: usize) {
    let p = Project::new();
    p.file("wf.yml", yaml);
    let out = run_expect(&p, &["validate", "wf.yml"], 2);
    let err = stderr(&out);
    assert!(err.contains(key), "message should name `{key}`: {err}");
    assert!(
        err.contains(&format!("wf.yml:{line}:")),
        "message should give line {line}: {err}"
    );
    let out = run_expect(&p, &["run", "wf.yml"], 2);
    assert!(stderr(&out).contains(key));
    assert!(p.jobs().is_empty(), "an invalid workflow creates no job");
}

#[test]
fn unknown_keys_are_errors_naming_key_and_line() {
    unknown_key(
        "name: k\nbogus_top: 1\nmap:\n  input: x.json\n  agent_template:\n    - shell: \"true\"\n",
        "bogus_top",
        2,
    );
    unknown_key(
        "name: k\nmap:\n  input: x.json\n  bogus_map: 1\n  agent_template:\n    - shell: \"true\"\n",
        "bogus_map",
        4,
    );
    unknown_key(
        "name: k\nmap:\n  input: x.json\n  agent_template:\n    - shell: \"true\"\n      bogus_step: 1\n",
        "bogus_step",
        6,
    );
    unknown_key(
        "name: k\nmap:\n  input: x.json\n  retry:\n    max_attempts: 2\n    bogus_retry: 1\n  agent_template:\n    - shell: \"true\"\n",
        "bogus_retry",
        6,
    );
    unknown_key(
        "name: k\nerror_policy:\n  bogus_policy: 1\nmap:\n  input: x.json\n  agent_template:\n    - shell: \"true\"\n",
        "bogus_policy",
        3,
    );
}

#[test]
fn prodigy_only_keys_are_rejected_by_name() {
    for (yaml, key) in [
        (
            "name: k\nmap:\n  input: x.json\n  agent_template:\n    - goal_seek: { goal: \"x ${item}\" }\n",
            "goal_seek",
        ),
        (
            "name: k\nmap:\n  input: x.json\n  agent_template:\n    - shell: \"true\"\nsecrets:\n  KEY: x\n",
            "secrets",
        ),
    ] {
        let p = Project::new();
        p.file("wf.yml", yaml);
        let out = run_expect(&p, &["validate", "wf.yml"], 2);
        let err = stderr(&out);
        assert!(err.contains(&format!("`{key}`")), "{err}");
        assert!(err.contains("Prodigy-only"), "{err}");
        run_expect(&p, &["run", "wf.yml"], 2);
    }
}

#[test]
fn retry_block_keys_validate() {
    let p = Project::new();
    p.file(
        "ok.yml",
        "name: r\nmap:\n  input: x.json\n  retry:\n    max_attempts: 2\n    backoff: linear\n    initial_delay: 10ms\n    max_delay: 1s\n    jitter: true\n    on: [any, timeout, signal, \"exit:3\"]\n  agent_template:\n    - shell: \"true\"\n",
    );
    run_expect(&p, &["validate", "ok.yml"], 0);
    for (bad, word) in [
        ("backoff: sideways", "sideways"),
        ("on: [sometimes]", "sometimes"),
        ("max_attempts: 0", "max_attempts"),
        ("initial_delay: soon", "soon"),
    ] {
        p.file(
            "bad.yml",
            &format!(
                "name: r\nmap:\n  input: x.json\n  retry:\n    {bad}\n  agent_template:\n    - shell: \"true\"\n"
            ),
        );
        let out = run_expect(&p, &["validate", "bad.yml"], 2);
        assert!(stderr(&out).contains(word), "{bad}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("bad.yml:5:"),
            "{bad}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn slurm_block_keys_validate_with_old_names_accepted() {
    let p = Project::new();
    p.file(
        "ok.yml",
        "name: s\nexecutor: slurm\nslurm:\n  cpus_per_item: 2\n  mem_per_item: 1G\n  items_per_task: 50\n  parallel_per_task: 4\n  array_size: 500\nmap:\n  input: x.json\n  agent_template:\n    - shell: \"true\"\n",
    );
    run_expect(&p, &["validate", "ok.yml"], 0);
    for (bad, word, line) in [
        (
            "cpus_per_task: 2\n  cpus_per_item: 2",
            "cpus_per_item is the old name",
            5,
        ),
        (
            "mem_per_task: 1G\n  mem_per_item: 1G",
            "mem_per_item is the old name",
            5,
        ),
        (
            "items_per_task: 0",
            "slurm.items_per_task must be at least 1",
            4,
        ),
        (
            "parallel_per_task: 0",
            "slurm.parallel_per_task must be at least 1",
            4,
        ),
        (
            "cpus_per_task: 0",
            "slurm.cpus_per_task must be at least 1",
            4,
        ),
    ] {
        p.file(
            "bad.yml",
            &format!(
                "name: s\nexecutor: slurm\nslurm:\n  {bad}\nmap:\n  input: x.json\n  agent_template:\n    - shell: \"true\"\n"
            ),
        );
        let out = run_expect(&p, &["validate", "bad.yml"], 2);
        let err = stderr(&out);
        assert!(err.contains(word), "{bad}: {err}");
        assert!(err.contains(&format!("bad.yml:{line}:")), "{bad}: {err}");
    }
}
