//! SPEC 2.1: every interpolation variable, the RUNNER_* environment, and injection safety in
//! every quoting context.
mod common;
#[path = "common/extra.rs"]
mod extra;
use common::*;
use extra::*;

#[test]
fn item_variables_render() {
    let p = Project::new();
    p.file(
        "items.json",
        r#"[{"id":"v1","a":{"b":"deep"},"list":["first","second"],"num":5,"obj":{"k":[1,2]}}]"#,
    );
    p.file(
        "wf.yml",
        r#"name: vars
env:
  NAME: from-env
map:
  input: items.json
  agent_template:
    - shell: |
        printf '%s\n' ${item} > item.txt
        printf '%s\n' ${item.a.b} ${item.list[0]} ${item.list[1]} ${item.num} ${item.obj} > fields.txt
        printf '%s\n' ${item_id} ${job.id} ${attempt} ${env.NAME} > ids.txt
"#,
    );
    run_expect(&p, &["run", "wf.yml", "--job-id", "job-vars-1"], 0);
    let item: serde_json::Value = serde_json::from_str(p.read("item.txt").trim()).unwrap();
    assert_eq!(item["a"]["b"], "deep");
    assert_eq!(
        p.read("item.txt").trim(),
        serde_json::to_string(&item).unwrap(),
        "${{item}} is compact JSON"
    );
    assert_eq!(
        lines(&p, "fields.txt"),
        ["deep", "first", "second", "5", r#"{"k":[1,2]}"#]
    );
    assert_eq!(lines(&p, "ids.txt"), ["v1", "job-vars-1", "1", "from-env"]);
}

#[test]
fn runner_environment_variables() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"e1","x":"y z"}]"#);
    p.file(
        "wf.yml",
        r#"name: renv
map:
  input: items.json
  agent_template:
    - shell: |
        printf '%s\n' "$RUNNER_ITEM" "$RUNNER_ITEM_ID" "$RUNNER_JOB_ID" "$RUNNER_ATTEMPT" > env.txt
"#,
    );
    run_expect(&p, &["run", "wf.yml", "--job-id", "renv-job"], 0);
    let l = lines(&p, "env.txt");
    assert_eq!(l.len(), 4, "{l:?}");
    let item: serde_json::Value = serde_json::from_str(&l[0]).unwrap();
    assert_eq!(item, serde_json::json!({"id":"e1","x":"y z"}));
    assert_eq!(&l[1..], ["e1", "renv-job", "1"]);
}

#[test]
fn attempt_counts_up_across_retries() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"r"}]"#);
    p.file(
        "wf.yml",
        r#"name: att
map:
  input: items.json
  retry: {max_attempts: 3, initial_delay: 10ms}
  agent_template:
    - shell: "echo ${attempt} $RUNNER_ATTEMPT >> attempts.txt; test ${attempt} -ge 3"
"#,
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(lines(&p, "attempts.txt"), ["1 1", "2 2", "3 3"]);
}

#[test]
fn captured_variables_flow_to_later_steps() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"c1","w":"word"}]"#);
    p.file(
        "wf.yml",
        r#"name: cap
map:
  input: items.json
  agent_template:
    - shell: "echo ${item.w}-captured"
      capture: first
    - shell: "printf '%s' ${first} > cap.txt"
"#,
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(p.read("cap.txt"), "word-captured");
}

#[test]
fn reduce_map_variables_and_results_file() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"ok1"},{"id":"ok2"},{"id":"bad"}]"#);
    p.file(
        "wf.yml",
        r#"name: red
map:
  input: items.json
  agent_template:
    - shell: "echo out-${item_id}"
      capture: out
    - shell: "test ${item_id} != bad || exit 3"
reduce:
  - shell: "echo ${map.total} ${map.successful} ${map.failed} > counts.txt; cp ${map.results_file} results.jsonl"
"#,
    );
    // The map has a DLQ item, so the job exits 1, but reduce still runs.
    run_expect(&p, &["run", "wf.yml"], 1);
    assert_eq!(p.read("counts.txt").trim(), "3 2 1");
    let rows: Vec<serde_json::Value> = p
        .read("results.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "one line per item");
    for r in &rows {
        for key in ["item_id", "status", "exit_code", "captured", "duration_ms"] {
            assert!(r.get(key).is_some(), "results line lacks {key}: {r}");
        }
        assert!(r["duration_ms"].is_u64(), "{r}");
    }
    let by_id = |id: &str| rows.iter().find(|r| r["item_id"] == id).unwrap().clone();
    assert_eq!(by_id("ok1")["status"], "succeeded");
    assert_eq!(by_id("ok1")["captured"]["out"], "out-ok1");
    assert_eq!(by_id("bad")["exit_code"], 3);
    assert_ne!(by_id("bad")["status"], "succeeded");
}

