//! Bad configuration input, through the real binary: each mistake gets one clear message
//! naming the file and line (or the option) and a non-zero exit before anything starts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_imperium")
}

/// A fresh directory under target/tmp for one test.
fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("config-errors")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write config");
    p
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .expect("run imperium")
}

/// Asserts a failed run whose stderr contains every `needle`.
fn assert_fails(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr:\n{err}"
    );
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
}

#[test]
fn missing_file_names_the_file() {
    let d = scratch("missing");
    let out = run(&d, &["--ini", "nope.ini"]);
    assert_fails(&out, &["nope.ini", "No such file"]);
}

#[test]
fn unreadable_file_names_the_file() {
    let d = scratch("unreadable");
    std::fs::create_dir_all(d.join("adir.ini")).expect("mkdir");
    let out = run(&d, &["--ini", "adir.ini"]);
    assert_fails(&out, &["adir.ini", "directory"]);
}

#[test]
fn missing_include_names_the_including_line() {
    let d = scratch("missing-include");
    write(
        &d,
        "main.ini",
        "[uwsgi]\nmaster = true\ninclude = other.ini\n",
    );
    let out = run(&d, &["--ini", "main.ini"]);
    assert_fails(&out, &["main.ini:3", "other.ini", "No such file"]);
}

#[test]
fn unknown_command_line_option() {
    let d = scratch("unknown-opt");
    let out = run(&d, &["--no-such-option-at-all", "1"]);
    assert_fails(&out, &["unknown option '--no-such-option-at-all'"]);
}

#[test]
fn unknown_short_flag() {
    let d = scratch("unknown-short");
    let out = run(&d, &["-Y"]);
    assert_fails(&out, &["unknown option '-Y'"]);
}

#[test]
fn missing_argument() {
    let d = scratch("missing-arg");
    let out = run(&d, &["--processes"]);
    assert_fails(&out, &["'--processes' requires an argument"]);
}

#[test]
fn bad_typed_value_names_file_line_and_option() {
    let d = scratch("bad-int");
    write(&d, "app.ini", "[uwsgi]\nmaster = true\nprocesses = many\n");
    let out = run(&d, &["--ini", "app.ini"]);
    assert_fails(&out, &["app.ini:3", "'processes'", "many"]);
}

#[test]
fn bad_typed_value_on_the_command_line() {
    let d = scratch("bad-int-cli");
    let out = run(&d, &["--harakiri", "soon"]);
    assert_fails(&out, &["command line argument 1", "'harakiri'", "soon"]);
}

#[test]
fn include_cycle_is_reported_with_the_chain() {
    let d = scratch("cycle");
    write(&d, "a.ini", "[uwsgi]\ninclude = b.ini\n");
    write(&d, "b.ini", "[uwsgi]\nx = 1\ninclude = a.ini\n");
    let out = run(&d, &["--ini", "a.ini"]);
    assert_fails(
        &out,
        &["b.ini:3", "include cycle", "a.ini -> ", "b.ini -> "],
    );
}

#[test]
fn unterminated_if_names_where_it_opened() {
    let d = scratch("unterminated-if");
    write(
        &d,
        "app.ini",
        "[uwsgi]\nmaster = true\nif-env = PATH\nx = 1\n",
    );
    let out = run(&d, &["--ini", "app.ini"]);
    assert_fails(&out, &["app.ini:3", "never closed"]);
}

#[test]
fn unterminated_for_names_where_it_opened() {
    let d = scratch("unterminated-for");
    write(&d, "app.ini", "[uwsgi]\nfor = a b\nx = %(_)\n");
    let out = run(&d, &["--ini", "app.ini"]);
    assert_fails(&out, &["app.ini:2", "never closed"]);
}

#[test]
fn nested_logic_is_refused() {
    let d = scratch("nested-logic");
    write(
        &d,
        "app.ini",
        "[uwsgi]\nif-env = PATH\nfor = a b\nendfor =\n",
    );
    let out = run(&d, &["--ini", "app.ini"]);
    assert_fails(
        &out,
        &["app.ini:3", "recursive logic in options is not supported"],
    );
}

#[test]
fn yaml_syntax_error_names_the_line() {
    let d = scratch("yaml");
    write(
        &d,
        "app.yaml",
        "uwsgi:\n  master: true\n  this is not an option\n",
    );
    let out = run(&d, &["--yaml", "app.yaml"]);
    assert_fails(&out, &["app.yaml:3", "YAML"]);
}

