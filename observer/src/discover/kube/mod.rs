//! Kubernetes names for the instances the observer finds: the pod and container of a
//! Gunicorn master come from its cgroup path ([`cgroup`]), their names from the node's pod
//! list ([`kubelet`], [`podlist`]), refreshed and applied by [`cache`]. Without
//! `--kube-pods-url` nothing here runs and instances carry no pod labels.

pub mod cache;
pub mod cgroup;
pub mod kubelet;
pub mod podlist;

pub use cache::{KubeMetrics, Refresher};
pub use cgroup::{ContainerRef, container_of};
pub use kubelet::{Endpoint, FetchError, UrlError};
pub use podlist::{Miss, PodIndex, PodLabels};
