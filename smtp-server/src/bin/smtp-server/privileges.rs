//! Dropping root after binding: `--user` and `--group`.

use std::path::PathBuf;

/// Switches to `user` and `group` for good (after binding), first giving them the Maildir
/// directories made while still privileged.
pub(crate) fn drop_privileges(
    user: Option<&str>,
    group: Option<&str>,
    dirs: &[PathBuf],
) -> Result<(), String> {
    use nix::unistd::{Gid, Group, Uid, User, setgid, setgroups, setuid};
    if user.is_none() && group.is_none() {
        return Ok(());
    }
    let user = match user {
        None => None,
        Some(name) => {
            let found = match name.parse::<u32>() {
                Ok(n) => User::from_uid(Uid::from_raw(n)),
                Err(_) => User::from_name(name),
            };
            Some(
                found
                    .map_err(|e| format!("user {name}: {e}"))?
                    .ok_or_else(|| format!("user {name}: no such user"))?,
            )
        }
    };
    let gid = match (group, &user) {
        (Some(name), _) => {
            let found = match name.parse::<u32>() {
                Ok(n) => Group::from_gid(Gid::from_raw(n)),
                Err(_) => Group::from_name(name),
            };
            found
                .map_err(|e| format!("group {name}: {e}"))?
                .ok_or_else(|| format!("group {name}: no such group"))?
                .gid
        }
        (None, Some(u)) => u.gid,
        (None, None) => Gid::current(),
    };
    let uid = user.as_ref().map(|u| u.uid);
    for dir in dirs {
        for sub in ["", "tmp", "new", "cur"] {
            std::os::unix::fs::chown(dir.join(sub), uid.map(Uid::as_raw), Some(gid.as_raw()))
                .map_err(|e| format!("chown {}: {e}", dir.join(sub).display()))?;
        }
    }
    if Uid::effective().is_root() {
        setgroups(&[gid]).map_err(|e| format!("setgroups: {e}"))?;
    }
    setgid(gid).map_err(|e| format!("setgid {gid}: {e}"))?;
    if let Some(uid) = uid {
        setuid(uid).map_err(|e| format!("setuid {uid}: {e}"))?;
        if !uid.is_root() && setuid(Uid::from_raw(0)).is_ok() {
            return Err("privileges could not be dropped".into());
        }
    }
    Ok(())
}
