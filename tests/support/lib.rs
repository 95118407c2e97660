//! Perch's attack suite: the support library for the tests in `tests/attack/`. It owns starting
//! real `perch serve` and `perch node run` processes and driving the CLI against them
//! ([`procs`]), network namespaces for attacks that cross hosts ([`netns`]), fake hosts that
//! answer where a real one should ([`impostor`]), the checks for whether a secret reached a
//! place it must not ([`leaks`]), a virtual screen for the menu-bar app ([`display`]) and the
//! open-file limit for socket floods ([`rlimit`]).
//!
//! **Architecture Invariant:** every attack runs against real `perch` processes over real
//! sockets (loopback, or a veth pair between namespaces); fakes stand in only for what is
//! remote to Perch: an impostor host, a model provider, a browser.

#![warn(missing_docs)]

pub mod display;
pub mod impostor;
pub mod leaks;
pub mod netns;
pub mod procs;
pub mod rlimit;
