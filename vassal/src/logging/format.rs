//! Request log lines: uWSGI's default line and `log-format`/`logformat` templates with its
//! `%(name)` variables. Both take a [`RequestFacts`], a plain record of what happened, so
//! any request path (the protocol handlers, an application host) can produce the line.
//!
//! Variables: `uri method user addr host proto uagent referer` (request fields), `status
//! micros msecs secs time ctime ltime ftime epoch tmsecs tmicros size rsize hsize cl pid
//! wid switches vars headers core vsz rss vszM rssM pktsize modifier1 modifier2 rerr werr
//! ioerr`, `var.NAME` (any request variable), `metric.NAME` (no metrics yet: `-`), and
//! any other name is a logvar set by the application (or `-`). An empty value prints `-`.

use crate::proto::Vars;
use crate::sys::clock;

/// What a request log line is made of.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub vars: &'a Vars,
    /// Application-set log variables (`uwsgi.set_logvar`).
    pub logvars: &'a [(String, String)],
    /// Size of the request's variable block (uwsgi `pktsize`).
    pub pktsize: usize,
    pub modifier1: u8,
    pub modifier2: u8,
    pub status: u16,
    /// Unix micros at the start and the end of the request.
    pub start_micros: u64,
    pub end_micros: u64,
    /// Response body bytes and response head bytes.
    pub body_size: u64,
    pub headers_size: u64,
    pub header_count: usize,
    /// Application id (`-1`: none) and its request count.
    pub app_id: i64,
    pub app_requests: i64,
    /// Requests served by the whole instance (uWSGI prints the total).
    pub total_requests: u64,
    pub worker_id: usize,
    pub core: usize,
    pub switches: u64,
    pub read_errors: u64,
    pub write_errors: u64,
}

impl RequestFacts<'_> {
    fn var(&self, name: &str) -> String {
        self.vars.get_str(name.as_bytes()).unwrap_or_default()
    }

    /// The client address; with `xff`, the X-Forwarded-For header when there is one.
    pub fn addr(&self, xff: bool) -> String {
        match self.vars.get_str(b"HTTP_X_FORWARDED_FOR") {
            Some(v) if xff && !v.is_empty() => v,
            _ => self.var("REMOTE_ADDR"),
        }
    }

    fn elapsed(&self) -> u64 {
        self.end_micros.saturating_sub(self.start_micros)
    }
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Chunk {
    Text(String),
    Var(String),
}

/// A parsed `log-format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFormat {
    chunks: Vec<Chunk>,
    /// `logformat-strftime`: `ftime` uses the `log-date` format.
    strftime: Option<String>,
    /// `log-x-forwarded-for`: `addr` is the X-Forwarded-For header when there is one.
    pub xff: bool,
}

impl LogFormat {
    /// Parses a template: `%(name)` is a variable, everything else is literal.
    pub fn parse(template: &str, strftime: Option<String>) -> LogFormat {
        let chunks = split_vars(template, "%(", ')')
            .into_iter()
            .map(|(var, t)| if var { Chunk::Var(t) } else { Chunk::Text(t) })
            .collect();
        LogFormat {
            chunks,
            strftime,
            xff: false,
        }
    }

    /// The line for `f`, with its newline.
    pub fn render(&self, f: &RequestFacts<'_>) -> String {
        let mut out = String::with_capacity(128);
        for c in &self.chunks {
            match c {
                Chunk::Text(t) => out.push_str(t),
                Chunk::Var(name) => {
                    let v = self.value(name, f);
                    out.push_str(if v.is_empty() { "-" } else { &v });
                }
            }
        }
        out.push('\n');
        out
    }

    fn value(&self, name: &str, f: &RequestFacts<'_>) -> String {
        let start_secs = f.start_micros / 1_000_000;
        let mem = || memory();
        match name {
            "uri" => f.var("REQUEST_URI"),
            "method" => f.var("REQUEST_METHOD"),
            "user" => f.var("REMOTE_USER"),
            "addr" => f.addr(self.xff),
            "host" => f.var("HTTP_HOST"),
            "proto" => f.var("SERVER_PROTOCOL"),
            "uagent" => f.var("HTTP_USER_AGENT"),
            "referer" => f.var("HTTP_REFERER"),
            "status" => f.status.to_string(),
            "micros" => f.elapsed().to_string(),
            "msecs" => (f.elapsed() / 1000).to_string(),
            "secs" => format!("{:.6}", f.elapsed() as f64 / 1_000_000.0),
            "time" => start_secs.to_string(),
            "tmsecs" => (f.start_micros / 1000).to_string(),
            "tmicros" => f.start_micros.to_string(),
            "ctime" => clock::ctime(start_secs),
            "ltime" => clock::strftime("%d/%b/%Y:%H:%M:%S %z", start_secs),
            "ftime" => match &self.strftime {
                Some(fmt) => clock::strftime(fmt, start_secs),
                None => clock::strftime("%d/%b/%Y:%H:%M:%S %z", start_secs),
            },
            "epoch" => clock::now_secs().to_string(),
            "size" => (f.body_size + f.headers_size).to_string(),
            "rsize" => f.body_size.to_string(),
            "hsize" => f.headers_size.to_string(),
            "cl" => f
                .var("CONTENT_LENGTH")
                .trim()
                .parse::<u64>()
                .unwrap_or(0)
                .to_string(),
            "pid" => std::process::id().to_string(),
            "wid" => f.worker_id.to_string(),
            "switches" => f.switches.to_string(),
            "vars" => (f.vars.len() * 2).to_string(),
            "headers" => f.header_count.to_string(),
            "core" => f.core.to_string(),
            "vsz" => mem().0.to_string(),
            "rss" => mem().1.to_string(),
            "vszM" => (mem().0 / 1024 / 1024).to_string(),
            "rssM" => (mem().1 / 1024 / 1024).to_string(),
            "pktsize" => f.pktsize.to_string(),
            "modifier1" => f.modifier1.to_string(),
            "modifier2" => f.modifier2.to_string(),
            "rerr" => f.read_errors.to_string(),
            "werr" => f.write_errors.to_string(),
            "ioerr" => (f.read_errors + f.write_errors).to_string(),
            n => {
                if let Some(v) = n.strip_prefix("var.") {
                    f.var(v)
                } else if n.starts_with("metric.") {
                    String::new()
                } else {
                    f.logvars
                        .iter()
                        .find(|(k, _)| k == n)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                }
            }
        }
    }
}