#[test]
fn json_syntax_error_names_the_line() {
    let d = scratch("json");
    write(
        &d,
        "app.json",
        "{\n  \"uwsgi\": {\n    \"master\": true,\n    \"x\": \n  }\n}\n",
    );
    let out = run(&d, &["--json", "app.json"]);
    assert_fails(&out, &["app.json:5", "JSON"]);
}

#[test]
fn json_without_the_object_is_an_error() {
    let d = scratch("json-object");
    write(&d, "app.json", "{\"other\": {\"x\": 1}}");
    let out = run(&d, &["--json", "app.json"]);
    assert_fails(&out, &["app.json", "\"uwsgi\""]);
}

#[test]
fn xml_syntax_error_names_the_line() {
    let d = scratch("xml");
    write(
        &d,
        "app.xml",
        "<uwsgi>\n  <master>1</master>\n  <socket>/tmp/x</sock>\n</uwsgi>\n",
    );
    let out = run(&d, &["--xml", "app.xml"]);
    assert_fails(&out, &["app.xml:3", "XML"]);
}

#[test]
fn strict_mode_rejects_unknown_keys() {
    let d = scratch("strict");
    write(
        &d,
        "app.ini",
        "[uwsgi]\nstrict = true\nexec-as-user-at-exit = true\n",
    );
    let out = run(&d, &["--ini", "app.ini"]);
    assert_fails(
        &out,
        &[
            "app.ini:3",
            "[strict-mode] unknown config directive: exec-as-user-at-exit",
        ],
    );
}

#[test]
fn placeholder_named_like_an_option_is_refused() {
    let d = scratch("placeholder-option");
    write(&d, "app.ini", "[uwsgi]\nset-placeholder = socket=/x\n");
    let out = run(&d, &["--ini", "app.ini"]);
    assert_fails(
        &out,
        &["app.ini:2", "'socket'", "already available as an option"],
    );
}

#[test]
fn unknown_extension_for_a_bare_argument() {
    let d = scratch("bare-ext");
    write(&d, "app.conf", "[uwsgi]\n");
    let out = run(&d, &["app.conf"]);
    assert_fails(&out, &["app.conf", "unknown extension"]);
}

#[test]
fn empty_option_name_is_a_malformed_line() {
    let d = scratch("malformed");
    write(&d, "app.ini", "[uwsgi]\nmaster = true\n= orphan value\n");
    let out = run(&d, &["--ini", "app.ini"]);
    assert_fails(&out, &["app.ini:3", "malformed line"]);
}

#[test]
fn nothing_starts_after_an_error() {
    // The configuration says to print before the bad line: the print must not happen,
    // because nothing runs until the whole configuration is valid.
    let d = scratch("nothing-starts");
    write(
        &d,
        "app.ini",
        "[uwsgi]\nprint = started\nprocesses = lots\n",
    );
    let out = run(&d, &["--ini", "app.ini"]);
    assert_fails(&out, &["app.ini:3"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("started"));
}

#[test]
fn self_referencing_placeholder_is_an_error_not_a_hang() {
    let d = scratch("self-ref");
    write(&d, "app.ini", "[uwsgi]\nmaster = true\na = x %(a)\n");
    let out = run(&d, &["--ini", "app.ini"]);
    assert_fails(&out, &["app.ini:3", "option 'a'", "does not end"]);
}

#[test]
fn custom_option_that_expands_into_itself_is_an_error() {
    let d = scratch("custom-loop");
    write(
        &d,
        "app.ini",
        "[uwsgi]\ndeclare-option = a=b=$1\ndeclare-option = b=a=$1\na = 1\n",
    );
    let out = run(&d, &["--ini", "app.ini"]);
    assert_fails(&out, &["app.ini:4", "expands into itself", "a -> b -> a"]);
}

#[test]
fn inherit_cycle_is_an_error_not_a_hang() {
    let d = scratch("inherit-loop");
    write(
        &d,
        "app.ini",
        "[uwsgi]\nmaster = true\ninherit = base.ini\n",
    );
    write(&d, "base.ini", "[uwsgi]\nx = 1\ninherit = base.ini\n");
    let out = run(&d, &["--ini", "app.ini"]);
    assert_fails(&out, &["base.ini:3", "inherit cycle"]);
}

#[test]
fn endless_source_is_an_error_not_a_hang() {
    let d = scratch("dev-zero");
    write(&d, "app.ini", "[uwsgi]\nmaster = true\nx = @(/dev/zero)\n");
    let out = run(&d, &["--ini", "app.ini"]);
    assert_fails(&out, &["app.ini:3", "/dev/zero", "larger than"]);
}
