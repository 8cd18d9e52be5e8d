//! The passphrase-protected key blob ("EncryptedKey"), where it is stored (key file or repo
//! config), and the `key export` formats (plain, paper, QR HTML).
//!
//! blob = base64(msgpack{algorithm: "sha256", data: AES-CTR(kek, 0)(inner), hash: HMAC(kek, inner),
//! iterations, salt, version: 1}), kek = PBKDF2-HMAC-SHA256(passphrase, salt, iterations, 32),
//! wrapped at 70 columns.

use std::path::{Path, PathBuf};

use aes::cipher::{KeyIvInit, StreamCipher};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::key::{Key, KeyKind, KeyMaterial, KeyStorage};
use super::passphrase::{self, Passphrase};
use super::{CryptoError, Result};
use crate::msgpack::{self, sorted_map, Value};
use crate::repo::{Location, Repository};

pub const PBKDF2_ITERATIONS: u32 = 100_000;
pub const FILE_ID: &str = "BORG_KEY";

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

fn kdf(passphrase: &str, salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha256>(passphrase.as_bytes(), salt, iterations, &mut *out);
    out
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut h = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key size");
    h.update(data);
    h.finalize().into_bytes().into()
}

/// Encrypts packed key material under a passphrase; returns the packed EncryptedKey.
pub fn encrypt_blob(inner: &[u8], passphrase: &str) -> Vec<u8> {
    let salt: [u8; 32] = super::random_bytes();
    encrypt_blob_with(inner, passphrase, &salt, PBKDF2_ITERATIONS)
}

pub fn encrypt_blob_with(inner: &[u8], passphrase: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    let kek = kdf(passphrase, salt, iterations);
    let hash = hmac_sha256(&*kek, inner);
    let mut data = inner.to_vec();
    Aes256Ctr::new((&*kek).into(), &[0u8; 16].into()).apply_keystream(&mut data);
    sorted_map(vec![
        ("version", Value::Int(1)),
        ("salt", Value::from(salt)),
        ("iterations", Value::from(iterations)),
        ("algorithm", Value::from("sha256")),
        ("hash", Value::from(&hash[..])),
        ("data", Value::from(data)),
    ])
    .to_bytes()
}

/// Decrypts a packed EncryptedKey; `Ok(None)` means the passphrase is wrong.
pub fn decrypt_blob(blob: &[u8], passphrase: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
    let bad = |m: String| CryptoError::Other(m);
    let v = msgpack::decode(blob).map_err(|e| bad(format!("invalid key blob: {e}")))?;
    let get = |k: &str| v.req(k).map_err(|e| bad(format!("invalid key blob: {e}")));
    let version = get("version")?.as_int().map_err(|e| bad(e.to_string()))?;
    if version != 1 {
        return Err(bad(format!(
            "encrypted key version {version} is not supported by this borg version."
        )));
    }
    let alg = get("algorithm")?.as_str().map_err(|e| bad(e.to_string()))?;
    if alg != "sha256" {
        return Err(bad(format!(
            "encrypted key algorithm '{alg}' is not supported by this borg version."
        )));
    }
    let salt = get("salt")?.as_bytes().map_err(|e| bad(e.to_string()))?;
    let iterations = get("iterations")?
        .as_u64()
        .map_err(|e| bad(e.to_string()))?;
    let iterations =
        u32::try_from(iterations).map_err(|_| bad("invalid iteration count".into()))?;
    let hash = get("hash")?.as_bytes().map_err(|e| bad(e.to_string()))?;
    let data = get("data")?.as_bytes().map_err(|e| bad(e.to_string()))?;
    let kek = kdf(passphrase, salt, iterations);
    let mut plain = Zeroizing::new(data.to_vec());
    Aes256Ctr::new((&*kek).into(), &[0u8; 16].into()).apply_keystream(&mut plain);
    let mac = hmac_sha256(&*kek, &plain);
    if bool::from(mac.ct_eq(hash)) {
        Ok(Some(plain))
    } else {
        Ok(None)
    }
}