#[test]
fn unknown_variable_is_a_validation_error_with_line() {
    let p = Project::new();
    p.file(
        "wf.yml",
        "name: uv\nmap:\n  input: x.json\n  agent_template:\n    - shell: \"true\"\n    - shell: \"echo ${itme.x}\"\n",
    );
    let out = run_expect(&p, &["validate", "wf.yml"], 2);
    let err = stderr(&out);
    assert!(err.contains("itme"), "{err}");
    assert!(err.contains("wf.yml:6:"), "{err}");
    // map variables are not known in the map phase
    p.file(
        "wf2.yml",
        "name: uv\nmap:\n  input: x.json\n  agent_template:\n    - shell: \"echo ${map.total}\"\n",
    );
    let out = run_expect(&p, &["validate", "wf2.yml"], 2);
    assert!(stderr(&out).contains("map"), "{}", stderr(&out));
    // an item variable in reduce is unknown
    p.file(
        "wf3.yml",
        "name: uv\nmap:\n  input: x.json\n  agent_template:\n    - shell: \"true\"\nreduce:\n  - shell: \"echo ${item.x}\"\n",
    );
    let out = run_expect(&p, &["validate", "wf3.yml"], 2);
    assert!(stderr(&out).contains("wf3.yml:7:"), "{}", stderr(&out));
}

#[test]
fn missing_item_field_is_a_runtime_error_for_that_item() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"has","f":"v"},{"id":"lacks"}]"#);
    p.file(
        "wf.yml",
        "name: mf\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"echo ${item.f} >> got.txt\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 1);
    assert_eq!(lines(&p, "got.txt"), ["v"]);
    let fin = events_named(&out, "item_finished");
    let lacks = fin.iter().find(|e| e["item_id"] == "lacks").unwrap();
    assert_eq!(lacks["status"], "dlq");
    assert!(
        lacks["error"].as_str().unwrap_or("").contains("item.f"),
        "{lacks}"
    );
}

#[test]
fn shell_variables_pass_through() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"s"}]"#);
    p.file(
        "wf.yml",
        r#"name: sv
env:
  MINE: mine-value
map:
  input: items.json
  agent_template:
    - shell: "X=local; printf '%s|%s|%s|%s\n' $HOME ${HOME} \"${X}\" $MINE > sh.txt"
"#,
    );
    let home = p.path().join("fakehome");
    let out = p
        .cmd()
        .env("HOME", &home)
        .args(["run", "wf.yml"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let h = home.to_string_lossy();
    assert_eq!(p.read("sh.txt").trim(), format!("{h}|{h}|local|mine-value"));
}

const PAYLOADS: &[&str] = &[
    "\"; touch PWNED; echo \"",
    "$(touch PWNED)",
    "`touch PWNED`",
    "'; touch PWNED; echo '",
    "it's",
    "line1\nline2; touch PWNED\nline3",
    "back\\slash\\\\ and \\\" and \\$(touch PWNED)",
    "${HOME} $HOME * ? [a] ~ & | ; < > #",
    "  leading and trailing spaces  ",
    "",
];

#[test]
fn injection_is_escaped_in_every_quoting_context() {
    let p = Project::new();
    let items: Vec<serde_json::Value> = PAYLOADS
        .iter()
        .enumerate()
        .map(|(i, s)| serde_json::json!({"id": format!("p{i}"), "p": s, "nested": {"q": s}}))
        .collect();
    p.file("items.json", &serde_json::to_string(&items).unwrap());
    std::fs::create_dir_all(p.path().join("out")).unwrap();
    p.file(
        "wf.yml",
        r#"name: inj
map:
  input: items.json
  agent_template:
    - shell: "printf '%s' ${item.p} > out/${item_id}.bare"
    - shell: "printf '%s' '${item.p}' > out/${item_id}.single"
    - shell: "printf '%s' \"${item.p}\" > out/${item_id}.double"
    - shell: "printf '%s' \"pre-${item.nested.q}-post\" > out/${item_id}.mixed"
    - shell: "x=$(printf '%s' ${item.p}; echo .); printf '%s' \"${x%.}\" > out/${item_id}.subst"
    - shell: "x=\"$(printf '%s' \"${item.p}\"; echo .)\"; printf '%s' \"${x%.}\" > out/${item_id}.dsubst"
    - shell: |
        cat > out/${item_id}.script <<'EOF'
        ok
        EOF
        printf '%s' ${item.p} > out/${item_id}.block
"#,
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert!(
        !p.path().join("PWNED").exists(),
        "an item field was executed"
    );
    for (i, s) in PAYLOADS.iter().enumerate() {
        for ctx in ["bare", "single", "double", "subst", "dsubst", "block"] {
            let got = std::fs::read(p.path().join(format!("out/p{i}.{ctx}"))).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&got),
                *s,
                "payload #{i} in context {ctx} was not passed literally"
            );
        }
        let got = p.read(&format!("out/p{i}.mixed"));
        assert_eq!(got, format!("pre-{s}-post"), "payload #{i} mixed");
    }
}

