//! Finding where worker cgroups can be made: the host's own cgroup on a cgroup v2 mount that
//! offers the needed controllers, else on the cgroup v1 mounts of each controller.
//!
//! Both views come from the host's `/proc/self/mountinfo` (where each hierarchy is mounted, and
//! which part of it the mount shows) and `/proc/self/cgroup` (the host's cgroup in each).

use super::{CgroupUnavailable, CgroupVersion, Controller};
use std::path::{Path, PathBuf};

/// One cgroup mount: its filesystem type's version, the v1 controllers it carries, where it is
/// mounted and which cgroup its root is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mount {
    pub version: CgroupVersion,
    /// v1 only: the controllers (super options) of the hierarchy.
    pub controllers: Vec<String>,
    pub mount_point: PathBuf,
    /// The cgroup, within the hierarchy, that the mount point shows.
    pub root: String,
    pub read_only: bool,
}

/// The cgroup mounts in a `mountinfo` text.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut mounts = Vec::new();
    for line in text.lines() {
        // id parent major:minor root mount-point options [optional...] - fstype source super
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(point), Some(opts), Some(fstype)) =
            (l.get(3), l.get(4), l.get(5), r.first())
        else {
            continue;
        };
        let version = match *fstype {
            "cgroup2" => CgroupVersion::V2,
            "cgroup" => CgroupVersion::V1,
            _ => continue,
        };
        let controllers = match version {
            CgroupVersion::V1 => r
                .get(2)
                .map(|s| s.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
            CgroupVersion::V2 => Vec::new(),
        };
        mounts.push(Mount {
            version,
            controllers,
            mount_point: PathBuf::from(unescape(point)),
            root: unescape(root),
            read_only: opts.split(',').any(|o| o == "ro"),
        });
    }
    mounts
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let n = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(n);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The host's cgroup in each hierarchy of a `/proc/self/cgroup` text: `(controllers, path)`,
/// where the v2 line has no controllers.
pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<(Vec<String>, String)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_id, ctl, path) = (parts.next()?, parts.next()?, parts.next()?);
            let ctl = if ctl.is_empty() {
                Vec::new()
            } else {
                ctl.split(',').map(str::to_owned).collect()
            };
            Some((ctl, path.to_owned()))
        })
        .collect()
}

/// The directory of cgroup `path` under a mount whose root is `root`, if the mount shows it.
fn dir_of(mount: &Mount, path: &str) -> Option<PathBuf> {
    let rel = if mount.root == "/" {
        path
    } else {
        let rest = path.strip_prefix(mount.root.as_str())?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        rest
    };
    let rel = rel.trim_start_matches('/');
    Some(if rel.is_empty() {
        mount.mount_point.clone()
    } else {
        mount.mount_point.join(rel)
    })
}

/// A v2 cgroup directory under which worker cgroups with `needs` can be made (its subtree
/// enabling them), or why not. `parent`: the caller's choice instead of the host's cgroup.
pub(crate) fn find_v2(
    mounts: &[Mount],
    own: &[(Vec<String>, String)],
    needs: &[Controller],
    parent: Option<&Path>,
) -> Result<PathBuf, String> {
    let Some(mount) = mounts.iter().find(|m| m.version == CgroupVersion::V2) else {
        return Err("no cgroup2 mount".into());
    };
    if mount.read_only {
        return Err(format!(
            "the cgroup2 mount {} is read-only",
            mount.mount_point.display()
        ));
    }
    let dir = match parent {
        Some(p) => {
            if !p.starts_with(&mount.mount_point) {
                return Err(format!(
                    "cgroup_parent {} is not under the cgroup2 mount {}",
                    p.display(),
                    mount.mount_point.display()
                ));
            }
            p.to_path_buf()
        }
        None => {
            let Some((_, path)) = own.iter().find(|(c, _)| c.is_empty()) else {
                return Err("the host has no cgroup v2 line in /proc/self/cgroup".into());
            };
            dir_of(mount, path).ok_or_else(|| {
                format!(
                    "the host's cgroup {path} is outside the cgroup2 mount {}",
                    mount.mount_point.display()
                )
            })?
        }
    };
    let offered = std::fs::read_to_string(dir.join("cgroup.controllers"))
        .map_err(|e| format!("cannot read {}/cgroup.controllers: {e}", dir.display()))?;
    let missing: Vec<&str> = needs
        .iter()
        .map(|c| c.name())
        .filter(|n| !offered.split_whitespace().any(|o| o == *n))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "cgroup v2 at {} does not offer {} (its controllers: {:?}; they are bound to \
             cgroup v1 or not delegated)",
            dir.display(),
            missing.join(", "),
            offered.trim()
        ));
    }
    Ok(dir)
}

/// For each of `needs`, the v1 cgroup directory (the host's own cgroup in that controller's
/// hierarchy) under which worker cgroups can be made, or why not.
pub(crate) fn find_v1(
    mounts: &[Mount],
    own: &[(Vec<String>, String)],
    needs: &[Controller],
) -> Result<Vec<(Controller, PathBuf)>, String> {
    let mut dirs = Vec::new();
    for &c in needs {
        let name = c.name();
        let Some(mount) = mounts
            .iter()
            .find(|m| m.version == CgroupVersion::V1 && m.controllers.iter().any(|x| x == name))
        else {
            return Err(format!("no cgroup v1 mount carries the {name} controller"));
        };
        if mount.read_only {
            return Err(format!(
                "the cgroup v1 {name} mount {} is read-only",
                mount.mount_point.display()
            ));
        }
        let Some((_, path)) = own.iter().find(|(ctl, _)| ctl.iter().any(|x| x == name)) else {
            return Err(format!("the host has no {name} line in /proc/self/cgroup"));
        };
        let dir = dir_of(mount, path).ok_or_else(|| {
            format!(
                "the host's {name} cgroup {path} is outside its mount {}",
                mount.mount_point.display()
            )
        })?;
        dirs.push((c, dir));
    }
    Ok(dirs)
}