/// base64 of a blob, wrapped at 70 columns (Python's `textwrap.wrap`), no trailing newline.
pub fn blob_to_text(blob: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(blob);
    b64.as_bytes()
        .chunks(70)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Decodes base64 text, ignoring whitespace.
pub fn text_to_blob(text: &str) -> Result<Vec<u8>> {
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(clean)
        .map_err(|e| CryptoError::Other(format!("invalid key data (base64): {e}")))
}

/// Key file text: `BORG_KEY <repo id hex>\n<base64 lines>\n`.
pub fn keyfile_text(repo_id: &[u8; 32], blob_text: &str) -> String {
    let mut s = format!("{FILE_ID} {}\n{blob_text}", hex::encode(repo_id));
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// Checks that `path` is a key file for `repo_id`.
fn keyfile_matches(path: &Path, repo_id: &[u8; 32], repo_display: &str) -> Result<()> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| CryptoError::io(path, e))?;
    let mut head = vec![0u8; FILE_ID.len() + 1 + 64];
    let n = f.read(&mut head).map_err(|e| CryptoError::io(path, e))?;
    head.truncate(n);
    let magic = format!("{FILE_ID} ");
    if !head.starts_with(magic.as_bytes()) {
        return Err(CryptoError::KeyfileInvalid(
            repo_display.into(),
            path.display().to_string(),
        ));
    }
    if &head[magic.len()..] != hex::encode(repo_id).as_bytes() {
        return Err(CryptoError::KeyfileMismatch(
            repo_display.into(),
            path.display().to_string(),
        ));
    }
    Ok(())
}

/// Finds the key file of a repository: `BORG_KEY_FILE`, else a file in the keys dir whose first
/// line names the repository id.
pub fn find_keyfile(repo_id: &[u8; 32], repo_display: &str) -> Result<PathBuf> {
    if let Some(p) = keyfile_from_env() {
        keyfile_matches(&p, repo_id, repo_display)?;
        return Ok(p);
    }
    let dir = crate::dirs::keys_dir();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in names {
            if p.is_file() && keyfile_matches(&p, repo_id, repo_display).is_ok() {
                return Ok(p);
            }
        }
    }
    Err(CryptoError::KeyfileNotFound(
        repo_display.into(),
        dir.display().to_string(),
    ))
}

fn keyfile_from_env() -> Option<PathBuf> {
    std::env::var_os("BORG_KEY_FILE")
        .filter(|v| !v.is_empty())
        .map(|v| std::path::absolute(PathBuf::from(v)).unwrap_or_default())
}

/// Where a new key file goes: `BORG_KEY_FILE`, else `<keys dir>/<name from location>[.N]`.
pub fn new_keyfile_target(location: &Location) -> PathBuf {
    if let Some(p) = keyfile_from_env() {
        return p;
    }
    let dir = crate::dirs::keys_dir();
    let base = dir.join(location.key_file_name());
    let mut path = base.clone();
    let mut i = 1;
    while path.exists() {
        i += 1;
        path = PathBuf::from(format!("{}.{i}", base.display()));
    }
    path
}

fn write_keyfile(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| CryptoError::io(parent, e))?;
    }
    crate::repo::local::atomic::save_file(path, text.as_bytes())
        .map_err(|e| CryptoError::io(path, e))
}

/// Reads the blob text (base64 lines) of a repository's key from wherever its kind keeps it.
/// Returns the text and, for key files, the file path.
pub fn load_blob_text(kind: KeyKind, repo: &dyn Repository) -> Result<(String, Option<PathBuf>)> {
    let display = repo.location().canonical_path();
    match kind.storage() {
        KeyStorage::None => Err(CryptoError::UnencryptedRepo),
        KeyStorage::Keyfile => {
            let p = find_keyfile(&repo.id().0, &display)?;
            let text = std::fs::read_to_string(&p).map_err(|e| CryptoError::io(&p, e))?;
            let body: String = text.lines().skip(1).collect::<Vec<_>>().join("\n");
            Ok((body, Some(p)))
        }
        KeyStorage::Repo => {
            let data = repo.load_key()?;
            let text = String::from_utf8_lossy(&data).trim().to_string();
            if text.is_empty() {
                return Err(CryptoError::RepoKeyNotFound(display));
            }
            Ok((text, None))
        }
    }
}

