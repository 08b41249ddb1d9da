//! The Emperor's settings, read once from the resolved configuration. Option names and
//! aliases are looked up here and nowhere else; every duration is converted to a
//! [`Duration`] here, so the rest of the crate never wonders about units.

use crate::error::EmperorError;
use imperium_config::Config;
use std::time::Duration;

/// Everything the Emperor reads from its configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `emperor` (repeatable): monitor arguments, in order.
    pub monitors: Vec<String>,
    /// `emperor-freq`: full rescan period (default 3 s).
    pub freq: Duration,
    /// `emperor-throttle` (ms, default 1000): backoff step for vassals that die unloyal.
    pub throttle_ms: u64,
    /// `emperor-max-throttle` (ms, default 180000): backoff cap.
    pub max_throttle_ms: u64,
    /// `emperor-required-heartbeat` (default 30 s).
    pub heartbeat: Duration,
    /// `emperor-curse-tolerance` (default 30 s): how long a stopped vassal may linger.
    pub curse_tolerance: Duration,
    /// `reload-mercy` (default 30 s): Ragnarok's patience.
    pub reload_mercy: Duration,
    /// `emperor-no-blacklist`.
    pub no_blacklist: bool,
    /// `emperor-graceful-shutdown`: stop with byte 2 instead of 0.
    pub graceful_shutdown: bool,
    /// `binary-path` (default: this executable).
    pub binary_path: Option<String>,
    /// `emperor-wrapper`: replaces argv[0] (and the program).
    pub wrapper: Option<String>,
    pub vassal_set: Vec<String>,
    pub inherit_before: Vec<String>,
    pub include_before: Vec<String>,
    pub inherit: Vec<String>,
    pub include: Vec<String>,
    pub extra_extensions: Vec<String>,
    pub nofollow: bool,
    pub tyrant: bool,
    pub tyrant_nofollow: bool,
    pub magic_exec: bool,
    pub start_hook: Option<String>,
    pub stop_hook: Option<String>,
    pub exec_as_emperor: Vec<String>,
    pub exec_as_vassal: Vec<String>,
    /// The other `as-emperor` / `as-vassal` hooks (see hooks.rs).
    pub hook_as_emperor: Vec<String>,
    pub mount_as_emperor: Vec<String>,
    pub umount_as_emperor: Vec<String>,
    pub call_as_emperor: Vec<String>,
    pub call_as_emperor1: Vec<String>,
    pub call_as_emperor2: Vec<String>,
    pub call_as_emperor4: Vec<String>,
    pub hook_as_vassal: Vec<String>,
    pub mount_as_vassal: Vec<String>,
    pub umount_as_vassal: Vec<String>,
    pub call_as_vassal: Vec<String>,
    pub call_as_vassal1: Vec<String>,
    pub call_as_vassal3: Vec<String>,
    pub pidfile: Option<String>,
    pub procname: Option<String>,
    /// `emperor-stats` / `emperor-stats-server`.
    pub stats: Option<String>,
    pub stats_http: bool,
    /// `emperor-command-socket`.
    pub command_socket: Option<String>,
    /// `chmod-socket` for UNIX stats/command sockets (None: leave the umask's mode).
    pub chmod_socket: Option<u32>,
    pub on_demand_extension: Option<String>,
    pub on_demand_directory: Option<String>,
    pub on_demand_exec: Option<String>,
    /// `listen`: backlog of sockets the Emperor binds (default 100).
    pub listen: i32,
    /// `safe-fd`: descriptors vassals keep.
    pub safe_fds: Vec<i32>,
    /// `emperor-broodlord`: logged only until the broodlord issue.
    pub broodlord: i64,
    /// Tyrant mode, namespaces, capabilities and cgroups (see `isolation.rs`).
    pub isolation: crate::isolation::IsolationSettings,
}

/// Reads options through the Config's own lookups, which match the option's aliases too
/// (`fd-safe` for `safe-fd`); the last entry wins, as uWSGI applies options top to bottom.
/// What is added here is the Emperor's value rules and error messages.
struct Reader<'a>(&'a Config);

impl<'a> Reader<'a> {
    fn last(&self, name: &str) -> Option<&'a str> {
        self.0.get(name)
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .get_all(name)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    fn flag(&self, name: &str) -> bool {
        self.last(name)
            .is_some_and(imperium_config::options::parse_bool)
    }

    fn string(&self, name: &str) -> Option<String> {
        self.last(name).filter(|v| !v.is_empty()).map(str::to_owned)
    }

    fn int(&self, name: &str, default: i64) -> Result<i64, EmperorError> {
        match self.last(name) {
            None => Ok(default),
            Some(v) if v.trim().is_empty() => Ok(0),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| EmperorError::setting(name, format!("expects a number, got '{v}'"))),
        }
    }

    fn non_negative(&self, name: &str, default: i64) -> Result<u64, EmperorError> {
        let v = self.int(name, default)?;
        u64::try_from(v)
            .map_err(|_| EmperorError::setting(name, format!("must not be negative, got {v}")))
    }
}

