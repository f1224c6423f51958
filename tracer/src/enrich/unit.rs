//! Naming the systemd unit or container behind a cgroup v2 path.
//!
//! The rule, applied to the `/`-separated components of the path:
//!
//! 1. Container runtimes are recognised first, outermost component first (the host's point of
//!    view: a Docker container inside an LXC container is reported as the LXC container):
//!    * Kubernetes: a `kubepods…` component followed by a pod component
//!      (`kubepods-burstable-pod<uid>.slice` with the systemd driver, `pod<uid>` with the
//!      cgroupfs driver) → `k8s:pod<uid>` (underscores of the systemd form turned back into `-`);
//!    * `docker-<hex>.scope`, or `docker/<hex>` (cgroupfs driver) → `docker:<first 12 hex>`;
//!    * `libpod-<hex>.scope` → `podman:<first 12 hex>`;
//!    * `lxc.payload.<name>` (LXC, LXD and Incus) → `lxc:<name>`.
//! 2. Otherwise the innermost component ending in `.service` or `.scope` is the unit
//!    (`session-3.scope`, or `foo.service` inside a user manager's `app.slice`).
//! 3. Otherwise (the root cgroup, a bare slice) there is no unit.

/// Number of hex digits kept from a container id, as `docker ps` shows them.
const SHORT_ID_LEN: usize = 12;

/// Returns the systemd unit or container owning the cgroup at `path` (a path relative to the
/// cgroup2 mount, as in `/proc/<pid>/cgroup`), following the rule in the
/// [module documentation](self). Returns `None` for `/` and for paths without a unit.
pub fn unit_from_cgroup_path(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    container(&parts).or_else(|| innermost_unit(&parts))
}

/// The container or pod owning the cgroup at `path` (rule 1 of the
/// [module documentation](self)), or `None` for a plain unit or none.
pub fn container_from_cgroup_path(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    container(&parts)
}

fn container(parts: &[&str]) -> Option<String> {
    if let Some(uid) = kubernetes_pod_uid(parts) {
        return Some(format!("k8s:pod{uid}"));
    }
    for (i, part) in parts.iter().enumerate() {
        if let Some(id) = scope_id(part, "docker-") {
            return Some(format!("docker:{id}"));
        }
        if *part == "docker"
            && let Some(id) = parts.get(i + 1).and_then(|next| short_hex_id(next))
        {
            return Some(format!("docker:{id}"));
        }
        if let Some(id) = scope_id(part, "libpod-") {
            return Some(format!("podman:{id}"));
        }
        if let Some(name) = part.strip_prefix("lxc.payload.").filter(|n| !n.is_empty()) {
            return Some(format!("lxc:{name}"));
        }
    }
    None
}

/// The pod uid from a path below a `kubepods` component, in its canonical dashed form.
fn kubernetes_pod_uid(parts: &[&str]) -> Option<String> {
    let start = parts.iter().position(|p| p.starts_with("kubepods"))?;
    parts[start + 1..].iter().find_map(|part| {
        let uid = match part.strip_suffix(".slice") {
            // systemd driver: kubepods-<qos>-pod<uid with '_' for '-'>.slice
            Some(slice) => slice.rsplit_once("-pod")?.1.replace('_', "-"),
            // cgroupfs driver: pod<uid>
            None => part.strip_prefix("pod")?.to_owned(),
        };
        let valid = !uid.is_empty() && uid.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
        valid.then_some(uid)
    })
}

/// `<prefix><hex>.scope` → the shortened hex id.
fn scope_id<'a>(part: &'a str, prefix: &str) -> Option<&'a str> {
    short_hex_id(part.strip_prefix(prefix)?.strip_suffix(".scope")?)
}

fn short_hex_id(id: &str) -> Option<&str> {
    let valid = !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit());
    valid.then(|| &id[..id.len().min(SHORT_ID_LEN)])
}

fn innermost_unit(parts: &[&str]) -> Option<String> {
    parts
        .iter()
        .rev()
        .find(|p| is_unit_name(p, ".service") || is_unit_name(p, ".scope"))
        .map(|p| (*p).to_owned())
}

fn is_unit_name(part: &str, suffix: &str) -> bool {
    part.len() > suffix.len() && part.ends_with(suffix)
}

#[cfg(test)]
mod tests {
    use super::unit_from_cgroup_path as unit;

    const DOCKER_ID: &str = "4f1d2c3b4a5968778695a4b3c2d1e0f9e8d7c6b5a4938271605f4e3d2c1b0a99";

    #[test]
    fn root_and_slices_have_no_unit() {
        assert_eq!(unit("/"), None);
        assert_eq!(unit(""), None);
        assert_eq!(unit("/system.slice"), None);
        assert_eq!(unit("/user.slice/user-1000.slice"), None);
        assert_eq!(unit("/.service"), None);
    }

