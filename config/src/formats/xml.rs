//! XML, as uWSGI's libxml2 loader reads it. With a `<uwsgi>` root, its child elements are
//! the options; with another root, the first `<uwsgi>` child whose `id` matches the asked
//! id (or that has no `id`) is used. An option's value is the content of its first child
//! node, untrimmed; an empty element means `1`. Children with an `id` that differs from the
//! asked id are skipped. The legacy `<app mountpoint=...>` element becomes `mount` + `app`.

use super::{Item, Parsed, SyntaxError};
use roxmltree::{Document, Node, NodeType};

fn first_child_content(n: Node) -> String {
    match n.first_child() {
        Some(c) => c.text().unwrap_or("").to_string(),
        None => String::new(),
    }
}

/// Parses `text`; `id` is the `:id` selector, if any.
pub fn parse(text: &[u8], id: Option<&str>) -> Result<Parsed, SyntaxError> {
    let s = std::str::from_utf8(text).map_err(|e| SyntaxError {
        line: 0,
        message: format!("XML is not valid UTF-8: {e}"),
    })?;
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = Document::parse_with_options(s, opts).map_err(|e| SyntaxError {
        line: e.pos().row as usize,
        message: format!("XML syntax error: {e}"),
    })?;
    let root = doc.root_element();
    let stanza = if root.tag_name().name() == "uwsgi" {
        Some(root)
    } else {
        root.children().filter(Node::is_element).find(|n| {
            n.tag_name().name() == "uwsgi"
                && match (id, n.attribute("id")) {
                    (Some(want), Some(have)) => want == have,
                    _ => true,
                }
        })
    };
    let mut out = Parsed::default();
    let Some(stanza) = stanza else { return Ok(out) };
    out.found = true;
    for node in stanza.children() {
        if let (Some(want), Some(have)) = (id, node.attribute("id"))
            && want != have
        {
            continue;
        }
        if node.node_type() != NodeType::Element {
            continue;
        }
        let line = doc.text_pos_at(node.range().start).row as usize;
        let name = node.tag_name().name();
        let mut push = |key: &str, value: String| {
            out.items.push(Item {
                key: key.into(),
                value,
                line,
            })
        };
        if name == "app" {
            if node.first_child().is_none() {
                push("app", String::new());
                continue;
            }
            let content = first_child_content(node);
            let value = match (node.attribute("mountpoint"), node.attribute("domain")) {
                (Some(mp), _) => format!("{mp}={content}"),
                (None, Some(d)) => format!("{d}|={content}"),
                _ => content,
            };
            push("mount", value);
            push("app", String::new());
        } else if node.first_child().is_some() {
            push(name, first_child_content(node));
        } else {
            push(name, "1".into());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_root() {
        let p = parse(
            b"<uwsgi>\n <socket>/tmp/a</socket>\n <master/>\n</uwsgi>",
            None,
        )
        .unwrap();
        let kv: Vec<_> = p
            .items
            .iter()
            .map(|i| (i.key.as_str(), i.value.as_str(), i.line))
            .collect();
        assert_eq!(kv, vec![("socket", "/tmp/a", 2), ("master", "1", 3)]);
    }

    #[test]
    fn stanza_by_id() {
        let p = parse(
            b"<cfg><uwsgi id=\"a\"><x>1</x></uwsgi><uwsgi id=\"b\"><x>2</x></uwsgi></cfg>",
            Some("b"),
        )
        .unwrap();
        assert_eq!(p.items[0].value, "2");
    }
}
