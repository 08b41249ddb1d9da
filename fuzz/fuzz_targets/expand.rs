//! The expansion passes on arbitrary text: `%(...)` placeholders (lookups and math),
//! `$(...)` environment references, and the `%X` magic-variable table.
//!
//! Input: `value` or `value\0config-name`. The value goes through the three expanders;
//! the config name (if any) refills the per-file magic slots (`fill_for_file`, which only
//! stats and canonicalises the path) before a second magic substitution.
#![no_main]

use imperium_config::expand::{MAX_EXPANDED_LEN, expand_value, placeholder, strtoll};
use imperium_config::magic::{MagicTable, ProcessFacts};
use libfuzzer_sys::fuzz_target;

/// Option values seen by `%(name)`; some contain references themselves.
fn option(name: &str) -> Option<String> {
    let v = match name {
        "a" => "1",
        "b" => "2",
        "n" => "-7",
        "big" => "9223372036854775807",
        "min" => "-9223372036854775808",
        "p" => "%(a)",
        "q" => "%(a + b)",
        "r" => "%(p)%(q)",
        // Self-referencing: expansion must stop with an error, not loop.
        "z" => "%(z)",
        "o" => "(",
        "c" => ")",
        "s" => "x y",
        "u" => "\u{e9}\u{1F600}",
        "h" => "%(",
        "e" => "",
        _ => return None,
    };
    Some(v.to_string())
}

/// The environment seen by `$(NAME)`.
fn env(name: &str) -> Option<String> {
    let v = match name {
        "HOME" => "/root",
        "X" => "$(HOME)",
        "Y" => "$(",
        "Z" => "%(a + b)",
        "E" => "",
        _ => return None,
    };
    Some(v.to_string())
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (value, name) = text.split_once('\0').unwrap_or((&text, ""));

    let _ = strtoll(value);

    // Each pass gives Ok(None) (unchanged), Ok(Some(new)) or Err (a runaway expansion).
    let dollar = expand_value(value, b'$', env);
    if !value.contains('$') {
        assert!(matches!(dollar, Ok(None)), "no '$' in the value but $-expansion changed it");
    }
    if let Ok(Some(v)) = &dollar {
        assert!(v.len() <= MAX_EXPANDED_LEN.max(value.len()), "$-expansion grew past its limit");
    }
    let after_env = match &dollar {
        Ok(Some(v)) => v.as_str(),
        _ => value,
    };
    let percent = expand_value(after_env, b'%', |k| placeholder(k, option));
    if !after_env.contains('%') {
        assert!(matches!(percent, Ok(None)), "no '%' in the value but %-expansion changed it");
    }
    if let Ok(Some(v)) = &percent {
        assert!(v.len() <= MAX_EXPANDED_LEN.max(after_env.len()), "%-expansion grew past its limit");
    }
    // The placeholder evaluator on its own (spaces make it a math pipeline).
    let _ = placeholder(value, option);

    let facts = ProcessFacts {
        cwd: "/tmp".into(),
        hostname: "host".into(),
        version: "0.1.0".into(),
        cpus: 2,
        uid: 0,
        user: Some("root".into()),
        gid: 0,
        group: None,
        binary: "/bin/true".into(),
        start_secs: 1,
        start_micros: 1_000_000,
    };
    let mut table = MagicTable::new(&facts);
    let out = table.substitute(value.as_bytes());
    if !value.contains('%') {
        assert_eq!(out, value.as_bytes(), "no '%' in the text but magic substitution changed it");
    }
    let _ = MagicTable::new(&ProcessFacts::default()).substitute(data);
    if !name.is_empty() && !name.contains('\0') {
        let _ = table.fill_for_file(name, "/tmp", "/bin/true");
        let _ = table.substitute(value.as_bytes());
    }
});
