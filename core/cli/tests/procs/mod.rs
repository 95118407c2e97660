//! Real `perch` processes for end-to-end tests: the attack suite's support library
//! (tests/support/procs.rs) is their one home.

#![allow(unused_imports)]

pub use perch_attack_tests::procs::*;
