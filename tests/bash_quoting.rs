//! Quoting that bash and dash read differently (`/bin/sh` is bash on Fedora, RHEL and
//! macOS): `$'...'`, `$"..."` and shell arithmetic. A hostile item value must stay literal
//! text, or the template is refused with a clear message.
mod common;
#[path = "common/extra.rs"]
mod extra;
use common::*;
use extra::*;

const HOSTILE: &[&str] = &[
    "$(touch pwned)",
    "`touch pwned`",
    "'",
    "\"",
    "it's \"quoted\"",
    "line1\nline2; touch pwned\n",
    "\\",
    "\\'; touch pwned; '",
    "'\\''$(touch pwned)'\\''",
    "a[$(touch pwned)]",
];

fn items() -> String {
    let items: Vec<serde_json::Value> = HOSTILE
        .iter()
        .enumerate()
        .map(|(i, v)| serde_json::json!({"id": format!("h{i}"), "v": v, "n": i}))
        .collect();
    serde_json::to_string(&items).unwrap()
}

fn workflow(shell: &str) -> String {
    format!(
        "name: bq\nmap:\n  input: items.json\n  agent_template:\n    - shell: {}\n",
        serde_json::to_string(shell).unwrap()
    )
}

#[test]
fn placeholder_inside_ansi_c_or_locale_quotes_is_rejected_at_validation() {
    let p = Project::new();
    p.file("items.json", &items());
    for (shell, what) in [
        ("printf '%s' $'\\t${item.v}\\n'", "$'...'"),
        ("printf '%s' $'\\${item.v}${item.v}$'\\", "$'...'"),
        ("printf '%s' $\"hello ${item.v}\"", "$\"...\""),
        ("printf '%s' $\"$(echo ${item.v})\"", "$\"...\""),
    ] {
        p.file("wf.yml", &workflow(shell));
        let out = run_expect(&p, &["validate", "wf.yml"], 2);
        let err = stderr(&out);
        assert!(err.contains("wf.yml:5:"), "{shell}: {err}");
        assert!(err.contains(&format!("inside `{what}`")), "{shell}: {err}");
        assert!(err.contains("`${item.v}`"), "{shell}: {err}");
        assert!(err.contains("close the string before it"), "{shell}: {err}");
        run_expect(&p, &["run", "wf.yml"], 2);
        assert!(p.jobs().is_empty(), "{shell}: nothing may run");
    }
    // `$'...'` with `\'` ends at different places in bash and dash: a later placeholder is
    // refused too.
    p.file("wf.yml", &workflow("printf '%s' $'it\\'s' ${item.v}"));
    let out = run_expect(&p, &["validate", "wf.yml"], 2);
    assert!(stderr(&out).contains("bash and dash end in different places"));
    // bash scans backquotes inside double quotes before removing their backslashes: a value
    // such as `"{$(` breaks the command there.
    p.file("wf.yml", &workflow("printf '%s' \"`printf %s ${item.v}`\""));
    let out = run_expect(&p, &["validate", "wf.yml"], 2);
    let err = stderr(&out);
    assert!(
        err.contains("wf.yml:5:") && err.contains("use $(...) instead"),
        "{err}"
    );
    assert!(!p.path().join("pwned").exists());
}

#[test]
fn values_next_to_bash_quotes_stay_literal() {
    let p = Project::new();
    p.file("items.json", &items());
    // `$'\t'` is a tab in bash and `$\t` in dash: both go to stderr; stdout must be the
    // value, byte for byte, whatever /bin/sh is.
    p.file(
        "wf.yml",
        &workflow(
            "mkdir -p out; printf '%s' $'\\t' $\"q\" >&2; printf '%s' $'x'\"${item.v}\"$\"y\" '${item.v}' ${item.v} > out/${item_id}.txt",
        ),
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert!(!p.path().join("pwned").exists(), "an item value ran");
    for (i, v) in HOSTILE.iter().enumerate() {
        let got = p.read(&format!("out/h{i}.txt"));
        let bash = format!("x{v}y{v}{v}");
        let dash = format!("$x{v}$y{v}{v}");
        assert!(
            got == bash || got == dash,
            "item h{i}: {got:?} is not the literal value {v:?}"
        );
    }
}

#[test]
fn arithmetic_takes_integers_and_refuses_anything_else() {
    let p = Project::new();
    let mut items: Vec<serde_json::Value> = HOSTILE
        .iter()
        .enumerate()
        .map(|(i, v)| serde_json::json!({"id": format!("h{i}"), "n": v}))
        .collect();
    items.push(serde_json::json!({"id": "num", "n": 41}));
    items.push(serde_json::json!({"id": "neg", "n": "-3"}));
    p.file("items.json", &serde_json::to_string(&items).unwrap());
    p.file(
        "wf.yml",
        &workflow(
            "mkdir -p out; echo $(( ${item.n} + 1 )) \"$((${item.n}*2))\" > out/${item_id}.txt",
        ),
    );
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 1);
    assert!(
        !p.path().join("pwned").exists(),
        "a value in $((...)) ran as a command"
    );
    assert_eq!(p.read("out/num.txt"), "42 82\n");
    assert_eq!(p.read("out/neg.txt"), "-2 -6\n");
    let finished = events_named(&out, "item_finished");
    for i in 0..HOSTILE.len() {
        let id = format!("h{i}");
        let e = finished
            .iter()
            .find(|e| e["item_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no item_finished for {id}: {finished:?}"));
        assert_eq!(e["status"], "dlq", "{e}");
        let msg = e["error"].as_str().unwrap_or_default();
        assert!(msg.contains("not an integer"), "{msg}");
        assert!(msg.contains("`$((...))`"), "{msg}");
        assert!(!p.path().join(format!("out/{id}.txt")).exists());
    }
}
