//! JSON, as uWSGI's jansson loader reads it: the object named by the section (default
//! `uwsgi`) holds the options, in document order; strings as they are, `true` -> `1`,
//! `false` and `null` -> `0`, integers in decimal, arrays -> one option per element;
//! reals and nested objects are ignored. A repeated key keeps its first position and its
//! last value.

use super::{Item, Parsed, SyntaxError};
use serde_json::Value;

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(true) => Some("1".into()),
        Value::Bool(false) | Value::Null => Some("0".into()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// Parses `text` and returns the items of the object `section`.
pub fn parse(text: &[u8], section: &str) -> Result<Parsed, SyntaxError> {
    let root: Value = serde_json::from_slice(text).map_err(|e| SyntaxError {
        line: e.line(),
        message: format!("JSON syntax error: {e}"),
    })?;
    let mut out = Parsed::default();
    let Some(Value::Object(obj)) = root.get(section) else {
        return Ok(out);
    };
    out.found = true;
    for (k, v) in obj {
        match v {
            Value::Array(items) => {
                for item in items {
                    if let Some(s) = scalar(item) {
                        out.items.push(Item {
                            key: k.clone(),
                            value: s,
                            line: 0,
                        });
                    }
                }
            }
            other => {
                if let Some(s) = scalar(other) {
                    out.items.push(Item {
                        key: k.clone(),
                        value: s,
                        line: 0,
                    });
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_map_like_uwsgi() {
        let p = parse(br#"{"uwsgi": {"a": "x", "b": true, "c": false, "d": null, "e": 3, "f": 1.5, "g": ["p", 2, true], "h": {"x": 1}}}"#, "uwsgi").unwrap();
        let kv: Vec<_> = p
            .items
            .iter()
            .map(|i| (i.key.as_str(), i.value.as_str()))
            .collect();
        assert_eq!(
            kv,
            vec![
                ("a", "x"),
                ("b", "1"),
                ("c", "0"),
                ("d", "0"),
                ("e", "3"),
                ("g", "p"),
                ("g", "2"),
                ("g", "1")
            ]
        );
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let e = parse(b"{\n\"uwsgi\": {\n\"a\": }\n}", "uwsgi").unwrap_err();
        assert_eq!(e.line, 3);
    }
}
