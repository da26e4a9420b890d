//! The items input's format (issue 10, item 1): `.json` is one JSON document, `.jsonl` and
//! `.ndjson` are JSON lines, `map.input_format` decides otherwise (and overrides the
//! extension), and broken JSON is an error naming `file:line:column`, never plain lines.
mod common;
#[path = "common/extra.rs"]
mod extra;
use common::*;
use extra::*;

/// The issue's file: a JSON array broken on line 2 (column 9 is the `}`).
const BROKEN: &str = "[{\"id\": \"a\"},\n {\"id\": }]\n";

/// A workflow whose every item appends its value to `seen.txt`.
fn workflow(p: &Project, input: &str, extra: &str) {
    p.file(
        "wf.yml",
        &format!(
            "name: fmt\nmap:\n  input: {input}\n{extra}  agent_template:\n    - shell: \"echo ${{item}} >> seen.txt\"\n"
        ),
    );
}

fn assert_nothing_ran(p: &Project) {
    assert!(
        !p.path().join("seen.txt").exists(),
        "an item ran: {:?}",
        p.read("seen.txt")
    );
}

/// A project whose `name` holds `content`, read through `input` with the `extra` map keys.
fn project(name: &str, content: &str, input: &str, extra: &str) -> Project {
    let p = Project::new();
    p.file(name, content);
    workflow(&p, input, extra);
    p
}

/// `runner run` succeeds; the item values the steps saw, sorted.
fn seen(name: &str, content: &str, input: &str, extra: &str) -> Vec<String> {
    let p = project(name, content, input, extra);
    run_expect(&p, &["run", "wf.yml"], 0);
    sorted_lines(&p, "seen.txt")
}

/// `runner run` exits 2 with `want` in its stderr, runs no item and leaves no job; its stderr.
fn rejected(name: &str, content: &str, input: &str, extra: &str, want: &str) -> String {
    let p = project(name, content, input, extra);
    let err = stderr(&run_expect(&p, &["run", "wf.yml"], 2));
    assert!(err.contains(want), "want {want:?} in:\n{err}");
    assert_nothing_ran(&p);
    assert!(p.jobs().is_empty(), "a job was left: {:?}", p.jobs());
    err
}

#[test]
fn broken_json_file_exits_2_naming_file_line_column_and_leaves_no_job() {
    let p = Project::new();
    p.file("items.json", BROKEN);
    workflow(&p, "items.json", "");
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 2);
    let err = stderr(&out);
    let at = format!(
        "{}:2:9: invalid JSON",
        p.path().join("items.json").display()
    );
    assert!(err.contains(&at), "want {at:?} in:\n{err}");
    assert_nothing_ran(&p);
    assert!(p.jobs().is_empty(), "a job was left: {:?}", p.jobs());
    assert_eq!(stdout(&out), "", "no job, so no events");
    // A dry run reads the input the same way.
    let out = run_expect(&p, &["run", "wf.yml", "--dry-run"], 2);
    assert!(stderr(&out).contains(&at), "{}", stderr(&out));
    assert_nothing_ran(&p);
}

#[test]
fn broken_json_after_setup_keeps_a_failed_job_that_resumes_once_fixed() {
    let p = Project::new();
    p.file("broken.json", BROKEN);
    p.file(
        "wf.yml",
        "name: fmt\nsetup:\n  - shell: \"cp broken.json gen.json; echo setup >> setup.txt\"\nmap:\n  input: gen.json\n  agent_template:\n    - shell: \"echo ${item.id} >> seen.txt\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml"], 2);
    let err = stderr(&out);
    assert!(err.contains("gen.json:2:9: invalid JSON"), "{err}");
    let job = p.only_job();
    assert!(err.contains(&format!("runner resume {job}")), "{err}");
    assert_nothing_ran(&p);
    let st = p.status(&job);
    assert_eq!(st["state"], "failed", "{st}");
    assert_eq!(st["total"], 0, "{st}");
    p.file("gen.json", r#"[{"id": "a"}, {"id": "b"}]"#);
    run_expect(&p, &["resume", &job], 0);
    assert_eq!(sorted_lines(&p, "seen.txt"), ["a", "b"]);
    assert_eq!(lines(&p, "setup.txt"), ["setup"], "setup ran again");
}

#[test]
fn broken_jsonl_line_is_named_by_its_line_number() {
    let jsonl = "{\"id\": \"a\"}\n\n{\"id\": \"b\"}\n{\"id\": \"c\",}\n";
    let want = "/items.jsonl:4:12: invalid JSON: trailing comma";
    let err = rejected("items.jsonl", jsonl, "items.jsonl", "", want);
    assert!(err.contains("JSON lines"), "{err}");
}

