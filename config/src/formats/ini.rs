//! INI, as uWSGI reads it: `[section]` headers, `key = value` split at the first `=`,
//! spaces, tabs and CR trimmed around both, whole-line `;` and `#` comments only, no
//! quoting or escapes, a bare key meaning an empty value, every section with the asked
//! name read, keys before any header ignored.

use super::{Item, Parsed, SyntaxError, line_text};

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\r'
}

/// Parses `text` and returns the items of `section`. A line of the section with no key
/// (`= value`) is an error (uWSGI would add an option with an empty name).
pub fn parse(text: &[u8], section: &str) -> Result<Parsed, SyntaxError> {
    let mut out = Parsed::default();
    let mut current = String::new();
    for (idx, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = line_text(raw);
        let key = line.trim_matches(is_blank);
        if key.is_empty() {
            continue;
        }
        if let Some(rest) = key.strip_prefix('[') {
            // uWSGI drops the last character whatever it is (normally the `]`).
            let mut name = rest.to_string();
            name.pop();
            current = name;
            continue;
        }
        if key.starts_with(';') || key.starts_with('#') {
            continue;
        }
        if current != section {
            continue;
        }
        out.found = true;
        let (k, v) = match key.find('=') {
            Some(i) => (&key[..i], &key[i + 1..]),
            None => (key, ""),
        };
        let k = k.trim_end_matches(is_blank);
        if k.is_empty() {
            return Err(SyntaxError {
                line: idx + 1,
                message: format!("malformed line `{key}`: no option name before `=`"),
            });
        }
        out.items.push(Item {
            key: k.to_string(),
            value: v.trim_matches(is_blank).to_string(),
            line: idx + 1,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(p: &Parsed) -> Vec<(String, String)> {
        p.items
            .iter()
            .map(|i| (i.key.clone(), i.value.clone()))
            .collect()
    }

    #[test]
    fn reads_the_asked_section() {
        let p = parse(
            b"x=1\n[uwsgi]\nmaster\n a = b = c \r\n;c\n#c\n[other]\ny=2\n[uwsgi]\nz = 3 # kept",
            "uwsgi",
        )
        .unwrap();
        assert!(p.found);
        assert_eq!(
            kv(&p),
            vec![
                ("master".into(), "".into()),
                ("a".into(), "b = c".into()),
                ("z".into(), "3 # kept".into())
            ]
        );
        assert_eq!(p.items[1].line, 4);
    }

    #[test]
    fn missing_section_is_reported() {
        assert!(!parse(b"[a]\nx=1\n", "uwsgi").unwrap().found);
        assert_eq!(parse(b"[uwsgi]\n= v\n", "uwsgi").unwrap_err().line, 2);
    }
}
