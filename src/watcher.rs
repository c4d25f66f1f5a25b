//! The list/watch thread (in progress: see issue 4).

pub fn start(_target: crate::kube::Target, _notifier: crate::runtime::Notifier) {}
