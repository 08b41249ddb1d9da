//! The command line, parsed the way uWSGI's `getopt_long` call parses it: `--name value`,
//! `--name=value`, unambiguous prefixes of long names, clustered short flags (`-Mp 4`),
//! optional arguments only after `=`, `--` to end options, and non-option words (config
//! files) taken after every option, in order.

use crate::builder::{Builder, Halt};
use crate::entry::Origin;
use crate::error::ConfigError;
use crate::options::{self, Arg};

/// Parses `args` (argv without the program name) into `b`.
pub(crate) fn parse(b: &mut Builder, args: &[String]) -> Result<(), Halt> {
    let mut bare: Vec<(usize, String)> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let word = &args[i];
        let origin = Origin::CommandLine { index: i + 1 };
        if word == "--" {
            bare.extend(
                args[i + 1..]
                    .iter()
                    .cloned()
                    .enumerate()
                    .map(|(k, w)| (i + 2 + k, w)),
            );
            break;
        }
        if let Some(long) = word.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let (full, arg) = resolve_long(b, name, &origin)?;
            let value = match arg {
                Arg::Required => match inline {
                    Some(v) => Some(v),
                    None => {
                        i += 1;
                        match args.get(i) {
                            Some(v) => Some(v.clone()),
                            None => {
                                return Err(ConfigError::at(
                                    origin,
                                    format!("option '--{full}' requires an argument"),
                                )
                                .into());
                            }
                        }
                    }
                },
                Arg::None => {
                    if inline.is_some() {
                        return Err(ConfigError::at(
                            origin,
                            format!("option '--{full}' doesn't allow an argument"),
                        )
                        .into());
                    }
                    None
                }
                Arg::Optional => inline,
            };
            b.add(full, value, false, false, origin)?;
        } else if word.len() > 1 && word.starts_with('-') {
            let chars: Vec<char> = word[1..].chars().collect();
            let mut k = 0;
            while k < chars.len() {
                let c = chars[k];
                let Some(spec) = options::lookup_short(c) else {
                    return Err(ConfigError::at(
                        origin,
                        format!("unknown option '-{c}' (see --help)"),
                    )
                    .into());
                };
                let rest: String = chars[k + 1..].iter().collect();
                let value = match spec.arg {
                    Arg::None => None,
                    Arg::Optional => {
                        k = chars.len();
                        (!rest.is_empty()).then_some(rest)
                    }
                    Arg::Required => {
                        k = chars.len();
                        if !rest.is_empty() {
                            Some(rest)
                        } else {
                            i += 1;
                            match args.get(i) {
                                Some(v) => Some(v.clone()),
                                None => {
                                    return Err(ConfigError::at(
                                        origin,
                                        format!(
                                            "option '-{c}' ({}) requires an argument",
                                            spec.name
                                        ),
                                    )
                                    .into());
                                }
                            }
                        }
                    }
                };
                b.add(spec.name.to_string(), value, false, false, origin.clone())?;
                k += 1;
            }
        } else {
            bare.push((i + 1, word.clone()));
        }
        i += 1;
    }
    for (index, word) in bare {
        if word.starts_with('[') {
            continue;
        }
        b.load_template(&word, &Origin::CommandLine { index })?;
    }
    Ok(())
}

/// Finds the long option `name` names: an exact name, or a prefix that names one option
/// only (several names of one setting count as one).
fn resolve_long(b: &Builder, name: &str, origin: &Origin) -> Result<(String, Arg), Halt> {
    if let Some(found) = b.cli_option(name) {
        return Ok(found);
    }
    let mut candidates: Vec<String> = options::all()
        .iter()
        .filter(|o| o.name.starts_with(name))
        .map(|o| o.name.to_string())
        .collect();
    candidates.extend(b.custom_names().into_iter().filter(|n| n.starts_with(name)));
    if name.is_empty() || candidates.is_empty() {
        return Err(ConfigError::at(
            origin.clone(),
            format!("unknown option '--{name}' (see --help)"),
        )
        .into());
    }
    let first = candidates[0].clone();
    let same_setting = |n: &str| {
        let a = options::lookup(n).map(|o| (o.canonical(), o.arg));
        let f = options::lookup(&first).map(|o| (o.canonical(), o.arg));
        a.is_some() && a == f
    };
    if candidates.len() == 1 || candidates.iter().all(|c| same_setting(c)) {
        return b.cli_option(&first).ok_or_else(|| {
            ConfigError::at(origin.clone(), format!("unknown option '--{name}'")).into()
        });
    }
    candidates.truncate(6);
    Err(ConfigError::at(
        origin.clone(),
        format!(
            "option '--{name}' is ambiguous; possibilities: {}",
            candidates
                .iter()
                .map(|c| format!("--{c}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    )
    .into())
}

#[cfg(test)]
mod tests {
    use crate::{Invocation, load};

    fn show(args: &[&str]) -> Result<Vec<(String, String)>, String> {
        let inv = Invocation {
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![],
            binary: "/bin/true".into(),
        };
        load(&inv)
            .map(|l| {
                l.config
                    .entries()
                    .iter()
                    .map(|e| (e.key.clone(), e.value.clone()))
                    .collect()
            })
            .map_err(|e| e.to_string())
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn long_forms_and_short_clusters() {
        assert_eq!(
            show(&["--socket", "/a", "--socket=/b", "-Mp", "4", "-s/c"]).unwrap(),
            pairs(&[
                ("socket", "/a"),
                ("socket", "/b"),
                ("master", "true"),
                ("processes", "4"),
                ("socket", "/c")
            ])
        );
    }

    #[test]
    fn unique_prefixes_are_accepted() {
        assert_eq!(
            show(&["--show-conf"]).unwrap(),
            pairs(&[("show-config", "true")])
        );
        assert!(show(&["--sock", "x"]).unwrap_err().contains("ambiguous"));
    }

    #[test]
    fn custom_options_work_on_the_command_line_and_by_prefix() {
        let got = show(&["--declare-option", "myapp=set=a=$1", "--myap", "v"]).unwrap();
        // The template's `set=a=$1` runs `set` (an immediate option), which exports `a`.
        assert_eq!(
            got,
            pairs(&[
                ("declare-option", "myapp=set=a=$1"),
                ("myapp", "v"),
                ("a", "v")
            ])
        );
    }

    #[test]
    fn flags_refuse_values_and_required_arguments_are_required() {
        assert!(
            show(&["--master=1"])
                .unwrap_err()
                .contains("doesn't allow an argument")
        );
        assert!(
            show(&["--socket"])
                .unwrap_err()
                .contains("requires an argument")
        );
    }

    #[test]
    fn double_dash_ends_options() {
        let e = show(&["--", "--not-an-option.ini"]).unwrap_err();
        assert!(e.contains("--not-an-option.ini"), "{e}");
    }
}
