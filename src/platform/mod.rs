//! Operating-system facilities borg relies on: user/group names, host identity, and (for
//! archives) extended attributes, ACLs and file flags.

pub mod host;
pub mod users;