/// Reads the host's mount table and cgroups and chooses a hierarchy for `needs`: v2 where it
/// offers every needed controller, else v1.
pub(crate) fn choose(
    needs: &[Controller],
    parent: Option<&Path>,
) -> Result<(CgroupVersion, Vec<(Controller, PathBuf)>), CgroupUnavailable> {
    let read = |p: &str| {
        std::fs::read_to_string(p).map_err(|e| CgroupUnavailable(format!("cannot read {p}: {e}")))
    };
    let mounts = parse_mountinfo(&read("/proc/self/mountinfo")?);
    let own = parse_proc_cgroup(&read("/proc/self/cgroup")?);
    let v2 = find_v2(&mounts, &own, needs, parent);
    if let Ok(dir) = v2 {
        return Ok((
            CgroupVersion::V2,
            needs.iter().map(|&c| (c, dir.clone())).collect(),
        ));
    }
    let v2_reason = v2.err().unwrap_or_default();
    if parent.is_some() {
        return Err(CgroupUnavailable(v2_reason));
    }
    match find_v1(&mounts, &own, needs) {
        Ok(dirs) => Ok((CgroupVersion::V1, dirs)),
        Err(v1_reason) => Err(CgroupUnavailable(format!(
            "no writable cgroup: v2: {v2_reason}; v1: {v1_reason}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
25 30 0:22 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
26 25 0:23 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
27 25 0:24 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
28 25 0:25 /outer /sys/fs/cgroup/pids ro,relatime - cgroup cgroup rw,pids
29 25 0:26 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw
30 1 8:1 / /my\\040root rw - ext4 /dev/sda1 rw";

    #[test]
    fn reads_cgroup_mounts_and_their_controllers() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 4, "{m:?}");
        assert_eq!(m[0].controllers, ["rw", "cpu"]);
        assert_eq!(m[2].root, "/outer");
        assert!(m[2].read_only);
        assert_eq!(m[3].version, CgroupVersion::V2);
        assert_eq!(m[3].mount_point, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(unescape("/my\\040root"), "/my root");
    }

    #[test]
    fn finds_the_hosts_v1_cgroup_of_each_controller() {
        let m = parse_mountinfo(MOUNTINFO);
        let own = parse_proc_cgroup("4:memory:/svc/a\n1:cpu:/\n8:pids:/outer/x\n0::/\n");
        let dirs = find_v1(&m, &own, &[Controller::Memory, Controller::Cpu]).unwrap();
        assert_eq!(
            dirs,
            [
                (
                    Controller::Memory,
                    PathBuf::from("/sys/fs/cgroup/memory/svc/a")
                ),
                (Controller::Cpu, PathBuf::from("/sys/fs/cgroup/cpu")),
            ]
        );
        // The pids mount is read-only: refused, and the reason names it.
        let e = find_v1(&m, &own, &[Controller::Pids]).unwrap_err();
        assert!(e.contains("read-only"), "{e}");
        let no_line = parse_proc_cgroup("1:cpu:/\n");
        let e = find_v1(&m, &no_line, &[Controller::Memory]).unwrap_err();
        assert!(e.contains("memory"), "{e}");
    }

    #[test]
    fn a_cgroup_outside_the_mounts_root_is_not_used() {
        let mount = Mount {
            version: CgroupVersion::V1,
            controllers: vec!["pids".into()],
            mount_point: "/m".into(),
            root: "/outer".into(),
            read_only: false,
        };
        assert_eq!(dir_of(&mount, "/outer/x"), Some(PathBuf::from("/m/x")));
        assert_eq!(dir_of(&mount, "/outer"), Some(PathBuf::from("/m")));
        assert_eq!(dir_of(&mount, "/outerx"), None);
        assert_eq!(dir_of(&mount, "/elsewhere"), None);
    }

    #[test]
    fn v2_without_the_controllers_says_which_are_missing() {
        let dir = std::env::temp_dir().join(format!("roma-cg-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cgroup.controllers"), "cpu pids\n").unwrap();
        let mounts = [Mount {
            version: CgroupVersion::V2,
            controllers: Vec::new(),
            mount_point: dir.clone(),
            root: "/".into(),
            read_only: false,
        }];
        let own = parse_proc_cgroup("0::/\n");
        assert_eq!(
            find_v2(&mounts, &own, &[Controller::Pids, Controller::Cpu], None).unwrap(),
            dir
        );
        let e = find_v2(&mounts, &own, &[Controller::Memory], None).unwrap_err();
        assert!(e.contains("memory"), "{e}");
        let e = find_v2(
            &mounts,
            &own,
            &[Controller::Cpu],
            Some(Path::new("/elsewhere")),
        )
        .unwrap_err();
        assert!(e.contains("cgroup_parent"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
