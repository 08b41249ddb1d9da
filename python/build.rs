//! Links the plugin to the libpython PyO3 found (PYO3_PYTHON, else `python3` on PATH) with
//! an rpath to its directory, so a libpython outside the loader's default path (pyenv,
//! /opt/python) is found at dlopen() time, and records the CPython version the plugin
//! reports to the vassal.

fn main() {
    let cfg = pyo3_build_config::get();
    if let Some(dir) = &cfg.lib_dir {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    println!(
        "cargo:rustc-env=IMPERIUM_PY_VERSION={}.{}",
        cfg.version.major, cfg.version.minor
    );
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