#[test]
fn ndjson_file_is_one_item_per_line() {
    // One line holding an array: as JSON lines that is one item, not two.
    let got = seen("items.ndjson", "[\"a\",\"b\"]\n\n", "items.ndjson", "");
    assert_eq!(got, [r#"["a","b"]"#]);
}

#[test]
fn lines_format_reads_lines_starting_with_brackets_as_strings() {
    let (text, lines) = ("{\"a\": 1}\n[draft] notes\n", "  input_format: lines\n");
    let p = project("items.json", text, "items.json", lines);
    let out = run_expect(&p, &["run", "wf.yml", "--dry-run"], 0);
    assert!(stdout(&out).contains("[draft] notes"), "{}", stdout(&out));
    let got = seen("items.json", text, "items.json", lines);
    assert_eq!(got, ["[draft] notes", "{\"a\": 1}"]);
}

#[test]
fn json_format_on_a_command_reads_one_document() {
    let (cmd, json) = ("{command: \"cat doc.txt\"}", "  input_format: json\n");
    let got = seen("doc.txt", "[\n\"x\",\n\"y\"\n]\n", cmd, json);
    assert_eq!(got, ["x", "y"]);
    // JSON lines are not one document: an error at the second value, naming the command.
    let want = "map.input command output:2:1: invalid JSON: trailing characters";
    rejected("doc.txt", "\"x\"\n\"y\"\n", cmd, json, want);
}

#[test]
fn broken_json_from_a_command_names_the_command_output() {
    let want = "map.input command output:2:9: invalid JSON";
    let err = rejected("out.txt", BROKEN, "{command: \"cat out.txt\"}", "", want);
    assert!(err.contains("map.input_format: lines"), "{err}");
}

#[test]
fn auto_still_reads_plain_words_from_a_command() {
    let got = seen(
        "words.txt",
        "alpha\nbeta\n",
        "{command: \"cat words.txt\"}",
        "",
    );
    assert_eq!(got, ["alpha", "beta"]);
}

#[test]
fn invalid_input_format_is_rejected_with_its_location() {
    let p = Project::new();
    p.file("items.json", "[]");
    workflow(&p, "items.json", "  input_format: yaml\n");
    for args in [&["validate", "wf.yml"][..], &["run", "wf.yml"]] {
        let out = run_expect(&p, args, 2);
        let err = stderr(&out);
        assert!(
            err.contains("wf.yml:4:17: unknown map.input_format \"yaml\""),
            "{args:?}: {err}"
        );
    }
    assert!(p.jobs().is_empty());
}

#[test]
fn validate_names_the_format_it_will_read() {
    let p = Project::new();
    p.file("items.jsonl", "");
    for (extra, want) in [
        ("", "format jsonl (by its extension)"),
        ("  input_format: lines\n", "format lines (map.input_format)"),
    ] {
        workflow(&p, "{file: items.jsonl}", extra);
        let err = stderr(&run_expect(&p, &["validate", "wf.yml"], 0));
        assert!(err.contains(want), "want {want:?} in:\n{err}");
    }
}

#[test]
fn broken_jsonl_line_past_max_items_is_still_an_error() {
    // Items are selected one line at a time; the lines after `max_items` are still read.
    let jsonl = "{\"id\": \"a\"}\n{\"id\": \"b\"}\n{\"id\": \"c\",}\n";
    let want = "/items.jsonl:3:12: invalid JSON: trailing comma";
    rejected(
        "items.jsonl",
        jsonl,
        "items.jsonl",
        "  max_items: 1\n",
        want,
    );
}

#[test]
fn auto_reads_every_line_as_text_when_a_late_line_is_not_json() {
    let p = project("items.txt", "1\n2\nthree\n", "items.txt", "");
    let out = stdout(&run_expect(&p, &["run", "wf.yml", "--dry-run"], 0));
    for want in [": \"1\"", ": \"2\"", ": \"three\""] {
        assert!(out.contains(want), "want {want:?} in:\n{out}");
    }
}

#[test]
fn selection_leaves_no_temporary_file_in_the_state_directory() {
    let entries = |p: &Project| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(p.path().join(".runner"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    // A run, and a selection that fails (a repeated id) and so creates no job.
    for (second, code, jobs) in [("b", 0, 1), ("a", 2, 0)] {
        let items = format!("{{\"id\": \"a\"}}\n{{\"id\": \"{second}\"}}\n");
        let p = project("items.jsonl", &items, "items.jsonl", "");
        run_expect(&p, &["run", "wf.yml"], code);
        assert_eq!(p.jobs().len(), jobs, "{:?}", p.jobs());
        assert!(entries(&p).iter().all(|e| e == "jobs"), "{:?}", entries(&p));
    }
}
