//! Link options of the `imperium` binary. With the `no-pie` feature the binary is linked
//! as a fixed-address executable instead of a position-independent one: the dynamic loader
//! then has no relative relocations to apply at each start (about 28,000, touching
//! 530 KB of `.data.rel.ro` that every process would copy), which makes every vassal
//! start cheaper and smaller (docs/benchmarks.md, "The Emperor", (d)). The price is that
//! the executable's own image is no longer placed at a random address (ASLR still applies
//! to the libraries, heap and stack), so it is opt-in:
//! `cargo build --release --features no-pie`.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let no_pie = std::env::var_os("CARGO_FEATURE_NO_PIE").is_some();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if no_pie && matches!(os.as_str(), "linux" | "freebsd") {
        // rustc passes `-pie` to the C compiler driver; the later `-no-pie` wins.
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
