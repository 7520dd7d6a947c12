//! The jailed process's new root: a small tmpfs holding read-only bind mounts of only the worker
//! binary and the library folders it loads, made read-only itself, then `pivot_root`ed into with
//! the old root detached. No /etc, /home, /tmp, /proc or /dev, and nothing writable.
//!
//! Runs inside the new user and mount namespaces, single-threaded, before capabilities drop.

use crate::SandboxError;
use rustix::fs::StatVfsMountFlags;
use rustix::mount::{
    MountFlags, MountPropagationFlags, UnmountFlags, mount, mount_bind, mount_bind_recursive,
    mount_change, mount_remount, unmount,
};
use std::ffi::CStr;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Library folders always bound (those that exist): where the dynamic loader, libc, libstdc++,
/// libgcc_s and the system ICU data live.
pub const SYSTEM_LIBRARY_DIRS: [&str; 4] = ["/lib", "/lib64", "/usr/lib", "/usr/lib64"];

/// Places where the tmpfs can be mounted before `pivot_root`; the first one that holds none of
/// the bound paths is used (the mount hides what is under it, in this mount namespace only).
const STAGING_DIRS: [&str; 6] = ["/tmp", "/mnt", "/run", "/media", "/srv", "/opt"];

/// The tmpfs holds only directories, empty mount-point files and symlinks.
const ROOT_TMPFS_OPTIONS: &CStr = c"size=1m,nr_inodes=4096,mode=0755";

/// Symlink chains longer than this are refused.
const MAX_SYMLINK_DEPTH: u32 = 8;

/// Builds the new root holding `exe` and `paths` (plus [`SYSTEM_LIBRARY_DIRS`]) and enters it.
pub(crate) fn build_and_enter(exe: &Path, paths: &[PathBuf]) -> Result<(), SandboxError> {
    let mut wanted: Vec<PathBuf> = SYSTEM_LIBRARY_DIRS.iter().map(PathBuf::from).collect();
    wanted.extend(paths.iter().cloned());
    wanted.push(exe.to_path_buf());
    for p in &wanted {
        if !p.is_absolute() || p.parent().is_none() {
            return Err(SandboxError::InvalidSpec(format!(
                "cannot bind {} into the jail (must be absolute and not /)",
                p.display()
            )));
        }
    }

    mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(SandboxError::at("make / rprivate"))?;
    let staging = staging_dir(&wanted)?;
    mount(
        "tmpfs",
        staging,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(ROOT_TMPFS_OPTIONS),
    )
    .map_err(SandboxError::at(format!(
        "mount tmpfs ({ROOT_TMPFS_OPTIONS:?}) on {}",
        staging.display()
    )))?;

    let mut bound: Vec<PathBuf> = Vec::new();
    for p in &wanted {
        mirror(staging, p, 0, &mut bound)?;
    }

    rustix::process::chdir(staging).map_err(SandboxError::at("chdir to the new root"))?;
    rustix::process::pivot_root(".", ".").map_err(SandboxError::at("pivot_root"))?;
    unmount(".", UnmountFlags::DETACH).map_err(SandboxError::at("detach the old root"))?;
    rustix::process::chdir("/").map_err(SandboxError::at("chdir /"))?;
    mount_remount(
        "/",
        MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV,
        "",
    )
    .map_err(SandboxError::at("remount the new root read-only"))?;
    Ok(())
}

fn staging_dir(wanted: &[PathBuf]) -> Result<&'static Path, SandboxError> {
    STAGING_DIRS
        .iter()
        .map(Path::new)
        .find(|d| {
            d.is_dir()
                && wanted.iter().all(|w| {
                    !w.starts_with(d) && fs::canonicalize(w).map_or(true, |c| !c.starts_with(d))
                })
        })
        .ok_or_else(|| {
            SandboxError::InvalidSpec(format!(
                "no staging directory for the jail root: each of {STAGING_DIRS:?} is missing or \
                 holds a path to bind"
            ))
        })
}

/// `p` (absolute) as a path under `root`.
fn inside(root: &Path, p: &Path) -> PathBuf {
    let mut out = root.to_path_buf();
    for c in p.components() {
        if let Component::Normal(n) = c {
            out.push(n);
        }
    }
    out
}

