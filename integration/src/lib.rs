//! Test support for koordinator: a harness that runs the real binary (as
//! PID 1 of a PID namespace or as a plain child), a fake Kubernetes API
//! server, and the `podsim` pod simulator.

pub mod harness;
