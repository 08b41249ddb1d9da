//! The app table: WSGI callables loaded by `module`/`wsgi`, `wsgi-file` and `mount`, each
//! with its mountpoint; the first loaded is the default app. Request routing follows
//! uWSGI: `UWSGI_APPID`, else `SCRIPT_NAME` (after `manage-script-name`), must equal a
//! mountpoint exactly, else the default app serves (unless `no-default-app`).

use crate::options::PyOptions;
use crate::plog;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule};
use std::sync::Mutex;
use std::time::Instant;

/// One loaded application.
pub struct App {
    /// Without a trailing slash ('' for the root).
    pub mountpoint: String,
    pub callable: Py<PyAny>,
    pub startup_time: f64,
    pub name: String,
}

static APPS: Mutex<Vec<App>> = Mutex::new(Vec::new());
/// `python-raw`'s callable.
static RAW: Mutex<Option<Py<PyAny>>> = Mutex::new(None);

fn apps() -> std::sync::MutexGuard<'static, Vec<App>> {
    APPS.lock().unwrap_or_else(|p| p.into_inner())
}

/// How many apps are loaded.
pub fn count() -> usize {
    apps().len()
}

/// The mountpoints, in load order.
pub fn mountpoints() -> Vec<String> {
    apps().iter().map(|a| a.mountpoint.clone()).collect()
}

/// `(id, mountpoint, startup_time, callable repr)` of each app, for `uwsgi.workers()`.
pub fn describe(py: Python<'_>) -> Vec<(usize, String, f64, String)> {
    apps()
        .iter()
        .enumerate()
        .map(|(i, a)| {
            (
                i,
                a.mountpoint.clone(),
                a.startup_time,
                a.callable
                    .bind(py)
                    .repr()
                    .map(|r| r.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// The callable for app `id`.
pub fn callable(py: Python<'_>, id: usize) -> Option<Py<PyAny>> {
    apps().get(id).map(|a| a.callable.clone_ref(py))
}

/// Normalises a mountpoint: no trailing slash ('/' becomes '').
pub fn normalize(mp: &str) -> String {
    mp.trim_end_matches('/').to_string()
}

/// Picks the app for a request key (UWSGI_APPID or SCRIPT_NAME).
pub fn select(key: Option<&str>, no_default: bool) -> Option<usize> {
    let list = apps();
    if let Some(k) = key
        && let Some(i) = list.iter().position(|a| a.mountpoint == normalize(k))
    {
        return Some(i);
    }
    if no_default || list.is_empty() {
        None
    } else {
        Some(0)
    }
}

/// `manage-script-name`: the longest mountpoint that prefixes PATH_INFO at a segment
/// boundary; returns (SCRIPT_NAME, PATH_INFO) when one matches.
pub fn split_script_name(path_info: &str) -> Option<(String, String)> {
    if path_info.len() <= 1 {
        return None;
    }
    let list = apps();
    let mut best: Option<&str> = None;
    for a in list.iter() {
        let m = a.mountpoint.as_str();
        if m.is_empty() || !path_info.starts_with(m) {
            continue;
        }
        let next = path_info.as_bytes().get(m.len());
        if (next.is_none() || next == Some(&b'/')) && best.is_none_or(|b| m.len() > b.len()) {
            best = Some(m);
        }
    }
    best.map(|m| (m.to_string(), path_info[m.len()..].to_string()))
}

/// Resolves `name` or `name()` in a module namespace (a factory is called once).
fn resolve<'py>(module: &Bound<'py, PyAny>, name: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    let (attr, call) = match name.strip_suffix("()") {
        Some(a) => (a, true),
        None => (name, false),
    };
    let Ok(obj) = module.getattr(attr) else {
        return Ok(None);
    };
    let obj = if call { obj.call0()? } else { obj };
    Ok(Some(obj))
}

fn module_name_for_file(path: &str) -> String {
    let p = path.strip_suffix(".py").unwrap_or(path);
    format!("uwsgi_file_{}", p.replace(['.', '/', '-'], "_"))
}

/// Imports a file as a module (a directory as a package).
fn import_file<'py>(py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyAny>> {
    let name = module_name_for_file(path);
    // The import system's own frozen modules, already loaded: `importlib.util` would
    // bring `importlib`, `importlib._abc` and `contextlib` into every worker.
    let code = r#"
import _frozen_importlib as _fi, _frozen_importlib_external as _fe, os, sys
def _load(name, path):
    if os.path.isdir(path):
        path = os.path.join(path, '__init__.py')
    spec = _fe.spec_from_file_location(name, path)
    if spec is None:
        raise ImportError('unable to load python file %s' % path)
    mod = _fi.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return mod
"#;
    let ns = PyDict::new(py);
    py.run(
        &std::ffi::CString::new(code).unwrap_or_default(),
        Some(&ns),
        None,
    )?;
    let f = ns
        .get_item("_load")?
        .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("loader missing"))?;
    f.call1((name, path))
}

/// What to load for one app.
enum Spec {
    Module(String),
    File(String),
    /// A paste.deploy spec (`config:/path/app.ini`).
    Paste(String),
    /// Python code defining the callable (`eval`).
    Eval(String),
}

/// `paste.deploy.loadapp(spec)`.
fn load_paste<'py>(py: Python<'py>, spec: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    plog!("Loading paste environment: {spec}");
    let deploy = PyModule::import(py, "paste.deploy")?;
    let app = deploy.call_method1("loadapp", (spec,))?;
    if crate::state::get().opts.paste_logger {
        // uWSGI calls paste.script's fileConfig; the standard library's is the fallback.
        let file = spec.strip_prefix("config:").unwrap_or(spec);
        let config = PyModule::import(py, "paste.script.util.logging_config")
            .or_else(|_| PyModule::import(py, "logging.config"))?;
        config.call_method1("fileConfig", (file,))?;
    }
    Ok(Some(app))
}

/// Runs `code` as the module `uwsgi_eval_config` and takes its callable.
fn load_eval<'py>(
    py: Python<'py>,
    code: &str,
    callable: &str,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let c = std::ffi::CString::new(code)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    let m = PyModule::from_code(py, &c, c"uwsgi_eval_config", c"uwsgi_eval_config")?;
    resolve(m.as_any(), callable)
}