/// Stores blob text for a repository (new key file or repo config). Returns the key file path.
pub fn store_blob_text(
    kind: KeyKind,
    repo: &dyn Repository,
    location: &Location,
    text: &str,
    keyfile: Option<&Path>,
    create: bool,
) -> Result<Option<PathBuf>> {
    match kind.storage() {
        KeyStorage::None => Err(CryptoError::UnencryptedRepo),
        KeyStorage::Repo => {
            repo.save_key(text.as_bytes())?;
            Ok(None)
        }
        KeyStorage::Keyfile => {
            let target = match keyfile {
                Some(p) => p.to_path_buf(),
                None => new_keyfile_target(location),
            };
            if create && target.is_file() {
                return Err(CryptoError::KeyExists(target.display().to_string()));
            }
            write_keyfile(&target, &keyfile_text(&repo.id().0, text))?;
            Ok(Some(target))
        }
    }
}

/// Saves key material under a passphrase where `kind` keeps it.
pub fn save_key(
    key: &Key,
    repo: &dyn Repository,
    location: &Location,
    passphrase: &str,
    keyfile: Option<&Path>,
    create: bool,
) -> Result<Option<PathBuf>> {
    let blob = encrypt_blob(&key.material()?.pack(), passphrase);
    store_blob_text(
        key.kind,
        repo,
        location,
        &blob_to_text(&blob),
        keyfile,
        create,
    )
}

/// Loads the key of a repository whose manifest envelope starts with `type_byte`, asking for
/// the passphrase as borg does: environment first (wrong → PassphraseWrong), else the empty
/// passphrase, else up to three interactive tries.
pub fn load_key(repo: &dyn Repository, type_byte: u8) -> Result<(Key, Option<Passphrase>)> {
    let kind = KeyKind::from_type_byte(type_byte)?;
    if kind == KeyKind::Plaintext {
        return Ok((Key::plaintext(), None));
    }
    let (text, keyfile) = load_blob_text(kind, repo)?;
    let blob = text_to_blob(&text)?;
    let target = keyfile
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| repo.location().canonical_path());
    let try_pass = |p: &str| -> Result<Option<KeyMaterial>> {
        match decrypt_blob(&blob, p)? {
            Some(inner) => Ok(Some(KeyMaterial::unpack(&inner)?)),
            None => Ok(None),
        }
    };
    let (material, pass) = match passphrase::env_passphrase()? {
        Some(p) => match try_pass(&p)? {
            Some(m) => (m, p),
            None => return Err(CryptoError::PassphraseWrong),
        },
        None => {
            let empty = Zeroizing::new(String::new());
            match try_pass("")? {
                Some(m) => (m, empty),
                None => {
                    let prompt = format!("Enter passphrase for key {target}: ");
                    let mut found = None;
                    for _ in 0..3 {
                        let p = passphrase::getpass(&prompt)?;
                        if let Some(m) = try_pass(&p)? {
                            found = Some((m, p));
                            break;
                        }
                    }
                    found.ok_or(CryptoError::PasswordRetriesExceeded)?
                }
            }
        }
    };
    if material.repository_id != repo.id().0 && kind.storage() == KeyStorage::Keyfile {
        return Err(CryptoError::KeyfileMismatch(
            repo.location().canonical_path(),
            target,
        ));
    }
    let mut key = Key::new(kind, Some(material));
    key.target = Some(target);
    Ok((key, Some(pass)))
}

fn sha256_hex(data: &[u8], n: usize) -> String {
    hex::encode(Sha256::digest(data))[..n].to_string()
}

