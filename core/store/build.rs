//! Rebuilds the crate when a migration is added or edited, since `sqlx::migrate!` embeds them.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
