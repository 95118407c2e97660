//! Helpers shared by the end-to-end tests: the namespace helpers live in the attack suite's
//! support library (tests/support/netns.rs).

pub use perch_attack_tests::netns;
