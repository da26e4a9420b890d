//! Issue 15, item 1: steps run, and relative paths resolve, in the directory runner was
//! started in (recorded in the job, so `resume` from elsewhere is the same); a top-level
//! `working_dir:` (relative to the workflow file) overrides it.
mod common;
#[path = "common/extra.rs"]
mod extra;
use common::*;
use extra::*;

fn canon(p: &std::path::Path) -> std::path::PathBuf {
    std::fs::canonicalize(p).expect("canonicalize")
}

#[test]
fn a_workflow_under_workflows_runs_in_the_start_directory() {
    let p = Project::new();
    p.file("workflows/data/items.json", r#"[{"id":"a"},{"id":"b"}]"#);
    p.file(
        "workflows/wf.yml",
        r#"name: wd
setup:
  - shell: "pwd > setup-pwd.txt"
map:
  input: "workflows/data/items.json"
  agent_template:
    - shell: "mkdir -p out && echo ${item_id} >> out/seen.txt"
reduce:
  - shell: "pwd > reduce-pwd.txt"
"#,
    );
    run_expect(&p, &["run", "workflows/wf.yml"], 0);
    let root = canon(p.path());
    assert_eq!(
        canon(std::path::Path::new(p.read("setup-pwd.txt").trim())),
        root
    );
    assert_eq!(
        canon(std::path::Path::new(p.read("reduce-pwd.txt").trim())),
        root
    );
    assert_eq!(sorted_lines(&p, "out/seen.txt"), ["a", "b"]);
    assert!(!p.path().join("workflows/out").exists());
    let job = p.only_job();
    let text = std::fs::read_to_string(p.job_dir(&job).join("job.json")).unwrap();
    // After the `runner-snapshot` header line.
    let meta: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    assert_eq!(
        canon(std::path::Path::new(meta["workflow_dir"].as_str().unwrap())),
        root
    );
}

#[test]
fn resume_from_another_directory_runs_in_the_recorded_one() {
    let p = Project::new();
    p.file("workflows/items.json", r#"[{"id":"a"}]"#);
    p.file(
        "workflows/wf.yml",
        r#"name: wd
setup:
  - shell: "test -f go"
map:
  input: "workflows/items.json"
  agent_template:
    - shell: "pwd > map-pwd.txt"
"#,
    );
    run_expect(&p, &["run", "workflows/wf.yml"], 1);
    let job = p.only_job();
    p.file("go", "");
    std::fs::create_dir_all(p.path().join("elsewhere")).unwrap();
    let out = p
        .cmd()
        .current_dir(p.path().join("elsewhere"))
        .args(["resume", &job])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        canon(std::path::Path::new(p.read("map-pwd.txt").trim())),
        canon(p.path())
    );
    assert!(!p.path().join("elsewhere/map-pwd.txt").exists());
}

#[test]
fn working_dir_is_relative_to_the_workflow_file() {
    let p = Project::new();
    p.file("workflows/data/items.json", r#"[{"id":"a"}]"#);
    p.file(
        "workflows/wf.yml",
        r#"name: wd
working_dir: data
map:
  input: items.json
  agent_template:
    - shell: "pwd > pwd.txt"
"#,
    );
    std::fs::create_dir_all(p.path().join("elsewhere")).unwrap();
    let out = p
        .cmd()
        .current_dir(p.path().join("elsewhere"))
        .args(["run", "../workflows/wf.yml"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        canon(std::path::Path::new(
            p.read("workflows/data/pwd.txt").trim()
        )),
        canon(&p.path().join("workflows/data"))
    );

    p.file(
        "workflows/bad.yml",
        "name: wd\nworking_dir: nosuch\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"true\"\n",
    );
    let out = run_expect(&p, &["run", "workflows/bad.yml"], 2);
    assert!(
        stderr(&out).contains("nosuch") && stderr(&out).contains("does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(p.jobs().len() == 1, "no job is left for the bad workflow");
}