#[test]
fn injection_via_item_id_and_whole_item() {
    let p = Project::new();
    let payload = "x\"; touch PWNED; echo '$(touch PWNED)`touch PWNED`";
    let items = serde_json::json!([{ "id": payload, "v": payload }]);
    p.file("items.json", &items.to_string());
    p.file(
        "wf.yml",
        r#"name: inj2
map:
  input: items.json
  agent_template:
    - shell: "printf '%s' ${item_id} > id.txt; printf '%s' \"${item}\" > item.txt; printf '%s' '${item}' > item2.txt"
"#,
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert!(!p.path().join("PWNED").exists());
    assert_eq!(p.read("id.txt"), payload);
    let want = serde_json::to_string(&items[0]).unwrap();
    assert_eq!(p.read("item.txt"), want);
    assert_eq!(p.read("item2.txt"), want);
}

#[test]
fn injection_via_captured_output_and_env_is_escaped() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"c"}]"#);
    p.file(
        "wf.yml",
        r#"name: inj3
env:
  EVIL: "$(touch PWNED_ENV)"
map:
  input: items.json
  agent_template:
    - shell: "printf '%s' '$(touch PWNED)'"
      capture: evil
    - shell: "printf '%s' ${evil} > cap.txt; printf '%s' ${env.EVIL} > env.txt"
"#,
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert!(!p.path().join("PWNED").exists());
    assert!(!p.path().join("PWNED_ENV").exists());
    assert_eq!(p.read("cap.txt"), "$(touch PWNED)");
    assert_eq!(p.read("env.txt"), "$(touch PWNED_ENV)");
}

#[test]
fn raw_opts_out_of_escaping() {
    let p = Project::new();
    p.file(
        "items.json",
        r#"[{"id":"r","cmd":"echo raw-ran > raw.txt","flags":"-n -e"}]"#,
    );
    p.file(
        "wf.yml",
        r#"name: raw
map:
  input: items.json
  agent_template:
    - shell: "${item.cmd:raw}"
    - shell: "printf '%s\n' ${item.flags:raw} > flags.txt; printf '%s\n' ${item.flags} > flags2.txt"
"#,
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(p.read("raw.txt").trim(), "raw-ran");
    assert_eq!(
        lines(&p, "flags.txt"),
        ["-n", "-e"],
        "raw: split by the shell"
    );
    assert_eq!(lines(&p, "flags2.txt"), ["-n -e"], "escaped: one word");
}

#[test]
fn dry_run_shows_escaped_commands() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"d","p":"$(touch PWNED)"}]"#);
    p.file(
        "wf.yml",
        "name: dr\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"echo ${item.p}\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml", "--dry-run"], 0);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(all.contains("echo '$(touch PWNED)'"), "{all}");
    assert!(!p.path().join("PWNED").exists());
}

#[test]
fn item_number_in_shell_arithmetic() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a","n":4}]"#);
    p.file(
        "wf.yml",
        "name: ar\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"echo $((${item.n} * 2)) > out.txt\"\n",
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(p.read("out.txt").trim(), "8");
}
