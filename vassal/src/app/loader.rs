//! Finding and loading plugin shared objects. A name such as `python3` or `python311` is
//! looked up in the `plugins-dir` directories, then beside the binary (and in its
//! `plugins/` subdirectory), then in the compiled-in default
//! (`IMPERIUM_PLUGINS_DIR` at build time, else `/usr/lib/imperium/plugins`). In each
//! directory the file is `<name>_plugin.so` or `lib<name>_plugin.so`; a generic name
//! (`python`, `python3`) also matches a versioned file (`python311_plugin.so`) and the
//! artifact cargo builds (`libimperium_python.so`), and the plugin's reported version must
//! match what the name asks for. The object is opened `RTLD_NOW | RTLD_GLOBAL`, so the C
//! extension modules the plugin's runtime loads later find libpython's symbols.

use super::abi::{self, Plugin};
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

/// The compiled-in plugin directory.
pub const DEFAULT_DIR: &str = match option_env!("IMPERIUM_PLUGINS_DIR") {
    Some(d) => d,
    None => "/usr/lib/imperium/plugins",
};

/// The name cargo gives the CPython plugin it builds.
pub const CARGO_ARTIFACT: &str = "libimperium_python.so";

/// A plugin request split into language and version digits: `python311` -> ("python", "311").
pub fn split_name(name: &str) -> (String, String) {
    let base = name.strip_suffix(".so").unwrap_or(name);
    let base = base.strip_suffix("_plugin").unwrap_or(base);
    let lang: String = base.chars().take_while(|c| !c.is_ascii_digit()).collect();
    let digits: String = base[lang.len()..]
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    (lang, digits)
}

/// True for names of the Python plugin (`python`, `python3`, `python311`, `python3.11`).
pub fn is_python(name: &str) -> bool {
    let (lang, _) = split_name(
        Path::new(name)
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or(name),
    );
    lang == "python" || lang == "libpython" || lang == "libimperium_python"
}

/// Every directory searched, in order.
pub fn search_dirs(plugins_dirs: &[String]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = plugins_dirs
        .iter()
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .collect();
    if let Ok(exe) = std::env::current_exe()
        && let Some(d) = exe.parent()
    {
        dirs.push(d.to_path_buf());
        dirs.push(d.join("plugins"));
    }
    dirs.push(PathBuf::from(DEFAULT_DIR));
    dirs
}

/// The candidate files for `name` in the search directories, best first.
pub fn candidates(name: &str, plugins_dirs: &[String]) -> Vec<PathBuf> {
    if name.contains('/') {
        return vec![PathBuf::from(name)];
    }
    let (lang, digits) = split_name(name);
    let stem = format!("{lang}{digits}");
    let mut out = Vec::new();
    for dir in search_dirs(plugins_dirs) {
        out.push(dir.join(format!("{stem}_plugin.so")));
        out.push(dir.join(format!("lib{stem}_plugin.so")));
        if lang == "python" {
            let mut versioned: Vec<PathBuf> = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    let f = p.file_name().and_then(|f| f.to_str()).unwrap_or("");
                    let f = f.strip_prefix("lib").unwrap_or(f);
                    f.starts_with(&stem)
                        && f.ends_with("_plugin.so")
                        && f != format!("{stem}_plugin.so")
                })
                .collect();
            versioned.sort();
            versioned.reverse();
            out.extend(versioned);
            out.push(dir.join(CARGO_ARTIFACT));
        }
    }
    out
}

/// A loaded plugin.
pub struct Loaded {
    pub table: &'static Plugin,
    /// The optional raw-socket handler ([`abi::RAW_SYMBOL`]).
    pub raw: Option<abi::RawHandler>,
    pub path: PathBuf,
    pub name: String,
    pub version: String,
}

/// Opens `path` and returns its plugin table.
pub fn open(path: &Path) -> Result<Loaded, String> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| "a NUL byte in the path".to_string())?;
    // SAFETY: dlopen with a valid NUL-terminated path. Running the object's initialisers is
    // the point of loading it; the object stays loaded for the life of the process (it is
    // never dlclose'd), so every pointer taken from it below stays valid.
    let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns NULL or a NUL-terminated message owned by libc.
        let err = unsafe { libc::dlerror() };
        let msg = if err.is_null() {
            "unknown error".into()
        } else {
            unsafe { CStr::from_ptr(err) }
                .to_string_lossy()
                .into_owned()
        };
        return Err(msg);
    }
    // SAFETY: dlsym on the live handle with a NUL-terminated symbol name.
    let sym = unsafe { libc::dlsym(handle, abi::PLUGIN_SYMBOL.as_ptr().cast()) };
    if sym.is_null() {
        let name = String::from_utf8_lossy(&abi::PLUGIN_SYMBOL[..abi::PLUGIN_SYMBOL.len() - 1]);
        return Err(format!(
            "not an imperium plugin for this binary (no {name} symbol; an older or newer plugin?)"
        ));
    }
    // SAFETY: the symbol is, by the ABI, a `static Plugin` of the never-unloaded object.
    let table: &'static Plugin = unsafe { &*sym.cast::<Plugin>() };
    // SAFETY: dlsym on the live handle with a NUL-terminated symbol name.
    let raw_sym = unsafe { libc::dlsym(handle, abi::RAW_SYMBOL.as_ptr().cast()) };
    let raw = (!raw_sym.is_null()).then(|| {
        // SAFETY: by the ABI this export is a function of type `RawHandler` in the
        // never-unloaded object.
        unsafe { std::mem::transmute::<*mut libc::c_void, abi::RawHandler>(raw_sym) }
    });
    if table.abi_version != abi::ABI_VERSION {
        return Err(format!(
            "plugin ABI version {} (this binary speaks {})",
            table.abi_version,
            abi::ABI_VERSION
        ));
    }
    let text = |p: *const std::ffi::c_char| {
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: the ABI says these are NUL-terminated static strings of the plugin.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    Ok(Loaded {
        table,
        raw,
        path: path.to_path_buf(),
        name: text(table.name),
        version: text(table.version),
    })
}

/// True when a plugin reporting `version` (`3.11`) satisfies the digits asked for (`311`, `3`, ``).
pub fn version_matches(version: &str, digits: &str) -> bool {
    let v: String = version.chars().filter(char::is_ascii_digit).collect();
    v.starts_with(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(split_name("python311"), ("python".into(), "311".into()));
        assert_eq!(
            split_name("python3_plugin.so"),
            ("python".into(), "3".into())
        );
        assert_eq!(split_name("python"), ("python".into(), "".into()));
        assert!(is_python("python3") && is_python("/x/python311_plugin.so") && !is_python("http"));
        assert!(
            version_matches("3.11", "311")
                && version_matches("3.11", "3")
                && !version_matches("3.11", "312")
        );
    }
}