/// Makes `path` visible at the same place under `root`: symlinks are re-created (and their
/// targets mirrored), files and directories bound read-only. Missing paths are skipped.
fn mirror(
    root: &Path,
    path: &Path,
    depth: u32,
    bound: &mut Vec<PathBuf>,
) -> Result<(), SandboxError> {
    if depth > MAX_SYMLINK_DEPTH {
        return Err(SandboxError::InvalidSpec(format!(
            "too many symlinks resolving {}",
            path.display()
        )));
    }
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SandboxError::os(format!("stat {}", path.display()), e)),
    };
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(SandboxError::InvalidSpec(format!(
            "cannot bind {} into the jail",
            path.display()
        )));
    };
    // Where the path really is, with every parent symlink resolved; a canonical path has no
    // symlink components, so creating it under `root` never follows a link we made.
    let parent = fs::canonicalize(parent)
        .map_err(SandboxError::at(format!("resolve {}", parent.display())))?;
    let here = parent.join(name);
    let covered = bound.iter().any(|b| here.starts_with(b));

    if meta.file_type().is_symlink() {
        let target = fs::read_link(&here)
            .map_err(SandboxError::at(format!("readlink {}", here.display())))?;
        if !covered {
            let link = inside(root, &here);
            if fs::symlink_metadata(&link).is_err() {
                fs::create_dir_all(inside(root, &parent))
                    .map_err(SandboxError::at(format!("mkdir {}", parent.display())))?;
                std::os::unix::fs::symlink(&target, &link)
                    .map_err(SandboxError::at(format!("symlink {}", here.display())))?;
            }
        }
        let resolved = if target.is_absolute() {
            target
        } else {
            parent.join(target)
        };
        return mirror(root, &resolved, depth + 1, bound);
    }
    if covered {
        return Ok(());
    }

    let target = inside(root, &here);
    fs::create_dir_all(inside(root, &parent))
        .map_err(SandboxError::at(format!("mkdir {}", parent.display())))?;
    if meta.is_dir() {
        fs::create_dir(&target).map_err(SandboxError::at(format!("mkdir {}", target.display())))?;
    } else {
        fs::File::create(&target)
            .map_err(SandboxError::at(format!("create {}", target.display())))?;
    }
    match mount_bind(&here, &target) {
        Ok(()) => {}
        // A tree with submounts we may not reveal one by one must be bound recursively; only
        // the top mount is then made read-only (the submounts keep their own flags).
        Err(rustix::io::Errno::INVAL) => mount_bind_recursive(&here, &target)
            .map_err(SandboxError::at(format!("bind-mount {}", here.display())))?,
        Err(e) => {
            return Err(SandboxError::os(
                format!("bind-mount {}", here.display()),
                e,
            ));
        }
    }
    // A remount in a user namespace must keep the flags the host mount has locked (noexec,
    // atime flags), or the kernel refuses it.
    let locked = rustix::fs::statvfs(&here)
        .map_err(SandboxError::at(format!("statvfs {}", here.display())))?
        .f_flag;
    let mut flags = MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV;
    for (st, ms) in [
        (StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
        (StatVfsMountFlags::NOATIME, MountFlags::NOATIME),
        (StatVfsMountFlags::NODIRATIME, MountFlags::NODIRATIME),
        (StatVfsMountFlags::RELATIME, MountFlags::RELATIME),
    ] {
        if locked.contains(st) {
            flags |= ms;
        }
    }
    mount_remount(&target, flags, "").map_err(SandboxError::at(format!(
        "remount {} read-only",
        here.display()
    )))?;
    bound.push(here);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_reroots_absolute_paths() {
        assert_eq!(
            inside(Path::new("/tmp"), Path::new("/usr/lib/x")),
            PathBuf::from("/tmp/usr/lib/x")
        );
        assert_eq!(
            inside(Path::new("/tmp"), Path::new("/")),
            PathBuf::from("/tmp")
        );
    }

    #[test]
    fn staging_avoids_dirs_holding_bound_paths() {
        let d = staging_dir(&[PathBuf::from("/usr/lib")]).unwrap();
        assert!(STAGING_DIRS.contains(&d.to_str().unwrap()));
        let d2 = staging_dir(&[PathBuf::from(d).join("worker")]).unwrap();
        assert_ne!(d, d2);
    }
}
