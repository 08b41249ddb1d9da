//! The instance's settings, read once from the resolved configuration with uWSGI's
//! defaults. Every value is checked here, so a bad one stops the instance before anything
//! starts, with a message naming the option.

use crate::error::VassalError;
use imperium_config::Config;
use std::path::PathBuf;

/// The protocol a socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Uwsgi,
    Http,
    /// No parsing: the connection goes to the application's raw handler (`raw-socket`).
    Raw,
}

impl Protocol {
    /// The name shown in the stats (`proto`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Uwsgi => "uwsgi",
            Protocol::Http => "http",
            Protocol::Raw => "raw",
        }
    }

    /// Parses a `protocol` value.
    pub fn parse(v: &str) -> Option<Protocol> {
        match v.trim().to_ascii_lowercase().as_str() {
            "uwsgi" => Some(Protocol::Uwsgi),
            "http" | "http11" => Some(Protocol::Http),
            "raw" => Some(Protocol::Raw),
            _ => None,
        }
    }
}

/// One configured listening socket: the address as written and its protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketConf {
    /// The option it came from (`socket`, `uwsgi-socket`, `http-socket`).
    pub option: &'static str,
    pub name: String,
    pub protocol: Protocol,
    /// TCP_DEFER_ACCEPT on it (uWSGI's default; off with `no-defer-accept`, or for the
    /// address of an `undeferred-shared-socket`).
    pub defer_accept: bool,
}

/// Everything the instance reads from its configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub sockets: Vec<SocketConf>,
    /// The protocol of sockets adopted without a configured name (fd 0).
    pub default_protocol: Protocol,
    pub master: bool,
    pub processes: usize,
    /// Request threads per worker (`threads`).
    pub threads: usize,
    /// Load the applications in each worker after fork (`lazy-apps`, `lazy`).
    pub lazy_apps: bool,
    /// Largest request body accepted (`limit-post`, 0: no limit).
    pub limit_post: u64,
    pub harakiri: u64,
    pub harakiri_verbose: bool,
    pub max_requests: u64,
    pub min_worker_lifetime: u64,
    pub max_worker_lifetime: u64,
    pub die_on_term: bool,
    pub exit_on_reload: bool,
    pub need_app: bool,
    pub buffer_size: usize,
    pub max_vars: usize,
    pub socket_timeout: u64,
    pub listen: i32,
    /// `chmod-socket`: the mode for UNIX sockets (bare: 0666).
    pub chmod_socket: Option<u32>,
    pub chown_socket: Option<String>,
    pub abstract_socket: bool,
    pub reuse_port: bool,
    pub vacuum: bool,
    pub worker_reload_mercy: u64,
    pub reload_mercy: u64,
    pub pidfile: Option<PathBuf>,
    pub pidfile2: Option<PathBuf>,
    pub chdir: Option<PathBuf>,
    pub chdir2: Option<PathBuf>,
    pub env: Vec<String>,
    pub unenv: Vec<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub daemonize: Option<String>,
    pub logto: Option<String>,
    pub heartbeat: u64,
    pub stats: Option<String>,
    pub stats_http: bool,
    pub stats_minified: bool,
    pub disable_logging: bool,
    pub honour_stdin: bool,
    pub skip_zero: bool,
    pub check_interval: u64,
    pub touch_reload: Vec<PathBuf>,
    pub touch_workers_reload: Vec<PathBuf>,
    pub touch_chain_reload: Vec<PathBuf>,
    pub master_fifo: Vec<PathBuf>,
    pub idle: u64,
    pub die_on_idle: bool,
    pub vassal_sos_backlog: u64,
    /// `reload-on-rss`/`-as` and their evil forms.
    pub memory: crate::limits::MemoryLimits,
}

fn int(config: &Config, name: &str, default: i64, min: i64, max: i64) -> Result<i64, VassalError> {
    let v = config
        .int_or(name, default)
        .map_err(|e| VassalError::Config(e.to_string()))?;
    if v < min || v > max {
        return Err(VassalError::option(
            name,
            &v.to_string(),
            &format!("must be between {min} and {max}"),
        ));
    }
    Ok(v)
}

fn nonempty(config: &Config, name: &str) -> Option<String> {
    config
        .get(name)
        .map(str::to_owned)
        .filter(|v| !v.trim().is_empty())
}

fn paths(config: &Config, name: &str) -> Vec<PathBuf> {
    config
        .get_all(name)
        .into_iter()
        .filter(|v| !v.trim().is_empty())
        .map(PathBuf::from)
        .collect()
}

