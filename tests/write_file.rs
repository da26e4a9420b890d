//! Issue 15, `write_file:` steps (Prodigy's `path`, `content`, `format: text|json|yaml`,
//! `create_dirs`, `mode`): path and content interpolated, the file written atomically under
//! the step's working directory, JSON/YAML content checked.
mod common;
#[path = "common/extra.rs"]
mod extra;
use std::os::unix::fs::PermissionsExt;

use common::*;
use extra::*;

fn mode_of(p: &Project, name: &str) -> u32 {
    std::fs::metadata(p.path().join(name))
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

fn workflow(p: &Project, body: &str) {
    p.file("items.json", r#"[{"id":"a","n":1},{"id":"b","n":2}]"#);
    p.file("wf.yml", &format!("name: wf\nmode: mapreduce\n{body}"));
}

#[test]
fn map_setup_and_reduce_write_interpolated_files() {
    let p = Project::new();
    workflow(
        &p,
        r#"setup:
  - write_file:
      path: "out/deep/setup.txt"
      content: "from ${workflow.name}"
      create_dirs: true
map:
  input: items.json
  agent_template:
    - write_file:
        path: "out/${item.id}.json"
        content: '{"id": "${item.id}", "n": ${item.n}}'
        format: json
      capture: wrote
    - shell: "echo '${wrote}' > out/${item.id}.said"
reduce:
  - write_file:
      path: out/summary.yml
      content: "done: ${map.successful}\nfailed: ${map.failed}"
      format: yaml
"#,
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(p.read("out/deep/setup.txt"), "from wf");
    assert_eq!(p.read("out/a.json"), "{\n  \"id\": \"a\",\n  \"n\": 1\n}");
    assert_eq!(
        p.read("out/b.said").trim(),
        format!(
            "Wrote {} bytes to out/b.json (format: Json)",
            p.read("out/b.json").len()
        )
    );
    let summary: serde_json::Value = serde_saphyr::from_str(&p.read("out/summary.yml")).unwrap();
    assert_eq!(summary, serde_json::json!({"done": 2, "failed": 0}));
    assert_eq!(mode_of(&p, "out/a.json"), 0o644);
}

#[test]
fn working_dir_and_mode_apply() {
    let p = Project::new();
    p.file("sub/.keep", "");
    workflow(
        &p,
        r##"setup:
  - write_file:
      path: "s.sh"
      content: "#!/bin/sh\necho hi\n"
      mode: "0755"
    working_dir: sub
map:
  input: items.json
  agent_template:
    - shell: "true"
"##,
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(p.read("sub/s.sh"), "#!/bin/sh\necho hi\n");
    assert_eq!(mode_of(&p, "sub/s.sh"), 0o755);
}

#[test]
fn invalid_json_content_fails_the_item_and_leaves_no_file() {
    let p = Project::new();
    workflow(
        &p,
        r#"map:
  input: items.json
  agent_template:
    - write_file:
        path: "${item.id}.json"
        content: '{"id": ${item.id}}'
        format: json
"#,
    );
    run_expect(&p, &["run", "wf.yml"], 1);
    let status = p.status(&p.only_job());
    assert_eq!(status["failed"], 2, "{status}");
    assert!(!p.path().join("a.json").exists());
}

#[test]
fn a_missing_directory_without_create_dirs_or_a_parent_path_fails_the_setup() {
    let p = Project::new();
    workflow(
        &p,
        r#"setup:
  - write_file:
      path: "no/such/dir/x.txt"
      content: "x"
map:
  input: items.json
  agent_template:
    - shell: "true"
"#,
    );
    let out = run_expect(&p, &["run", "wf.yml"], 1);
    assert!(
        stderr(&out).contains("create_dirs: true"),
        "{}",
        stderr(&out)
    );

    let p = Project::new();
    workflow(
        &p,
        r#"setup:
  - write_file:
      path: "../escape.txt"
      content: "x"
map:
  input: items.json
  agent_template:
    - shell: "true"
"#,
    );
    let out = run_expect(&p, &["run", "wf.yml"], 1);
    assert!(stderr(&out).contains("contains `..`"), "{}", stderr(&out));
}

#[test]
fn validate_accepts_write_file_and_points_at_bad_fields() {
    let p = Project::new();
    workflow(
        &p,
        r#"map:
  input: items.json
  agent_template:
    - write_file:
        path: "${item.id}.txt"
        content: "${item.n}"
"#,
    );
    run_expect(&p, &["validate", "wf.yml"], 0);
    workflow(
        &p,
        r#"map:
  input: items.json
  agent_template:
    - write_file:
        path: "${item.id}.txt"
        content: "${nope}"
        format: toml
        mode: "rw"
"#,
    );
    let out = run_expect(&p, &["validate", "wf.yml"], 2);
    let err = stderr(&out);
    assert!(
        err.contains("wf.yml:8:18: unknown variable") || err.contains("wf.yml:8:18:"),
        "{err}"
    );
    assert!(
        err.contains("wf.yml:9:17: unknown write_file format \"toml\""),
        "{err}"
    );
    assert!(
        err.contains("wf.yml:10:15: write_file: mode \"rw\""),
        "{err}"
    );
}
