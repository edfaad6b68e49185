//! Which pod and container a process runs in, read from `/proc/<pid>/cgroup`.
//!
//! The kubelet puts every container in a cgroup below a per-pod cgroup, and the path names
//! both: the pod by its UID and the container by its runtime id. The shape of the path
//! depends on the cgroup driver and the runtime:
//!
//! | driver | path of a container (one line of `/proc/<pid>/cgroup`) |
//! |---|---|
//! | cgroupfs | `/kubepods/burstable/pod<uid>/<id>` |
//! | systemd | `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope` (`crio-<id>.scope`, `docker-<id>.scope`) |
//!
//! cgroup v1 repeats the path once per controller (`4:memory:/kubepods/...`), cgroup v2 has a
//! single `0::/...` line. Under a cgroup namespace the path is relative to the reader's own
//! cgroup and may start with `/../..`; only the components matter here.

use std::{fs, io, path::Path};

/// The pod UID and container id of a process in a Kubernetes pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerRef {
    /// Lowercase, with dashes, as the API shows `metadata.uid`.
    pub pod_uid: String,
    /// The runtime's id, as in `status.containerStatuses[].containerID` after its `<runtime>://`.
    pub container_id: String,
}

/// Reads the container of `pid`; `Ok(None)` when it is not in a Kubernetes pod.
pub fn container_of(proc_root: &Path, pid: u32) -> io::Result<Option<ContainerRef>> {
    let text = fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup"))?;
    Ok(parse(&text))
}

/// The first line of a `/proc/<pid>/cgroup` text whose path names a pod and a container.
pub fn parse(text: &str) -> Option<ContainerRef> {
    text.lines().find_map(|line| {
        // `hierarchy-id:controllers:path`; the path itself never contains a newline but may
        // contain colons, so split only twice.
        let path = line.splitn(3, ':').nth(2)?;
        parse_path(path)
    })
}

fn parse_path(path: &str) -> Option<ContainerRef> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let (index, pod_uid) = components
        .iter()
        .enumerate()
        .find_map(|(i, component)| pod_uid(component).map(|uid| (i, uid)))?;

    // The container's cgroup sits right below the pod's; anything deeper is the app's own
    // sub-cgroups (systemd in a container, a cgroup v2 leaf it created).
    let container_id = container_id(components.get(index + 1)?)?;
    Some(ContainerRef {
        pod_uid,
        container_id,
    })
}

/// `pod<uid>` (cgroupfs) or `kubepods-<qos>-pod<uid>.slice` / `kubepods-pod<uid>.slice`
/// (systemd, which spells the UID's dashes as underscores).
fn pod_uid(component: &str) -> Option<String> {
    let name = component.strip_suffix(".slice").unwrap_or(component);
    let start = name.rfind("pod")?;
    let before = &name[..start];
    // `pod` must start the component or follow the slice's `-`: `kubepods` itself also ends
    // in "pods" and must not match.
    if !(before.is_empty() || before.ends_with('-')) {
        return None;
    }
    let uid = name[start + 3..].replace('_', "-").to_ascii_lowercase();
    is_pod_uid(&uid).then_some(uid)
}

/// A UUID with dashes (API pods), or 32 hex digits (static pods' config hashes).
fn is_pod_uid(uid: &str) -> bool {
    let hex_digits = uid.chars().filter(char::is_ascii_hexdigit).count();
    let dashes = uid.chars().filter(|&c| c == '-').count();
    let shaped = match dashes {
        0 => uid.len() == 32,
        4 => uid.len() == 36 && [8, 13, 18, 23].iter().all(|&i| uid.as_bytes()[i] == b'-'),
        _ => false,
    };
    shaped && hex_digits == 32
}

