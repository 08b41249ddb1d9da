//! Log encoders (`log-encoder`, `log-req-encoder`): a chain of transformations the log
//! master applies to each line before a logger writes it. `name[:logger][ args]`; with
//! `:logger` the encoder only applies to the logger of that name. Encoders: `prefix`,
//! `suffix`, `nl`, `format` and `json` (templates with `${msg}` (no newline), `${msgnl}`,
//! `${unix}`, `${micros}`, `${millis}`, `${strftime:FMT}`; `json` escapes the message).

use crate::sys::clock;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Prefix,
    Suffix,
    Nl,
    Format,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(String),
}

/// One configured encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoder {
    kind: Kind,
    args: String,
    use_for: Option<String>,
    parts: Vec<Part>,
}

/// Splits a template into text and `${var}` parts.
fn parse_template(t: &str) -> Vec<Part> {
    super::format::split_vars(t, "${", '}')
        .into_iter()
        .map(|(var, s)| if var { Part::Var(s) } else { Part::Text(s) })
        .collect()
}

impl Encoder {
    /// Parses `name[:logger][ args]`.
    pub fn parse(v: &str) -> Result<Encoder, String> {
        let (head, args) = v.split_once(' ').unwrap_or((v, ""));
        let (name, use_for) = match head.split_once(':') {
            Some((n, l)) => (n, Some(l.to_owned())),
            None => (head, None),
        };
        let kind = match name {
            "prefix" => Kind::Prefix,
            "suffix" => Kind::Suffix,
            "nl" => Kind::Nl,
            "format" => Kind::Format,
            "json" => Kind::Json,
            other => {
                return Err(format!(
                    "log encoder \"{other}\" not found (imperium has prefix, suffix, nl, format, json)"
                ));
            }
        };
        Ok(Encoder {
            parts: parse_template(args),
            kind,
            args: args.to_owned(),
            use_for,
        })
    }

    /// Whether it applies to the logger named `id` (`None`: an unnamed logger).
    pub fn applies_to(&self, id: Option<&str>) -> bool {
        match &self.use_for {
            None => true,
            Some(u) => id == Some(u.as_str()),
        }
    }

    /// Encodes one line.
    pub fn encode(&self, msg: &[u8]) -> Vec<u8> {
        match self.kind {
            Kind::Prefix => [self.args.as_bytes(), msg].concat(),
            Kind::Suffix => [msg, self.args.as_bytes()].concat(),
            Kind::Nl => [msg, b"\n"].concat(),
            Kind::Format | Kind::Json => {
                let json = self.kind == Kind::Json;
                let mut out = Vec::with_capacity(msg.len() + self.args.len());
                for p in &self.parts {
                    match p {
                        Part::Text(t) => out.extend_from_slice(t.as_bytes()),
                        Part::Var(v) => {
                            let m = |b: &[u8]| -> Vec<u8> {
                                if json {
                                    let s = serde_json::to_string(&String::from_utf8_lossy(b))
                                        .unwrap_or_default();
                                    s.as_bytes()[1..s.len() - 1].to_vec()
                                } else {
                                    b.to_vec()
                                }
                            };
                            match v.as_str() {
                                "msg" => out.extend(m(msg.strip_suffix(b"\n").unwrap_or(msg))),
                                "msgnl" => out.extend(m(msg)),
                                "unix" => {
                                    out.extend_from_slice(clock::now_secs().to_string().as_bytes())
                                }
                                "micros" => out
                                    .extend_from_slice(clock::now_micros().to_string().as_bytes()),
                                "millis" => out.extend_from_slice(
                                    (clock::now_micros() / 1000).to_string().as_bytes(),
                                ),
                                s => {
                                    if let Some(fmt) = s.strip_prefix("strftime:") {
                                        out.extend_from_slice(
                                            clock::strftime(fmt, clock::now_secs()).as_bytes(),
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
                out
            }
        }
    }
}

/// Runs a chain for the logger `id`.
pub fn apply(chain: &[Encoder], id: Option<&str>, msg: &[u8]) -> Vec<u8> {
    let mut cur = msg.to_vec();
    for e in chain.iter().filter(|e| e.applies_to(id)) {
        cur = e.encode(&cur);
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains() {
        let chain = vec![
            Encoder::parse("prefix [X] ").unwrap(),
            Encoder::parse("suffix <").unwrap(),
        ];
        assert_eq!(apply(&chain, None, b"hello\n"), b"[X] hello\n<");
        let j = vec![
            Encoder::parse("json {\"msg\":\"${msg}\",\"t\":${unix}}").unwrap(),
            Encoder::parse("nl").unwrap(),
        ];
        let out = String::from_utf8(apply(&j, None, b"a \"quoted\" line\n")).unwrap();
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(v["msg"], "a \"quoted\" line");
        assert!(out.ends_with("}\n"));
        let only = vec![Encoder::parse("prefix:a A").unwrap()];
        assert_eq!(apply(&only, None, b"x"), b"x");
        assert_eq!(apply(&only, Some("a"), b"x"), b"Ax");
        assert!(Encoder::parse("gzip").is_err());
    }
}