/// `shared-socket` (and `undeferred-shared-socket`): sockets bound before the privilege
/// drop like every socket here; `socket = =N` (any socket option) uses the Nth one's
/// address. An unknown index is fatal, as in uWSGI.
fn resolve_shared(config: &Config, sockets: &mut [SocketConf]) -> Result<(), VassalError> {
    let mut shared: Vec<(String, bool)> = Vec::new();
    for e in config.entries() {
        match imperium_config::options::lookup(&e.key).map(|s| s.canonical()) {
            Some("shared-socket") => shared.push((e.value.trim().to_owned(), true)),
            Some("undeferred-shared-socket") => shared.push((e.value.trim().to_owned(), false)),
            _ => {}
        }
    }
    for s in sockets.iter_mut() {
        if let Some(n) = s.name.strip_prefix('=') {
            let idx: usize = n.trim().parse().map_err(|_| {
                VassalError::option(s.option, &s.name, "invalid shared socket index")
            })?;
            let (name, deferred) = shared.get(idx).cloned().ok_or_else(|| {
                VassalError::option(
                    s.option,
                    &s.name,
                    &format!("unable to use shared socket {idx}"),
                )
            })?;
            s.name = name;
            s.defer_accept &= deferred;
        }
    }
    Ok(())
}

/// `chmod-socket`: bare (or `1`) means 0666; otherwise exactly three octal digits.
pub fn parse_chmod(v: &str) -> Option<u32> {
    let v = v.trim();
    if v.is_empty() || v == "1" || v.eq_ignore_ascii_case("true") {
        return Some(0o666);
    }
    if v.len() == 3 && v.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return u32::from_str_radix(v, 8).ok();
    }
    None
}