fn grouped(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && i % 6 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// `key export --paper`: lines of 18 bytes with per-line checksums.
pub fn paper_export(repo_id: &[u8; 32], blob: &[u8]) -> String {
    let mut out = String::from(
        "To restore key use borg key import --paper /path/to/repo\n\nBORG PAPER KEY v1\n",
    );
    let lines = blob.len().div_ceil(18);
    let repoid = &hex::encode(repo_id)[..18];
    let complete = sha256_hex(blob, 12);
    let idcheck = sha256_hex(format!("{lines}/{repoid}/{complete}").as_bytes(), 2);
    out.push_str(&format!(
        "id: {lines} / {} / {} - {idcheck}\n",
        grouped(repoid),
        grouped(&complete)
    ));
    for (i, chunk) in blob.chunks(18).enumerate() {
        let idx = (i + 1) as u16;
        let mut d = idx.to_be_bytes().to_vec();
        d.extend_from_slice(chunk);
        out.push_str(&format!(
            "{:2}: {} - {}\n",
            idx,
            grouped(&hex::encode(chunk)),
            sha256_hex(&d, 2)
        ));
    }
    out
}

/// Interactive `key import --paper`: reads the id line and data lines (with their checksums)
/// through `ask`, returning the blob. `Ok(None)` when the user aborts.
pub fn paper_import(
    repo_id: &[u8; 32],
    mut ask: impl FnMut(&str) -> Option<String>,
    mut say: impl FnMut(&str),
) -> Result<Option<Vec<u8>>> {
    let repoid = hex::encode(repo_id)[..18].to_string();
    loop {
        let (lines, complete) = loop {
            let Some(l) = ask("id: ") else {
                return Ok(None);
            };
            let l = l.replace(' ', "");
            if l.is_empty() {
                return Ok(None);
            }
            let Some((data, check)) = l.split_once('-').filter(|(_, c)| !c.contains('-')) else {
                say("each line must contain exactly one '-', try again");
                continue;
            };
            let parts: Vec<&str> = data.split('/').collect();
            if parts.len() != 3 {
                say("the id line must contain exactly three '/', try again");
                continue;
            }
            if sha256_hex(data.to_lowercase().as_bytes(), 2) != check {
                say("line checksum did not match, try same line again");
                continue;
            }
            let Ok(lines) = parts[0].parse::<usize>() else {
                say("internal error while parsing length");
                continue;
            };
            if parts[1] != repoid {
                return Err(CryptoError::RepoIdMismatch);
            }
            break (lines, parts[2].to_string());
        };
        let mut result = Vec::new();
        let mut idx = 1usize;
        while idx <= lines {
            let Some(l) = ask(&format!("{idx:2}: ")) else {
                return Ok(None);
            };
            let l = l.replace(' ', "");
            if l.is_empty() {
                return Ok(None);
            }
            let Some((data, check)) = l.split_once('-').filter(|(_, c)| !c.contains('-')) else {
                say("each line must contain exactly one '-', try again");
                continue;
            };
            let Ok(part) = hex::decode(data) else {
                say("only characters 0-9 and a-f and '-' are valid, try again");
                continue;
            };
            let mut d = (idx as u16).to_be_bytes().to_vec();
            d.extend_from_slice(&part);
            if sha256_hex(&d, 2) != check {
                say(&format!(
                    "line checksum did not match, try line {idx} again"
                ));
                continue;
            }
            result.extend_from_slice(&part);
            idx += 1;
        }
        if sha256_hex(&result, 12) != complete {
            say("The overall checksum did not match, retry or enter a blank line to abort.");
            continue;
        }
        return Ok(Some(result));
    }
}

/// `key export --qr-html`: a self-contained page with the key text, its paper form and a QR
/// code (SVG) of the key text.
pub fn qr_html(keyfile_text: &str, paper: &str) -> String {
    let qr =
        qrcode::QrCode::with_error_correction_level(keyfile_text.as_bytes(), qrcode::EcLevel::L)
            .map(|c| {
                c.render::<qrcode::render::svg::Color>()
                    .min_dimensions(300, 300)
                    .build()
            })
            .unwrap_or_default();
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>BorgBackup key backup</title>\n\
<style>body{{font-family:sans-serif;margin:2em}}pre,textarea{{font-family:monospace}}textarea{{width:44em;height:12em}}</style>\n\
</head>\n<body>\n<h1>BorgBackup key backup</h1>\n<p>Keep this page safe: together with the passphrase it gives access to the repository.\n\
Restore with <code>borg key import REPOSITORY FILE</code> (the text below) or <code>borg key import --paper REPOSITORY</code> (the lines further down).</p>\n\
<textarea readonly>{}</textarea>\n<div>{qr}</div>\n<h2>Paper form</h2>\n<pre>{}</pre>\n</body>\n</html>\n",
        esc(keyfile_text),
        esc(paper)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value as J;

    fn vectors(name: &str) -> J {
        let p = format!("{}/tests/data/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }
    fn h(v: &J) -> Vec<u8> {
        hex::decode(v.as_str().unwrap()).unwrap()
    }

    #[test]
    fn keyblob_vector() {
        let v = vectors("keyblob.json");
        let pass = v["passphrase_utf8"].as_str().unwrap();
        let inner = h(&v["inner_packed_hex"]);
        let salt = h(&v["salt"]);
        assert_eq!(&*kdf(pass, &salt, 100_000), &h(&v["kek"])[..]);
        let outer = encrypt_blob_with(&inner, pass, &salt, 100_000);
        assert_eq!(outer, h(&v["outer_packed_hex"]));
        assert_eq!(
            blob_to_text(&outer),
            v["repo_config_key_value_text"].as_str().unwrap()
        );
        let id: [u8; 32] = h(&v["inner_fields"]["repository_id"]).try_into().unwrap();
        assert_eq!(
            keyfile_text(&id, &blob_to_text(&outer)),
            v["keyfile_text"].as_str().unwrap()
        );
        let back = decrypt_blob(&outer, pass).unwrap().unwrap();
        assert_eq!(&back[..], &inner[..]);
        assert!(decrypt_blob(&outer, "wrong").unwrap().is_none());
        assert_eq!(
            text_to_blob(v["repo_config_key_value_text"].as_str().unwrap()).unwrap(),
            outer
        );
    }

    #[test]
    fn paper_vector_roundtrip() {
        let dir = format!("{}/tests/data/vectors", env!("CARGO_MANIFEST_DIR"));
        let export = std::fs::read_to_string(format!("{dir}/fixture-key-export.txt")).unwrap();
        let paper = std::fs::read_to_string(format!("{dir}/fixture-key-paper.txt")).unwrap();
        let mut lines = export.lines();
        let id_hex = lines.next().unwrap().strip_prefix("BORG_KEY ").unwrap();
        let id: [u8; 32] = hex::decode(id_hex).unwrap().try_into().unwrap();
        let blob = text_to_blob(&lines.collect::<Vec<_>>().join("\n")).unwrap();
        assert_eq!(paper_export(&id, &blob), paper);
        // feed the paper lines back in, with one typo that must be rejected and retyped
        let mut input: Vec<String> = paper
            .lines()
            .skip(3)
            .map(|l| l.split_once(": ").map(|(_, r)| r.to_string()).unwrap())
            .collect();
        let good_line = input[2].clone();
        input.insert(2, good_line.replacen('a', "b", 1));
        let mut it = input.into_iter();
        let mut complaints = Vec::new();
        let got = paper_import(&id, |_| it.next(), |m| complaints.push(m.to_string()))
            .unwrap()
            .unwrap();
        assert_eq!(got, blob);
        assert_eq!(
            complaints,
            vec!["line checksum did not match, try line 2 again"]
        );
        // a different repository id is refused
        let other = [0u8; 32];
        let mut it2 = paper
            .lines()
            .skip(3)
            .map(|l| l.split_once(": ").unwrap().1.to_string());
        assert!(matches!(
            paper_import(&other, |_| it2.next(), |_| {}),
            Err(CryptoError::RepoIdMismatch)
        ));
    }

    #[test]
    fn qr_page_contains_key() {
        let page = qr_html("BORG_KEY abc\nxyz\n", "paper");
        assert!(page.contains("BORG_KEY abc") && page.contains("<svg"));
    }
}
