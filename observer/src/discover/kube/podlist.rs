//! The pods of this node, indexed by UID, from a `v1.PodList` (the kubelet's `/pods` or the
//! API server's `/api/v1/pods`): only the names the labels need are kept.

use std::collections::HashMap;

use serde::Deserialize;

use super::cgroup::ContainerRef;

const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The `namespace`, `pod` and `container` label values of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLabels {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

/// Why a container could not be named from the pod list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// No pod with that UID: it started after the last fetch (or left).
    PodNotFound,
    /// The pod is there but none of its container statuses has that id yet.
    ContainerNotFound,
}

impl Miss {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PodNotFound => "pod_not_found",
            Self::ContainerNotFound => "container_not_found",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodIndex {
    /// By UID; a mirror pod is also here under its static pod's UID.
    pods: HashMap<String, Pod>,
    /// Pods in the list.
    count: usize,
}

#[derive(Debug, Clone, PartialEq)]
struct Pod {
    namespace: String,
    name: String,
    /// Runtime id (without the `<runtime>://` scheme) → container name.
    containers: HashMap<String, String>,
}

impl PodIndex {
    /// Parses a `v1.PodList` JSON document.
    pub fn from_json(bytes: &[u8]) -> Result<PodIndex, serde_json::Error> {
        let list: PodList = serde_json::from_slice(bytes)?;
        let items = list.items.unwrap_or_default();
        let count = items.len();
        let mut pods = HashMap::new();
        for item in items {
            let status = item.status.unwrap_or_default();
            let containers = status
                .container_statuses
                .into_iter()
                .chain(status.init_container_statuses)
                .filter_map(|c| Some((runtime_id(c.container_id.as_deref()?)?, c.name)))
                .collect();
            let pod = Pod {
                namespace: item.metadata.namespace,
                name: item.metadata.name,
                containers,
            };
            // The API server lists a static pod as a mirror pod with a UID of its own; the
            // cgroup path carries the kubelet's UID, which the mirror keeps in this annotation.
            if let Some(uid) = item.metadata.annotations.get(MIRROR_ANNOTATION) {
                pods.insert(uid.to_ascii_lowercase(), pod.clone());
            }
            pods.insert(item.metadata.uid.to_ascii_lowercase(), pod);
        }
        Ok(PodIndex { pods, count })
    }

    /// Pods in the list.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn lookup(&self, container: &ContainerRef) -> Result<PodLabels, Miss> {
        let pod = self.pods.get(&container.pod_uid).ok_or(Miss::PodNotFound)?;
        let name = pod
            .containers
            .get(&container.container_id)
            .ok_or(Miss::ContainerNotFound)?;
        Ok(PodLabels {
            namespace: pod.namespace.clone(),
            pod: pod.name.clone(),
            container: name.clone(),
        })
    }
}

/// `containerd://<id>` → `<id>`; the cgroup path carries the id without the runtime's name.
fn runtime_id(container_id: &str) -> Option<String> {
    let (_, id) = container_id.split_once("://")?;
    (!id.is_empty()).then(|| id.to_ascii_lowercase())
}

#[derive(Deserialize)]
struct PodList {
    /// Go writes an empty list as `null`.
    #[serde(default)]
    items: Option<Vec<Item>>,
}