impl Settings {
    /// Reads and checks every setting.
    pub fn from_config(config: &Config) -> Result<Settings, VassalError> {
        let default_protocol = match config.get("protocol") {
            None => Protocol::Uwsgi,
            Some(p) => Protocol::parse(p).ok_or_else(|| {
                VassalError::option(
                    "protocol",
                    p,
                    "unable to find protocol (imperium speaks uwsgi, http and raw)",
                )
            })?,
        };
        let mut sockets = Vec::new();
        for e in config.entries() {
            let canonical = imperium_config::options::lookup(&e.key).map(|s| s.canonical());
            let (option, protocol) = match canonical {
                Some("socket") => ("socket", default_protocol),
                Some("uwsgi-socket") => ("uwsgi-socket", Protocol::Uwsgi),
                Some("http-socket") => ("http-socket", Protocol::Http),
                Some("raw-socket") => ("raw-socket", Protocol::Raw),
                _ => continue,
            };
            if e.value.trim().is_empty() {
                return Err(VassalError::option(
                    option,
                    &e.value,
                    "an empty socket address",
                ));
            }
            sockets.push(SocketConf {
                option,
                name: e.value.trim().to_owned(),
                protocol,
                defer_accept: !config.flag("no-defer-accept"),
            });
        }
        // `=N` names the Nth `shared-socket` (vassal helper).
        resolve_shared(config, &mut sockets)?;
        let chmod_socket = match config.last_entry("chmod-socket") {
            None => None,
            Some(e) => Some(parse_chmod(&e.value).ok_or_else(|| {
                VassalError::option(
                    "chmod-socket",
                    &e.value,
                    "expects three octal digits, such as 660 (or nothing for 666)",
                )
            })?),
        };
        let processes = (int(config, "processes", 1, 0, 65535)? as usize).max(1);
        Ok(Settings {
            sockets,
            default_protocol,
            master: config.flag("master"),
            processes,
            threads: int(config, "threads", 1, 0, 8192)?.max(1) as usize,
            lazy_apps: config.flag("lazy-apps") || config.flag("lazy"),
            limit_post: int(config, "limit-post", 0, 0, i64::MAX)? as u64,
            harakiri: int(config, "harakiri", 0, 0, i64::from(u32::MAX))? as u64,
            harakiri_verbose: config.flag("harakiri-verbose"),
            max_requests: int(config, "max-requests", 0, 0, i64::MAX)? as u64,
            min_worker_lifetime: int(config, "min-worker-lifetime", 10, 0, i64::from(u32::MAX))?
                as u64,
            max_worker_lifetime: int(config, "max-worker-lifetime", 0, 0, i64::from(u32::MAX))?
                as u64,
            die_on_term: config.flag("die-on-term"),
            exit_on_reload: config.flag("exit-on-reload"),
            need_app: config.flag("need-app"),
            buffer_size: int(config, "buffer-size", 4096, 1, 65535)? as usize,
            max_vars: int(config, "max-vars", 64, 1, 65535)? as usize,
            socket_timeout: int(config, "socket-timeout", 4, 1, 86400)? as u64,
            listen: int(config, "listen", 100, 1, i64::from(i32::MAX))? as i32,
            chmod_socket,
            chown_socket: nonempty(config, "chown-socket"),
            abstract_socket: config.flag("abstract-socket"),
            reuse_port: config.flag("reuse-port"),
            vacuum: config.flag("vacuum"),
            worker_reload_mercy: int(config, "worker-reload-mercy", 60, 0, i64::from(u32::MAX))?
                as u64,
            reload_mercy: int(config, "reload-mercy", 0, 0, i64::from(u32::MAX))? as u64,
            pidfile: nonempty(config, "pidfile").map(PathBuf::from),
            pidfile2: nonempty(config, "pidfile2").map(PathBuf::from),
            chdir: nonempty(config, "chdir").map(PathBuf::from),
            chdir2: nonempty(config, "chdir2").map(PathBuf::from),
            env: config
                .get_all("env")
                .into_iter()
                .map(str::to_owned)
                .collect(),
            unenv: config
                .get_all("unenv")
                .into_iter()
                .map(str::to_owned)
                .collect(),
            uid: nonempty(config, "uid"),
            gid: nonempty(config, "gid"),
            daemonize: nonempty(config, "daemonize"),
            logto: nonempty(config, "logto"),
            heartbeat: int(config, "heartbeat", 0, 0, i64::from(u32::MAX))? as u64,
            stats: nonempty(config, "stats"),
            stats_http: config.flag("stats-http"),
            stats_minified: config.flag("stats-minified"),
            disable_logging: config.flag("disable-logging"),
            honour_stdin: config.flag("honour-stdin"),
            skip_zero: config.flag("skip-zero"),
            check_interval: int(config, "check-interval", 1, 1, 3600)? as u64,
            touch_reload: paths(config, "touch-reload"),
            touch_workers_reload: paths(config, "touch-workers-reload"),
            touch_chain_reload: paths(config, "touch-chain-reload"),
            master_fifo: paths(config, "master-fifo"),
            idle: int(config, "idle", 0, 0, i64::from(u32::MAX))? as u64,
            die_on_idle: config.flag("die-on-idle"),
            vassal_sos_backlog: int(config, "vassal-sos-backlog", 0, 0, i64::from(u32::MAX))?
                as u64,
            memory: crate::limits::MemoryLimits::from_config(config),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        Config::from_pairs(pairs)
    }

    #[test]
    fn defaults_are_uwsgi_ones() {
        let s = Settings::from_config(&cfg(&[])).unwrap();
        assert_eq!(
            (s.processes, s.buffer_size, s.listen, s.socket_timeout),
            (1, 4096, 100, 4)
        );
        assert_eq!(
            (s.worker_reload_mercy, s.min_worker_lifetime, s.max_vars),
            (60, 10, 64)
        );
        assert!(!s.master && s.sockets.is_empty());
    }

    #[test]
    fn sockets_keep_their_order_and_protocol() {
        let s = Settings::from_config(&cfg(&[
            ("http-socket", ":8080"),
            ("socket", "/tmp/a.sock"),
            ("protocol", "http"),
            ("uwsgi-socket", "@abs"),
        ]))
        .unwrap();
        let got: Vec<(&str, Protocol)> = s
            .sockets
            .iter()
            .map(|c| (c.name.as_str(), c.protocol))
            .collect();
        assert_eq!(
            got,
            vec![
                (":8080", Protocol::Http),
                ("/tmp/a.sock", Protocol::Http),
                ("@abs", Protocol::Uwsgi)
            ]
        );
    }

    #[test]
    fn bad_values_name_the_option() {
        let e = Settings::from_config(&cfg(&[("chmod-socket", "rw")])).unwrap_err();
        assert!(e.to_string().contains("chmod-socket"), "{e}");
        let e = Settings::from_config(&cfg(&[("protocol", "fastcgi")])).unwrap_err();
        assert!(e.to_string().contains("protocol"), "{e}");
        let e = Settings::from_config(&cfg(&[("buffer-size", "70000")])).unwrap_err();
        assert!(e.to_string().contains("buffer-size"), "{e}");
    }

    #[test]
    fn chmod_forms() {
        assert_eq!(parse_chmod(""), Some(0o666));
        assert_eq!(parse_chmod("1"), Some(0o666));
        assert_eq!(parse_chmod("660"), Some(0o660));
        assert_eq!(parse_chmod("0660"), None);
        assert_eq!(parse_chmod("888"), None);
    }
}
