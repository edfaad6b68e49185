//! Kubernetes names for the instances the observer finds: the pod and container of a
//! Gunicorn master come from its cgroup path ([`cgroup`]), their names from the node's pod
//! list ([`kubelet`], [`podlist`]), refreshed and applied by [`cache`]. Without
//! `--kube-pods-url` nothing here runs and instances carry no pod labels.
//!
//! [`cgroup::container_of`] reads a master's `ContainerRef` (pod UID, container id), which the
//! pipeline stores with `Stats::set_container`; a [`cache::Refresher`] task fetches the
//! node's `v1.PodList` over plain HTTP ([`kubelet::Endpoint`]), indexes it
//! ([`podlist::PodIndex`]) and sets `AppStats::pod`. The exporter's `instance_labels` is the
//! one place an instance's label set (`app`, then `namespace`, `pod`, `container`) is built.

pub mod cache;
pub mod cgroup;
pub mod kubelet;
pub mod podlist;

pub use cache::{KubeMetrics, Refresher};
pub use cgroup::{ContainerRef, container_of};
pub use kubelet::{Endpoint, FetchError, UrlError};
pub use podlist::{Miss, PodIndex, PodLabels};