#[derive(Deserialize)]
struct Item {
    metadata: Metadata,
    status: Option<Status>,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
    namespace: String,
    uid: String,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Status {
    #[serde(default)]
    container_statuses: Vec<ContainerStatus>,
    #[serde(default)]
    init_container_statuses: Vec<ContainerStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerStatus {
    name: String,
    /// Absent while the container is still being created.
    #[serde(rename = "containerID")]
    container_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from a kubelet's `/pods`: a running pod with a sidecar and a finished init
    /// container, and a pending pod whose container has no id yet.
    const PODS: &str = r#"{
      "kind": "PodList", "apiVersion": "v1", "metadata": {},
      "items": [
        {
          "metadata": {"name": "shop-7d9f8", "namespace": "web",
                       "uid": "8F1C6A52-3d4e-4b7a-9c01-2e5f6a7b8c9d",
                       "labels": {"app": "shop"}},
          "spec": {"nodeName": "node-1", "containers": [{"name": "app"}, {"name": "proxy"}]},
          "status": {
            "phase": "Running",
            "initContainerStatuses": [
              {"name": "migrate", "containerID": "containerd://aaaa0000aaaa0000", "ready": false}
            ],
            "containerStatuses": [
              {"name": "app", "containerID": "containerd://ABCDEF0123456789", "ready": true},
              {"name": "proxy", "containerID": "cri-o://fedcba9876543210", "ready": true}
            ]
          }
        },
        {
          "metadata": {"name": "late", "namespace": "web",
                       "uid": "11111111-2222-3333-4444-555555555555"},
          "status": {"phase": "Pending",
                     "containerStatuses": [{"name": "app", "ready": false}]}
        }
      ]
    }"#;

    fn container(uid: &str, id: &str) -> ContainerRef {
        ContainerRef {
            pod_uid: uid.to_owned(),
            container_id: id.to_owned(),
        }
    }

    #[test]
    fn names_each_container_of_a_running_pod() {
        let index = PodIndex::from_json(PODS.as_bytes()).unwrap();
        assert_eq!(index.len(), 2);

        let uid = "8f1c6a52-3d4e-4b7a-9c01-2e5f6a7b8c9d";
        let labels = |c: &str| PodLabels {
            namespace: "web".to_owned(),
            pod: "shop-7d9f8".to_owned(),
            container: c.to_owned(),
        };
        assert_eq!(
            index.lookup(&container(uid, "abcdef0123456789")),
            Ok(labels("app"))
        );
        assert_eq!(
            index.lookup(&container(uid, "fedcba9876543210")),
            Ok(labels("proxy"))
        );
        assert_eq!(
            index.lookup(&container(uid, "aaaa0000aaaa0000")),
            Ok(labels("migrate"))
        );
    }

    #[test]
    fn misses_say_which_half_was_unknown() {
        let index = PodIndex::from_json(PODS.as_bytes()).unwrap();
        let pending = "11111111-2222-3333-4444-555555555555";
        assert_eq!(
            index.lookup(&container(pending, "0123456789ab")),
            Err(Miss::ContainerNotFound)
        );
        let absent = "99999999-2222-3333-4444-555555555555";
        assert_eq!(
            index.lookup(&container(absent, "0123456789ab")),
            Err(Miss::PodNotFound)
        );
    }

    #[test]
    fn a_mirror_pod_is_found_by_the_static_pods_uid() {
        let list = r#"{"items":[{"metadata":{"name":"web-node-1","namespace":"kube-system",
            "uid":"22222222-2222-3333-4444-555555555555",
            "annotations":{"kubernetes.io/config.mirror":"0123456789ABCDEF0123456789abcdef"}},
            "status":{"containerStatuses":[{"name":"web","containerID":"containerd://0123456789ab"}]}}]}"#;
        let index = PodIndex::from_json(list.as_bytes()).unwrap();
        assert_eq!(index.len(), 1);
        let labels = PodLabels {
            namespace: "kube-system".to_owned(),
            pod: "web-node-1".to_owned(),
            container: "web".to_owned(),
        };
        let by_hash = container("0123456789abcdef0123456789abcdef", "0123456789ab");
        assert_eq!(index.lookup(&by_hash), Ok(labels.clone()));
        let by_uid = container("22222222-2222-3333-4444-555555555555", "0123456789ab");
        assert_eq!(index.lookup(&by_uid), Ok(labels));
    }

    #[test]
    fn an_empty_list_and_garbage() {
        let empty = PodIndex::from_json(br#"{"kind":"PodList","items":null}"#).unwrap();
        assert!(empty.is_empty());
        assert!(
            PodIndex::from_json(br#"{"kind":"PodList"}"#)
                .unwrap()
                .is_empty()
        );
        assert!(PodIndex::from_json(b"<html>login</html>").is_err());
        assert!(PodIndex::from_json(br#"{"items":[{"metadata":{}}]}"#).is_err());
    }
}