/// `uwsgi.applications`, else the module's own `applications`: a dict of mountpoint to a
/// callable or to the name of one in the module (uWSGI's multiapp modules).
fn multiapp<'py>(
    py: Python<'py>,
    module: &Bound<'py, PyAny>,
) -> Option<Vec<(String, Bound<'py, PyAny>)>> {
    let from_uwsgi = crate::state::uwsgi_module(py)
        .ok()
        .and_then(|m| m.getattr("applications").ok());
    let dict = [from_uwsgi, module.getattr("applications").ok()]
        .into_iter()
        .flatten()
        .find_map(|d| d.downcast_into::<PyDict>().ok())?;
    plog!("found a multiapp module...");
    let mut out = Vec::new();
    for (k, v) in dict.iter() {
        let Ok(mp) = k.extract::<String>() else {
            plog!("the app mountpoint must be a string");
            continue;
        };
        let callable = match v.extract::<String>() {
            Ok(name) => match resolve(module, &name) {
                Ok(Some(c)) => c,
                _ => {
                    plog!("skipping broken app {mp}");
                    continue;
                }
            },
            Err(_) => v,
        };
        out.push((mp, callable));
    }
    if out.is_empty() {
        plog!("you have to define at least one app in the applications dictionary");
    }
    Some(out)
}

/// Imports a module (or file) and takes its callable, or its multiapp dict's apps.
fn load_module<'py>(
    py: Python<'py>,
    module: PyResult<Bound<'py, PyAny>>,
    name: &str,
) -> PyResult<Loaded<'py>> {
    let module = module?;
    if let Some(apps) = multiapp(py, &module) {
        return Ok(Loaded::Many(apps));
    }
    Ok(Loaded::One(resolve(&module, name)?))
}

