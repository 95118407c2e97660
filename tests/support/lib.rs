//! Perch's attack suite: the support library for the tests in `tests/attack/`. It owns starting
//! real `perch serve` and `perch node run` processes and driving the CLI against them
//! ([`procs`]), network namespaces for attacks that cross hosts ([`netns`]), fake hosts that
//! answer where a real one should ([`impostor`]), and the checks for whether a secret reached a
//! place it must not ([`leaks`]).
//!
//! **Architecture Invariant:** every attack runs against real `perch` processes over real
//! sockets (loopback, or a veth pair between namespaces); fakes stand in only for what is
//! remote to Perch: an impostor host, a model provider, a browser.

pub mod impostor;
pub mod leaks;
pub mod netns;
pub mod procs;
pub mod rlimit;
