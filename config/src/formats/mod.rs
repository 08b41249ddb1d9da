//! The four configuration formats. Each parser turns the (magic-expanded) text of one
//! source into `key = value` items for one section, with their line numbers, exactly as
//! uWSGI's own parser for that format reads it.

pub mod ini;
pub mod json;
pub mod xml;
pub mod yaml;

/// One option read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub key: String,
    pub value: String,
    /// 1-based line number (0 when the format has no lines to point at).
    pub line: usize,
}

/// The result of parsing one source for one section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub items: Vec<Item>,
    /// False when the asked section does not exist (a warning for INI, an error elsewhere).
    pub found: bool,
}

/// A syntax error, with the 1-based line (and column when known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// Which parser reads a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ini,
    Xml,
    Yaml,
    Json,
}

impl Format {
    /// The format a bare path or `include` picks by its extension.
    pub fn from_extension(path: &str) -> Option<Format> {
        if path.ends_with(".ini") {
            Some(Format::Ini)
        } else if path.ends_with(".xml") {
            Some(Format::Xml)
        } else if path.ends_with(".yaml") || path.ends_with(".yml") {
            Some(Format::Yaml)
        } else if path.ends_with(".json") || path.ends_with(".js") {
            Some(Format::Json)
        } else {
            None
        }
    }

    /// The name used in log lines (`getting INI configuration from ...`).
    pub fn label(self) -> &'static str {
        match self {
            Format::Ini => "INI",
            Format::Xml => "XML",
            Format::Yaml => "YAML",
            Format::Json => "JSON",
        }
    }
}

/// Lossless enough for configs: invalid UTF-8 is replaced, and a NUL byte ends the line
/// as it does for uWSGI's C parsers.
pub(crate) fn line_text(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}