/// Splits a template into literal text (`false`) and variable names (`true`) written
/// `<open>name<close>` (`%(name)`, `${name}`); an unclosed opener stays literal.
pub fn split_vars(template: &str, open: &str, close: char) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find(open) {
        let Some(len) = rest[start + open.len()..].find(close) else {
            break;
        };
        if start > 0 {
            out.push((false, rest[..start].to_owned()));
        }
        out.push((
            true,
            rest[start + open.len()..start + open.len() + len].to_owned(),
        ));
        rest = &rest[start + open.len() + len + close.len_utf8()..];
    }
    if !rest.is_empty() {
        out.push((false, rest.to_owned()));
    }
    out
}

/// This process's (vsz, rss) in bytes, from /proc/self/statm.
pub fn memory() -> (u64, u64) {
    let page = 4096u64;
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let mut it = s.split_whitespace().map(|v| v.parse::<u64>().unwrap_or(0));
    (it.next().unwrap_or(0) * page, it.next().unwrap_or(0) * page)
}

/// uWSGI's default request line (`log-micros`: the time in microseconds), with its newline.
pub fn default_line(f: &RequestFacts<'_>, micros: bool, xff: bool) -> String {
    let (t, unit) = if micros {
        (f.elapsed(), "micros")
    } else {
        (f.elapsed() / 1000, "msecs")
    };
    format!(
        "[pid: {}|app: {}|req: {}/{}] {} ({}) {{{} vars in {} bytes}} [{}] {} {} => generated {} bytes in {t} {unit} ({} {}) {} headers in {} bytes ({} switches on core {})\n",
        std::process::id(),
        f.app_id,
        f.app_requests,
        f.total_requests,
        f.addr(xff),
        f.var("REMOTE_USER"),
        f.vars.len() * 2,
        f.pktsize,
        clock::ctime(f.start_micros / 1_000_000),
        f.var("REQUEST_METHOD"),
        f.var("REQUEST_URI"),
        f.body_size,
        f.var("SERVER_PROTOCOL"),
        f.status,
        f.header_count,
        f.headers_size,
        f.switches,
        f.core,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(vars: &Vars) -> RequestFacts<'_> {
        RequestFacts {
            vars,
            logvars: &[],
            pktsize: 100,
            modifier1: 0,
            modifier2: 0,
            status: 200,
            start_micros: 1_700_000_000_000_000,
            end_micros: 1_700_000_000_002_500,
            body_size: 11,
            headers_size: 40,
            header_count: 2,
            app_id: 0,
            app_requests: 1,
            total_requests: 1,
            worker_id: 1,
            core: 0,
            switches: 0,
            read_errors: 0,
            write_errors: 0,
        }
    }

    #[test]
    fn template_variables() {
        let mut v = Vars::with_capacity(64);
        v.push(b"REQUEST_METHOD", b"GET");
        v.push(b"REQUEST_URI", b"/x?a=1");
        v.push(b"SERVER_PROTOCOL", b"HTTP/1.1");
        v.push(b"PATH_INFO", b"/x");
        let f = LogFormat::parse(
            "\"%(method) %(uri) %(proto)\" %(status) %(var.PATH_INFO) %(size) %(msecs)/%(micros) %(user) %(nope) %(",
            None,
        );
        assert_eq!(
            f.render(&facts(&v)),
            "\"GET /x?a=1 HTTP/1.1\" 200 /x 51 2/2500 - - %(\n"
        );
        let lv = [("foo".to_owned(), "bar".to_owned())];
        let mut fa = facts(&v);
        fa.logvars = &lv;
        assert_eq!(
            LogFormat::parse("%(foo)%(vars)", None).render(&fa),
            "bar8\n"
        );
    }

    #[test]
    fn default_line_shape() {
        let mut v = Vars::with_capacity(64);
        v.push(b"REQUEST_METHOD", b"GET");
        v.push(b"REMOTE_ADDR", b"127.0.0.1");
        let l = default_line(&facts(&v), false, false);
        assert!(
            l.starts_with(&format!(
                "[pid: {}|app: 0|req: 1/1] 127.0.0.1 () {{4 vars in 100 bytes}} [",
                std::process::id()
            )),
            "{l}"
        );
        assert!(l.ends_with("] GET  => generated 11 bytes in 2 msecs ( 200) 2 headers in 40 bytes (0 switches on core 0)\n"), "{l}");
        assert!(default_line(&facts(&v), true, false).contains("in 2500 micros"));
    }
}
