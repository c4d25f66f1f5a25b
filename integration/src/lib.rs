//! Test support for koordinator: a harness that runs the real binary (as
//! PID 1 of a PID namespace or as a plain child), a fake Kubernetes API
//! server, pod builders, and the `podsim` pod simulator.

pub mod apiserver;
pub mod fixture;
pub mod harness;
pub mod pods;
pub mod podsim;
