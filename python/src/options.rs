//! The options the CPython plugin acts on, read from the instance's configuration entries
//! (aliases already folded by the vassal: `wsgi` arrives as `module`, `pp` as `pythonpath`).

use crate::host::Entry;

/// Every Python option the plugin implements.
#[derive(Debug, Clone, Default)]
pub struct PyOptions {
    pub module: Option<String>,
    pub wsgi_file: Option<String>,
    pub callable: Option<String>,
    pub mounts: Vec<String>,
    pub manage_script_name: bool,
    pub no_default_app: bool,
    pub ignore_script_name: bool,
    pub home: Option<String>,
    pub pythonpath: Vec<String>,
    pub pyargv: Option<String>,
    pub py_executable: Option<String>,
    pub py_programname: Option<String>,
    pub optimize: i32,
    pub no_site: bool,
    pub imports: Vec<String>,
    pub shared_imports: Vec<String>,
    pub post_buffering: u64,
    pub catch_exceptions: bool,
    pub disable_file_wrapper: bool,
    pub wsgi_env_behaviour: Option<String>,
    pub locks: u32,
    pub test: Option<String>,
    pub eval: Option<String>,
    pub paste: Option<String>,
    /// `paste-logger`: logging set up from the paste config file.
    pub paste_logger: bool,
    /// `python-raw`: a file whose callable handles raw-socket connections.
    pub python_raw: Option<String>,
    /// `python`/`py`/`pyrun`: a script run in the worker instead of serving.
    pub pyrun: Option<String>,
    /// `py-autoreload` interval in seconds (0: off).
    pub py_autoreload: u64,
    pub py_autoreload_ignore: Vec<String>,
    /// `py-tracebacker` socket path prefix.
    pub py_tracebacker: Option<String>,
    /// `read()` size while buffering a body (`post-buffering-bufsize`; 0: the default).
    pub post_buffering_bufsize: u64,
    /// `start_response-nodelay`: the head goes out when start_response is called.
    pub start_response_nodelay: bool,
    /// `wsgi-strict`: no fast path for a bare bytes result.
    pub wsgi_strict: bool,
    /// `wsgi-accept-buffer`: buffer-protocol objects are accepted as body chunks.
    pub wsgi_accept_buffer: bool,
    /// `reload-on-exception` and its `-type`/`-value`/`-repr` filters.
    pub reload_on_exception: bool,
    pub reload_on_exception_type: Vec<String>,
    pub reload_on_exception_value: Vec<String>,
    pub reload_on_exception_repr: Vec<String>,
    /// `pymodule-alias` and `post-pymodule-alias` (`name=module` or `name=/path`).
    pub pymodule_alias: Vec<String>,
    pub post_pymodule_alias: Vec<String>,
}

fn truthy(v: &str) -> bool {
    !(v.eq_ignore_ascii_case("false")
        || v.eq_ignore_ascii_case("off")
        || v.eq_ignore_ascii_case("no")
        || v == "0")
}

fn nonempty(v: &str) -> Option<String> {
    let t = v.trim();
    if t.is_empty() {
        None
    } else {
        Some(t.to_string())
    }
}

impl PyOptions {
    pub fn from_entries(entries: &[Entry]) -> PyOptions {
        let mut o = PyOptions::default();
        for e in entries {
            let v = e.value.as_str();
            match e.canonical.as_str() {
                "module" => o.module = nonempty(v),
                "wsgi-file" => o.wsgi_file = nonempty(v),
                "callable" => o.callable = nonempty(v),
                "mount" | "worker-mount" => o.mounts.extend(nonempty(v)),
                "manage-script-name" => o.manage_script_name = truthy(v),
                "no-default-app" => o.no_default_app = truthy(v),
                "ignore-script-name" => o.ignore_script_name = truthy(v),
                "home" => o.home = nonempty(v),
                "pythonpath" => o.pythonpath.extend(nonempty(v)),
                "pyargv" => o.pyargv = Some(v.to_string()),
                "py-executable" => o.py_executable = nonempty(v),
                "py-programname" => o.py_programname = nonempty(v),
                "optimize" => o.optimize = v.trim().parse().unwrap_or(0),
                "no-site" => o.no_site = truthy(v),
                "import" => o.imports.extend(nonempty(v)),
                "shared-import" => o.shared_imports.extend(nonempty(v)),
                "post-buffering" => o.post_buffering = v.trim().parse().unwrap_or(0),
                "catch-exceptions" => o.catch_exceptions = truthy(v),
                "wsgi-disable-file-wrapper" => o.disable_file_wrapper = truthy(v),
                "wsgi-env-behaviour" => o.wsgi_env_behaviour = nonempty(v),
                "locks" => o.locks = v.trim().parse().unwrap_or(0),
                "test" => o.test = nonempty(v),
                "eval" => o.eval = nonempty(v),
                "paste" => o.paste = nonempty(v),
                "paste-logger" => o.paste_logger = truthy(v),
                "python" => o.pyrun = nonempty(v),
                "python-raw" => o.python_raw = nonempty(v),
                "py-auto-reload" => o.py_autoreload = v.trim().parse().unwrap_or(0),
                "py-auto-reload-ignore" => o.py_autoreload_ignore.extend(nonempty(v)),
                "py-tracebacker" => o.py_tracebacker = nonempty(v),
                "post-buffering-bufsize" => {
                    o.post_buffering_bufsize = v.trim().parse().unwrap_or(0)
                }
                "wsgi-strict" => o.wsgi_strict = truthy(v),
                "start_response-nodelay" => o.start_response_nodelay = truthy(v),
                "wsgi-accept-buffer" => o.wsgi_accept_buffer = truthy(v),
                "reload-on-exception" => o.reload_on_exception = truthy(v),
                "reload-on-exception-type" => o.reload_on_exception_type.extend(nonempty(v)),
                "reload-on-exception-value" => o.reload_on_exception_value.extend(nonempty(v)),
                "reload-on-exception-repr" => o.reload_on_exception_repr.extend(nonempty(v)),
                "pymodule-alias" => o.pymodule_alias.extend(nonempty(v)),
                "post-pymodule-alias" => o.post_pymodule_alias.extend(nonempty(v)),
                _ => {}
            }
        }
        o
    }

    /// Whether an exception raised by an app recycles the worker (`reload-on-exception`,
    /// or a match of its class name, its value or its repr against the filters).
    pub fn exception_recycles(&self, class: &str, value: &str, repr: &str) -> bool {
        self.reload_on_exception
            || self.reload_on_exception_type.iter().any(|t| t == class)
            || self.reload_on_exception_value.iter().any(|t| t == value)
            || self.reload_on_exception_repr.iter().any(|t| t == repr)
    }

    /// The callable name used when a spec does not give one.
    pub fn default_callable(&self) -> &str {
        self.callable.as_deref().unwrap_or("application")
    }
}
