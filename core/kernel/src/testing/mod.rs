//! Test support (feature `test-support`): fakes that let this crate's tests and other crates'
//! integration tests run the kernel against real HTTP without any network.

mod fake_provider;

pub use fake_provider::{FakeProvider, RecordedRequest, Reply, Script, Wire};