/// What a loader produced.
enum Loaded<'py> {
    One(Option<Bound<'py, PyAny>>),
    /// A multiapp module: (mountpoint, callable) pairs.
    Many(Vec<(String, Bound<'py, PyAny>)>),
}

fn load_one(py: Python<'_>, opts: &PyOptions, mountpoint: &str, spec: Spec) -> bool {
    let id = count();
    let start = Instant::now();
    let result: PyResult<Loaded<'_>> = match &spec {
        Spec::Module(m) => {
            let (module, name) = match m.split_once(':') {
                Some((m, c)) => (m, c.to_string()),
                None => (m.as_str(), opts.default_callable().to_string()),
            };
            load_module(
                py,
                PyModule::import(py, module).map(|m| m.into_any()),
                &name,
            )
        }
        Spec::File(f) => load_module(py, import_file(py, f), opts.default_callable()),
        Spec::Paste(p) => load_paste(py, p).map(Loaded::One),
        Spec::Eval(code) => load_eval(py, code, opts.default_callable()).map(Loaded::One),
    };
    let name = match &spec {
        Spec::Module(m) | Spec::File(m) | Spec::Paste(m) => m.clone(),
        Spec::Eval(_) => "eval".to_string(),
    };
    let result = match result {
        Ok(Loaded::Many(list)) => {
            let mut any = false;
            for (mp, callable) in list {
                let mp = normalize(&mp);
                if mountpoints().contains(&mp) {
                    plog!("mountpoint {mp} already configured. skip.");
                    continue;
                }
                if callable.is_callable() {
                    register(py, &mp, callable, start, name.clone());
                    any = true;
                } else {
                    plog!("skipping broken app {mp}");
                }
            }
            return any;
        }
        Ok(Loaded::One(c)) => Ok(c),
        Err(e) => Err(e),
    };
    let callable = match result {
        Ok(Some(c)) if c.is_callable() => c,
        Ok(_) => {
            if let Spec::File(f) = &spec {
                plog!("unable to find \"application\" callable in file {f}");
            }
            plog!(
                "unable to load app {id} (mountpoint='{mountpoint}') (callable not found or import error)"
            );
            return false;
        }
        Err(e) => {
            e.print(py);
            plog!(
                "unable to load app {id} (mountpoint='{mountpoint}') (callable not found or import error)"
            );
            return false;
        }
    };
    register(py, mountpoint, callable, start, name);
    true
}

/// Adds a loaded callable to the app table with uWSGI's `WSGI app N ... ready` line.
fn register(
    _py: Python<'_>,
    mountpoint: &str,
    callable: Bound<'_, PyAny>,
    start: Instant,
    name: String,
) {
    let id = count();
    let secs = start.elapsed().as_secs();
    let interp = crate::interp::main_address();
    let default = if id == 0 { " (default app)" } else { "" };
    plog!(
        "WSGI app {id} (mountpoint='{mountpoint}') ready in {secs} seconds on interpreter {interp:#x} pid: {}{default}",
        std::process::id()
    );
    apps().push(App {
        mountpoint: mountpoint.to_string(),
        callable: callable.unbind(),
        startup_time: start.elapsed().as_secs_f64(),
        name,
    });
}

/// `pymodule-alias` / `post-pymodule-alias` (`name=module` or `name=/path/file.py`): puts
/// the module under another name in `sys.modules`; false when one cannot be imported
/// (uWSGI exits then).
pub fn alias_modules(py: Python<'_>, aliases: &[String]) -> bool {
    for a in aliases {
        let Some((name, target)) = a.split_once('=') else {
            plog!("invalid pymodule-alias syntax");
            continue;
        };
        let module = if target.contains('/') {
            import_file(py, target)
        } else {
            PyModule::import(py, target).map(|m| m.into_any())
        };
        let set = module.and_then(|m| py.import("sys")?.getattr("modules")?.set_item(name, m));
        if let Err(e) = set {
            e.print(py);
            return false;
        }
        plog!("mapped virtual pymodule \"{name}\" to real pymodule \"{target}\"");
    }
    true
}

/// Loads every configured app: `import` modules, then `module`, `wsgi-file`, then the
/// mounts. Returns how many apps the table holds.
pub fn load_all(py: Python<'_>, opts: &PyOptions) -> usize {
    for m in &opts.imports {
        let r = if m.contains('/') || m.ends_with(".py") {
            import_file(py, m).map(|_| ())
        } else {
            PyModule::import(py, m.as_str()).map(|_| ())
        };
        if let Err(e) = r {
            e.print(py);
        }
    }
    if let Some(f) = &opts.python_raw {
        load_raw(py, opts, f);
    }
    if let Some(m) = &opts.module {
        load_one(py, opts, "", Spec::Module(m.clone()));
    }
    if let Some(f) = &opts.wsgi_file {
        load_one(py, opts, "", Spec::File(f.clone()));
    }
    if let Some(p) = &opts.paste {
        load_one(py, opts, "", Spec::Paste(p.clone()));
    }
    if let Some(code) = &opts.eval {
        load_one(py, opts, "", Spec::Eval(code.clone()));
    }
    for m in &opts.mounts {
        let Some((mp, app)) = m.split_once('=') else {
            plog!("invalid mountpoint: {m}");
            continue;
        };
        let mp = normalize(mp.trim());
        if mountpoints().contains(&mp) {
            plog!("mountpoint {mp} already configured. skip.");
            continue;
        }
        let app = app.trim();
        plog!(
            "mounting {app} on {}",
            if mp.is_empty() { "/" } else { &mp }
        );
        let spec = if app.starts_with("config:") || app.ends_with(".ini") {
            Spec::Paste(if app.starts_with("config:") {
                app.to_string()
            } else {
                format!("config:{app}")
            })
        } else if app.ends_with(".py")
            || app.ends_with(".wsgi")
            || (app.contains('/') && !app.contains(':'))
        {
            Spec::File(app.to_string())
        } else {
            Spec::Module(app.to_string())
        };
        load_one(py, opts, &mp, spec);
    }
    count()
}

/// `pyrun`/`python`/`py`: runs the script as `__main__` (with `sys.argv[0]` set to it) in
/// place of the worker's request loop, then ends the process with 0, as uWSGI's hijack
/// does (an exception is printed first).
pub fn pyrun(py: Python<'_>, script: &str) -> ! {
    let run = (|| -> PyResult<()> {
        let sys = py.import("sys")?;
        let argv = sys.getattr("argv")?;
        argv.set_item(0, script)?;
        py.import("runpy")?
            .call_method1("run_path", (script, py.None(), "__main__"))?;
        Ok(())
    })();
    if let Err(e) = run {
        if e.is_instance_of::<pyo3::exceptions::PySystemExit>(py) {
            let code = e
                .value(py)
                .getattr("code")
                .ok()
                .and_then(|c| c.extract::<i32>().ok())
                .unwrap_or(0);
            flush_stdio(py);
            std::process::exit(code);
        }
        e.print(py);
    }
    flush_stdio(py);
    std::process::exit(0)
}

fn flush_stdio(py: Python<'_>) {
    if let Ok(sys) = py.import("sys") {
        for s in ["stdout", "stderr"] {
            if let Ok(f) = sys.getattr(s) {
                let _ = f.call_method0("flush");
            }
        }
    }
}

/// `python-raw`: imports the file and keeps its callable (`callable`, default
/// `application`) for raw-socket connections.
fn load_raw(py: Python<'_>, opts: &PyOptions, file: &str) {
    match import_file(py, file).and_then(|m| resolve(&m, opts.default_callable())) {
        Ok(Some(c)) if c.is_callable() => {
            *RAW.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.unbind());
        }
        Ok(_) => plog!(
            "unable to find \"{}\" callable in file {file}",
            opts.default_callable()
        ),
        Err(e) => e.print(py),
    }
}

/// A raw-socket connection: `python-raw`'s callable is called with the descriptor (its
/// result is dropped; an exception is printed). -1 without a raw callable.
pub fn raw_request(py: Python<'_>, fd: i32) -> i32 {
    let Some(callable) = RAW
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|c| c.clone_ref(py))
    else {
        return -1;
    };
    if let Err(e) = callable.bind(py).call1((fd,)) {
        e.print(py);
    }
    0
}
