//! The whole loader: the input is written to a file in a per-process temporary directory
//! and loaded with `--ini` (or `--yaml`/`--json`/`--xml`, chosen by the first byte:
//! `y`, `{`, `<`). `imperium_config::load` must return Ok or Err, never panic.
//!
//! The loader can read other sources (`exec://`, `http://`, `fd://`, stdin as `-`,
//! `@(file)`, `for-readline`, `for-glob`). Inputs that name them are skipped, and because
//! placeholders and magic variables can still assemble such a name, the process is also
//! sandboxed on first use: standard input is /dev/null, and a seccomp filter makes
//! `execve`, `execveat` and `connect` fail with EPERM, so nothing runs and nothing is
//! contacted whatever the input. (So libFuzzer's stack traces in this target are not
//! symbolised: reproduce a crash with another target binary or under a debugger.)
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use imperium_config::{Invocation, load};
use libfuzzer_sys::fuzz_target;

static DIR: OnceLock<PathBuf> = OnceLock::new();

fn setup() -> PathBuf {
    sandbox();
    let dir = std::env::temp_dir().join(format!("imperium-fuzz-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the temporary directory");
    dir
}

fn sandbox() {
    // SAFETY: plain syscalls on this process's own descriptors and filter; the BPF program
    // outlives the prctl call that copies it into the kernel.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        assert!(null >= 0, "open /dev/null");
        assert!(libc::dup2(null, 0) == 0, "dup2 /dev/null over stdin");
        libc::close(null);
        // The sanitizer's symbolizer (for libFuzzer's NEW_FUNC lines and crash stacks) is
        // an external program, which the filter below stops from starting: ignore the
        // SIGPIPE from writing to it, so libFuzzer goes on with unsymbolised frames.
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);

        const RET_ALLOW: u32 = 0x7fff_0000; // SECCOMP_RET_ALLOW
        const RET_EPERM: u32 = 0x0005_0000 | libc::EPERM as u32; // SECCOMP_RET_ERRNO
        #[cfg(target_arch = "x86_64")]
        const ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
        #[cfg(target_arch = "aarch64")]
        const ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64
        let ld = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
        let jeq = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
        let jge = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
        let ret = (libc::BPF_RET | libc::BPF_K) as u16;
        let stmt = |code: u16, k: u32| libc::sock_filter { code, jt: 0, jf: 0, k };
        let jump = |k: libc::c_long, jt: u8, jf: u8| libc::sock_filter { code: jeq, jt, jf, k: k as u32 };
        let filter = [
            stmt(ld, 4), // seccomp_data.arch
            jump(ARCH as libc::c_long, 1, 0),
            stmt(ret, RET_EPERM), // another ABI: refuse everything rather than guess
            stmt(ld, 0), // seccomp_data.nr
            libc::sock_filter { code: jge, jt: 4, jf: 0, k: 0x4000_0000 }, // x32 ABI numbers
            jump(libc::SYS_execve, 3, 0),
            jump(libc::SYS_execveat, 2, 0),
            jump(libc::SYS_connect, 1, 0),
            stmt(ret, RET_ALLOW),
            stmt(ret, RET_EPERM),
        ];
        let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut _ };
        assert!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS");
        assert!(
            libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const libc::sock_fprog) == 0,
            "install the seccomp filter"
        );
    }
}

/// Inputs that would make the loader leave its file: other sources, stdin, filesystem walks.
fn unsafe_input(data: &[u8]) -> bool {
    // Magic variables are substituted on the raw text (`%z` is empty): look at the text
    // with every `%X` pair removed as well as at the text itself.
    let mut stripped = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'%' {
            i += 2;
        } else {
            stripped.push(data[i]);
            i += 1;
        }
    }
    const BAD: &[&[u8]] =
        &[b"://", b"for-readline", b"for-glob", b"@(", b"/dev", b"/proc", b"/sys", b"exec", b"fd:", b"http", b"emperor", b"data:"];
    let has = |hay: &[u8], n: &[u8]| hay.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    if BAD.iter().any(|n| has(data, n) || has(&stripped, n)) {
        return true;
    }
    // A config name of `-` (stdin): any token that is just "-".
    let is_sep = |b: &u8| !(b.is_ascii_alphanumeric() || b"-_./%()$@+*".contains(b));
    data.split(is_sep).any(|t| t == b"-") || stripped.split(is_sep).any(|t| t == b"-")
}

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(setup);
    if unsafe_input(data) {
        return;
    }
    let (flag, file) = match data.first() {
        Some(b'y') => ("--yaml", "f.yaml"),
        Some(b'{') => ("--json", "f.json"),
        Some(b'<') => ("--xml", "f.xml"),
        _ => ("--ini", "f.ini"),
    };
    let path = dir.join(file);
    std::fs::write(&path, data).expect("write the input file");
    let inv = Invocation {
        args: vec![flag.into(), path.to_string_lossy().into_owned()],
        env: vec![],
        binary: "/bin/true".into(),
    };
    let _ = load(&inv);
});
