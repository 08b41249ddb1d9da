//! YAML, as uWSGI's built-in line parser reads it (not a general YAML parser, on purpose:
//! real uWSGI configs repeat keys to repeat options, which YAML libraries reject).
//!
//! `#` starts a comment anywhere in a line. A top-level `name:` line opens a section; deeper
//! lines are its members and read `key: value` (or `key:<TAB>value`). The first line back
//! at the section's depth, or a line starting with `[` or `{`, ends the section. Tabs and
//! CR count as eight columns of indentation.
//!
//! Two departures from uWSGI's built-in parser, both recorded in docs/compat.md: a bare
//! `key:` is an option with an empty value (uWSGI silently stops reading the file there),
//! and a bare `key:` followed by deeper `- item` lines repeats the option once per item
//! (as uWSGI builds linked with libyaml do). A member line with no `:` at all is a syntax
//! error instead of the silent end of the file.

use super::{Item, Parsed, SyntaxError, line_text};

fn depth(line: &str) -> usize {
    let mut d = 0;
    for c in line.chars() {
        match c {
            ' ' => d += 1,
            '\t' | '\r' => d += 8,
            _ => break,
        }
    }
    d
}

/// Parses `text` and returns the items of `section`.
pub fn parse(text: &[u8], section: &str) -> Result<Parsed, SyntaxError> {
    let mut out = Parsed::default();
    let mut current_depth = 0;
    let mut in_section = false;
    // A bare `key:` waiting for list items: (index of its item, its depth, items seen).
    let mut list: Option<(usize, usize, usize)> = None;
    for (idx, raw) in text.split(|&b| b == b'\n').enumerate() {
        let raw = match raw.iter().position(|&b| b == b'#') {
            Some(i) => &raw[..i],
            None => raw,
        };
        let line = line_text(raw);
        if line.is_empty() {
            continue;
        }
        let d = depth(&line);
        if d <= current_depth {
            current_depth = d;
            if in_section {
                return Ok(out);
            }
        } else if !in_section {
            continue;
        }
        let key = line.trim_start_matches([' ', '\t', '\r']);
        if key.is_empty() {
            continue;
        }
        if in_section
            && let Some(item) = key.strip_prefix('-')
            && let Some((item_idx, list_depth, seen)) = list
            && d > list_depth
        {
            let value = item.trim_matches([' ', '\t', '\r']).to_string();
            if seen == 0 {
                out.items[item_idx].value = value;
                out.items[item_idx].line = idx + 1;
            } else {
                let k = out.items[item_idx].key.clone();
                out.items.push(Item {
                    key: k,
                    value,
                    line: idx + 1,
                });
            }
            list = Some((item_idx, list_depth, seen + 1));
            continue;
        }
        list = None;
        if key.starts_with(['-', '[', '{']) {
            if in_section {
                return Ok(out);
            }
            continue;
        }
        if !in_section {
            if let Some(colon) = key.find(':')
                && &key[..colon] == section
            {
                in_section = true;
                out.found = true;
            }
            continue;
        }
        let sep = key.find(": ").or_else(|| key.find(":\t"));
        let Some(sep) = sep else {
            let bare = key.trim_end_matches([' ', '\t', '\r']);
            if let Some(k) = bare.strip_suffix(':') {
                out.items.push(Item {
                    key: k.trim_end_matches([' ', '\t']).to_string(),
                    value: String::new(),
                    line: idx + 1,
                });
                list = Some((out.items.len() - 1, d, 0));
                continue;
            }
            return Err(SyntaxError {
                line: idx + 1,
                message: format!("YAML: expected `key: value`, found `{bare}`"),
            });
        };
        let k = key[..sep].trim_end_matches([' ', '\t']);
        let v = key[sep + 2..]
            .trim_start_matches([' ', '\t', '\r'])
            .trim_end_matches([' ', '\t']);
        out.items.push(Item {
            key: k.to_string(),
            value: v.to_string(),
            line: idx + 1,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_and_comments() {
        let p = parse(
            b"# top\nuwsgi:\n  socket: /a # c\n  socket: /b\n  master: true\nother:\n  x: 1\n",
            "uwsgi",
        )
        .unwrap();
        let kv: Vec<_> = p
            .items
            .iter()
            .map(|i| (i.key.as_str(), i.value.as_str()))
            .collect();
        assert_eq!(
            kv,
            vec![("socket", "/a"), ("socket", "/b"), ("master", "true")]
        );
    }

    #[test]
    fn bare_key_is_an_empty_value() {
        let p = parse(b"uwsgi:\n  a: 1\n  endif:\n  b: 2\n", "uwsgi").unwrap();
        let kv: Vec<_> = p
            .items
            .iter()
            .map(|i| (i.key.as_str(), i.value.as_str()))
            .collect();
        assert_eq!(kv, vec![("a", "1"), ("endif", ""), ("b", "2")]);
    }

    #[test]
    fn block_lists_repeat_the_option() {
        let p = parse(
            b"uwsgi:\n  socket:\n    - /a\n    - /b\n  master: 1\n",
            "uwsgi",
        )
        .unwrap();
        let kv: Vec<_> = p
            .items
            .iter()
            .map(|i| (i.key.as_str(), i.value.as_str(), i.line))
            .collect();
        assert_eq!(
            kv,
            vec![("socket", "/a", 3), ("socket", "/b", 4), ("master", "1", 5)]
        );
    }

    #[test]
    fn member_without_colon_is_an_error() {
        assert_eq!(
            parse(b"uwsgi:\n  a: 1\n  oops\n", "uwsgi")
                .unwrap_err()
                .line,
            3
        );
    }
}
