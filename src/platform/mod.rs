//! Operating-system facilities borg relies on: user/group names, host identity, and (for
//! archives) extended attributes, ACLs and file flags.

pub mod acl;
pub mod flags;
pub mod host;
pub mod sigint;
pub mod users;
pub mod xattr;
