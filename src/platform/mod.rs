//! Operating-system facilities borg relies on: user/group names, host identity, and (for
//! archives) extended attributes, ACLs and file flags.

pub mod host;
pub mod users;
// TEMPORARY until the platform branch lands: no extended metadata.
pub mod xattr {
    pub fn set_all(
        _p: &std::path::Path,
        _fd: Option<i32>,
        _x: &[(Vec<u8>, Vec<u8>)],
    ) -> Vec<String> {
        Vec::new()
    }
    pub fn get_all(
        _p: &std::path::Path,
        _fd: Option<i32>,
    ) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, Vec<String>), std::io::Error> {
        Ok((Vec::new(), Vec::new()))
    }
}
pub mod acl {
    pub type Pair = (Option<Vec<u8>>, Option<Vec<u8>>);
    pub fn get(
        _p: &std::path::Path,
        _fd: Option<i32>,
        _dir: bool,
        _n: bool,
    ) -> Result<Pair, std::io::Error> {
        Ok((None, None))
    }
    pub fn set(
        _p: &std::path::Path,
        _fd: Option<i32>,
        _a: Option<&[u8]>,
        _d: Option<&[u8]>,
        _n: bool,
    ) -> Result<(), std::io::Error> {
        Ok(())
    }
}
pub mod flags {
    pub const UF_NODUMP: u32 = 1;
    pub fn get(_p: &std::path::Path, _m: u32, _fd: Option<i32>) -> u32 {
        0
    }
    pub fn set(_p: &std::path::Path, _fd: Option<i32>, _f: u32) -> Result<(), std::io::Error> {
        Ok(())
    }
}