/// The runtime id in a container's cgroup name. CRI-O's `crio-conmon-<id>.scope` is the
/// container's monitor process, not the container, and is not one.
fn container_id(component: &str) -> Option<String> {
    let name = component.strip_suffix(".scope").unwrap_or(component);
    if name.starts_with("crio-conmon-") {
        return None;
    }
    let id = ["cri-containerd-", "crio-", "docker-", "containerd-"]
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix))
        .unwrap_or(name);
    let is_id = id.len() >= 12 && id.chars().all(|c| c.is_ascii_hexdigit());
    is_id.then(|| id.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "8f1c6a52-3d4e-4b7a-9c01-2e5f6a7b8c9d";
    const ID: &str = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899";

    fn expected() -> Option<ContainerRef> {
        Some(ContainerRef {
            pod_uid: UID.to_owned(),
            container_id: ID.to_owned(),
        })
    }

    #[test]
    fn cgroup_v2_systemd_driver_containerd() {
        let text = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/\
             kubepods-burstable-pod8f1c6a52_3d4e_4b7a_9c01_2e5f6a7b8c9d.slice/\
             cri-containerd-{ID}.scope\n"
        );
        assert_eq!(parse(&text), expected());
    }

    #[test]
    fn cgroup_v2_systemd_driver_crio_guaranteed_pod() {
        let text = format!(
            "0::/kubepods.slice/kubepods-pod8f1c6a52_3d4e_4b7a_9c01_2e5f6a7b8c9d.slice/\
             crio-{ID}.scope\n"
        );
        assert_eq!(parse(&text), expected());
    }

    #[test]
    fn crio_conmon_is_not_the_container() {
        let text = format!(
            "0::/kubepods.slice/kubepods-pod8f1c6a52_3d4e_4b7a_9c01_2e5f6a7b8c9d.slice/\
             crio-conmon-{ID}.scope\n"
        );
        assert_eq!(parse(&text), None);
    }

    #[test]
    fn cgroup_v2_under_a_cgroup_namespace() {
        // What a containerised reader sees for another pod's process.
        let text = format!(
            "0::/../../kubepods-besteffort.slice/\
             kubepods-besteffort-pod8f1c6a52_3d4e_4b7a_9c01_2e5f6a7b8c9d.slice/\
             cri-containerd-{ID}.scope\n"
        );
        assert_eq!(parse(&text), expected());
    }

    #[test]
    fn cgroup_v1_cgroupfs_driver_every_controller_line() {
        let text = format!(
            "12:pids:/kubepods/burstable/pod{UID}/{ID}\n\
             11:memory:/kubepods/burstable/pod{UID}/{ID}\n\
             1:name=systemd:/kubepods/burstable/pod{UID}/{ID}\n\
             0::/\n"
        );
        assert_eq!(parse(&text), expected());
    }

    #[test]
    fn cgroup_v1_guaranteed_pod_has_no_qos_level() {
        let text = format!("4:memory:/kubepods/pod{UID}/{ID}\n");
        assert_eq!(parse(&text), expected());
    }

    #[test]
    fn docker_shim_under_the_systemd_driver_on_cgroup_v1() {
        let text = format!(
            "9:cpu,cpuacct:/kubepods.slice/kubepods-besteffort.slice/\
             kubepods-besteffort-pod8f1c6a52_3d4e_4b7a_9c01_2e5f6a7b8c9d.slice/\
             docker-{ID}.scope\n"
        );
        assert_eq!(parse(&text), expected());
    }

    #[test]
    fn kind_node_nests_the_kubelet_slice() {
        let text = format!(
            "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/\
             kubelet-kubepods-besteffort-pod8f1c6a52_3d4e_4b7a_9c01_2e5f6a7b8c9d.slice/\
             cri-containerd-{ID}.scope\n"
        );
        assert_eq!(parse(&text), expected());
    }

    #[test]
    fn static_pod_uid_is_a_bare_hash() {
        let text = format!("0::/kubepods/besteffort/pod0123456789abcdef0123456789abcdef/{ID}\n");
        let found = parse(&text).unwrap();
        assert_eq!(found.pod_uid, "0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn a_sub_cgroup_inside_the_container_still_names_it() {
        let text = format!("0::/kubepods/burstable/pod{UID}/{ID}/init.scope\n");
        assert_eq!(parse(&text), expected());
    }

    #[test]
    fn plain_docker_and_host_processes_are_not_in_a_pod() {
        assert_eq!(
            parse(&format!("0::/system.slice/docker-{ID}.scope\n")),
            None
        );
        assert_eq!(parse(&format!("4:memory:/docker/{ID}\n")), None);
        assert_eq!(parse("0::/user.slice/user-0.slice/session-1.scope\n"), None);
        assert_eq!(parse("0::/\n"), None);
        // `kubepods` alone, or a pod cgroup with no container below it (the pause process
        // of some runtimes), names no container.
        assert_eq!(parse("0::/kubepods.slice\n"), None);
        assert_eq!(parse(&format!("0::/kubepods/burstable/pod{UID}\n")), None);
    }

    #[test]
    fn a_malformed_uid_is_not_a_pod() {
        let text = format!("0::/kubepods/burstable/podnot-a-uid/{ID}\n");
        assert_eq!(parse(&text), None);
    }

    #[test]
    fn reads_this_process_without_error() {
        // The test machine is not a pod; the file must still be read and parsed.
        let mine = container_of(Path::new("/proc"), std::process::id()).unwrap();
        assert_eq!(mine, None);
    }
}
