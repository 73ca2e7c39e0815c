//! Rebuilds the crate when a migration is added, not only when an existing one changes: the
//! embedded migrator reads the directory at compile time.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