    #[test]
    fn system_services() {
        assert_eq!(
            unit("/system.slice/systemd-networkd.service").as_deref(),
            Some("systemd-networkd.service"),
        );
        assert_eq!(
            unit("/system.slice/tailscaled.service/payload").as_deref(),
            Some("tailscaled.service"),
        );
        assert_eq!(unit("/init.scope").as_deref(), Some("init.scope"));
        // Relative form and trailing slash are accepted.
        assert_eq!(
            unit("system.slice/NetworkManager.service/").as_deref(),
            Some("NetworkManager.service"),
        );
    }

    #[test]
    fn user_sessions_and_user_services() {
        assert_eq!(
            unit("/user.slice/user-1000.slice/session-3.scope").as_deref(),
            Some("session-3.scope"),
        );
        assert_eq!(
            unit("/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service").as_deref(),
            Some("foo.service"),
        );
        assert_eq!(
            unit("/user.slice/user-1000.slice/user@1000.service/init.scope").as_deref(),
            Some("init.scope"),
        );
        assert_eq!(
            unit("/user.slice/user-1000.slice/user@1000.service").as_deref(),
            Some("user@1000.service"),
        );
    }

    #[test]
    fn docker() {
        let path = format!("/system.slice/docker-{DOCKER_ID}.scope");
        assert_eq!(unit(&path).as_deref(), Some("docker:4f1d2c3b4a59"));
        let cgroupfs = format!("/docker/{DOCKER_ID}");
        assert_eq!(unit(&cgroupfs).as_deref(), Some("docker:4f1d2c3b4a59"));
        // The daemon itself is an ordinary service.
        assert_eq!(
            unit("/system.slice/docker.service").as_deref(),
            Some("docker.service"),
        );
        // Not a hex id: not a container, falls back to the unit rule.
        assert_eq!(
            unit("/system.slice/docker-compose@x.service").as_deref(),
            Some("docker-compose@x.service"),
        );
    }

    #[test]
    fn podman() {
        let path = format!("/machine.slice/libpod-{DOCKER_ID}.scope/container");
        assert_eq!(unit(&path).as_deref(), Some("podman:4f1d2c3b4a59"));
        let rootless = format!(
            "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{DOCKER_ID}.scope"
        );
        assert_eq!(unit(&rootless).as_deref(), Some("podman:4f1d2c3b4a59"));
        // conmon is the monitor, not the container: ordinary scope.
        let conmon = format!("/machine.slice/libpod-conmon-{DOCKER_ID}.scope");
        assert_eq!(
            unit(&conmon),
            Some(format!("libpod-conmon-{DOCKER_ID}.scope"))
        );
    }

    #[test]
    fn containers_only() {
        use super::container_from_cgroup_path as container;
        assert_eq!(
            container("/lxc.payload.web1/init.scope").as_deref(),
            Some("lxc:web1")
        );
        assert_eq!(container("/user.slice/user-0.slice/session-3.scope"), None);
        assert_eq!(container("/"), None);
    }

    #[test]
    fn lxc_and_incus() {
        assert_eq!(unit("/lxc.payload.web1").as_deref(), Some("lxc:web1"));
        assert_eq!(
            unit("/lxc.payload.web1/system.slice/systemd-networkd.service").as_deref(),
            Some("lxc:web1"),
        );
        // Outermost container wins.
        let nested = format!("/lxc.payload.dev/system.slice/docker-{DOCKER_ID}.scope");
        assert_eq!(unit(&nested).as_deref(), Some("lxc:dev"));
        assert_eq!(unit("/lxc.payload."), None);
    }

    #[test]
    fn kubernetes() {
        let systemd = "/kubepods.slice/kubepods-burstable.slice/\
            kubepods-burstable-pod3d5c8a4e_1f2b_4c3d_9e8f_0a1b2c3d4e5f.slice/\
            cri-containerd-0123456789abcdef.scope";
        assert_eq!(
            unit(systemd).as_deref(),
            Some("k8s:pod3d5c8a4e-1f2b-4c3d-9e8f-0a1b2c3d4e5f"),
        );
        let guaranteed = "/kubepods.slice/kubepods-pod3d5c8a4e_1f2b.slice/crio-01ab.scope";
        assert_eq!(unit(guaranteed).as_deref(), Some("k8s:pod3d5c8a4e-1f2b"));
        let cgroupfs = format!("/kubepods/besteffort/pod3d5c8a4e-1f2b-4c3d/{DOCKER_ID}");
        assert_eq!(
            unit(&cgroupfs).as_deref(),
            Some("k8s:pod3d5c8a4e-1f2b-4c3d")
        );
        // The kubepods slice itself holds no pod.
        assert_eq!(unit("/kubepods.slice/kubepods-burstable.slice"), None);
    }
}