impl Settings {
    /// Reads and checks every Emperor option.
    pub fn from_config(config: &Config) -> Result<Settings, EmperorError> {
        let r = Reader(config);
        let monitors = r.all("emperor");
        if monitors.is_empty() {
            return Err(EmperorError::setting("emperor", "no monitor given"));
        }
        // uWSGI treats 0 as "use the default" for these.
        let secs = |name: &str, default: u64| -> Result<Duration, EmperorError> {
            let v = r.non_negative(name, default as i64)?;
            Ok(Duration::from_secs(if v == 0 { default } else { v }))
        };
        let chmod_socket = match r.last("chmod-socket") {
            None => None,
            Some(v) if v.is_empty() || v == "1" || v.eq_ignore_ascii_case("true") => Some(0o666),
            Some(v) => Some(u32::from_str_radix(v, 8).map_err(|_| {
                EmperorError::setting("chmod-socket", format!("not an octal mode: '{v}'"))
            })?),
        };
        let mut safe_fds = Vec::new();
        for v in r.all("safe-fd") {
            safe_fds.push(v.trim().parse().map_err(|_| {
                EmperorError::setting("safe-fd", format!("not a descriptor number: '{v}'"))
            })?);
        }
        let throttle_ms = r.non_negative("emperor-throttle", 1000)?;
        let max_throttle_ms = r.non_negative("emperor-max-throttle", 180_000)?;
        Ok(Settings {
            monitors,
            freq: secs("emperor-freq", 3)?,
            throttle_ms,
            max_throttle_ms: max_throttle_ms.max(throttle_ms),
            heartbeat: secs("emperor-required-heartbeat", 30)?,
            curse_tolerance: secs("emperor-curse-tolerance", 30)?,
            reload_mercy: secs("reload-mercy", 30)?,
            no_blacklist: r.flag("emperor-no-blacklist"),
            graceful_shutdown: r.flag("emperor-graceful-shutdown"),
            binary_path: r.string("binary-path"),
            wrapper: r.string("emperor-wrapper"),
            vassal_set: r.all("vassal-set"),
            inherit_before: r.all("vassals-inherit-before"),
            include_before: r.all("vassals-include-before"),
            inherit: r.all("vassals-inherit"),
            include: r.all("vassals-include"),
            extra_extensions: r.all("emperor-extra-extension"),
            nofollow: r.flag("emperor-nofollow"),
            tyrant: r.flag("emperor-tyrant"),
            tyrant_nofollow: r.flag("emperor-tyrant-nofollow"),
            magic_exec: r.flag("emperor-magic-exec"),
            start_hook: r.string("vassals-start-hook"),
            stop_hook: r.string("vassals-stop-hook"),
            exec_as_emperor: r.all("exec-as-emperor"),
            exec_as_vassal: r.all("exec-as-vassal"),
            hook_as_emperor: r.all("hook-as-emperor"),
            mount_as_emperor: r.all("mount-as-emperor"),
            umount_as_emperor: r.all("umount-as-emperor"),
            call_as_emperor: r.all("call-as-emperor"),
            call_as_emperor1: r.all("call-as-emperor1"),
            call_as_emperor2: r.all("call-as-emperor2"),
            call_as_emperor4: r.all("call-as-emperor4"),
            hook_as_vassal: r.all("hook-as-vassal"),
            mount_as_vassal: r.all("mount-as-vassal"),
            umount_as_vassal: r.all("umount-as-vassal"),
            call_as_vassal: r.all("call-as-vassal"),
            call_as_vassal1: r.all("call-as-vassal1"),
            call_as_vassal3: r.all("call-as-vassal3"),
            pidfile: r.string("emperor-pidfile"),
            procname: r.string("emperor-procname"),
            stats: r.string("emperor-stats"),
            stats_http: r.flag("stats-http"),
            command_socket: r.string("emperor-command-socket"),
            chmod_socket,
            on_demand_extension: r.string("emperor-on-demand-extension"),
            on_demand_directory: r.string("emperor-on-demand-directory"),
            on_demand_exec: r.string("emperor-on-demand-exec"),
            listen: r.int("listen", 100)?.clamp(1, i32::MAX as i64) as i32,
            safe_fds,
            broodlord: r.int("emperor-broodlord", 0)?,
            isolation: crate::isolation::IsolationSettings::from_config(config)?,
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
    fn defaults() {
        let s = Settings::from_config(&cfg(&[("emperor", "/etc/uwsgi/vassals")])).unwrap();
        assert_eq!(s.freq, Duration::from_secs(3));
        assert_eq!(s.throttle_ms, 1000);
        assert_eq!(s.max_throttle_ms, 180_000);
        assert_eq!(s.heartbeat, Duration::from_secs(30));
        assert_eq!(s.curse_tolerance, Duration::from_secs(30));
        assert_eq!(s.reload_mercy, Duration::from_secs(30));
        assert_eq!(s.listen, 100);
    }

    #[test]
    fn aliases_and_lists() {
        let s = Settings::from_config(&cfg(&[
            ("emperor", "a"),
            ("emperor", "b"),
            ("vassal-set", "x=1"),
            ("vassals-set", "y=2"),
            ("emperor-stats", "127.0.0.1:1"),
            ("emperor-stats-server", "/tmp/s"),
            ("emperor-extra-ext", ".conf"),
        ]))
        .unwrap();
        assert_eq!(s.monitors, ["a", "b"]);
        assert_eq!(s.vassal_set, ["x=1", "y=2"]);
        assert_eq!(s.stats.as_deref(), Some("/tmp/s"));
        assert_eq!(s.extra_extensions, [".conf"]);
    }

    #[test]
    fn aliases_from_the_option_table() {
        let s = Settings::from_config(&cfg(&[
            ("emperor", "a"),
            ("fd-safe", "7"),
            ("chmod", "600"),
        ]))
        .unwrap();
        assert_eq!(s.safe_fds, [7]);
        assert_eq!(s.chmod_socket, Some(0o600));
    }

    #[test]
    fn bad_numbers() {
        assert!(
            Settings::from_config(&cfg(&[("emperor", "a"), ("emperor-freq", "often")])).is_err()
        );
        assert!(
            Settings::from_config(&cfg(&[("emperor", "a"), ("emperor-throttle", "-5")])).is_err()
        );
    }
}
