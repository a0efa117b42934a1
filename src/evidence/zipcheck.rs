//! The ZIP's own structure, checked before any entry is read. A ZIP has
//! two lists of its files: a local header before each file's bytes and a
//! central directory at the end. Readers disagree on which to trust and on
//! which of two same-named entries wins, so a forger can show one reader a
//! doctored frame and the verifier the genuine one. A bundle passes only
//! if both lists name the same files in the same order, each once, with
//! nothing before the first file or between the files and the directory.

const LOCAL: &[u8; 4] = b"PK\x03\x04";
const CENTRAL: &[u8; 4] = b"PK\x01\x02";

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize)
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

/// Walks the local headers from the start, then the central directory
/// right after them: both lists of names in order, or why the layout is
/// not one firelane writes.
fn raw_names(zip: &[u8]) -> Result<(Vec<String>, Vec<String>), String> {
    let mut names = Vec::new();
    let mut at = 0;
    loop {
        match zip.get(at..at + 4) {
            Some(sig) if sig == LOCAL => {}
            Some(sig) if sig == CENTRAL && !names.is_empty() => {
                return Ok((names, central_names(zip, at)?));
            }
            _ => {
                return Err(format!(
                    "unexpected bytes at offset {at}: a file's local header or the central directory must follow"
                ));
            }
        }
        let bad = || format!("local header at offset {at} is truncated");
        let flags = u16_at(zip, at + 6).ok_or_else(bad)?;
        if flags & 0x08 != 0 {
            return Err(format!(
                "local header at offset {at} defers its sizes to a data descriptor; bundles are written without"
            ));
        }
        let compressed = u32_at(zip, at + 18).ok_or_else(bad)?;
        let name_len = u16_at(zip, at + 26).ok_or_else(bad)?;
        let extra_len = u16_at(zip, at + 28).ok_or_else(bad)?;
        let name = zip.get(at + 30..at + 30 + name_len).ok_or_else(bad)?;
        names.push(String::from_utf8_lossy(name).into_owned());
        at += 30 + name_len + extra_len + compressed;
    }
}

/// The central directory's records from offset `at`, in order.
fn central_names(zip: &[u8], mut at: usize) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    while zip.get(at..at + 4) == Some(&CENTRAL[..]) {
        let bad = || format!("directory record at offset {at} is truncated");
        let name_len = u16_at(zip, at + 28).ok_or_else(bad)?;
        let extra_len = u16_at(zip, at + 30).ok_or_else(bad)?;
        let comment_len = u16_at(zip, at + 32).ok_or_else(bad)?;
        let name = zip.get(at + 46..at + 46 + name_len).ok_or_else(bad)?;
        names.push(String::from_utf8_lossy(name).into_owned());
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(names)
}

/// Problems with the ZIP's structure. `read` is the directory as the ZIP
/// reader sees it (which merges duplicates).
pub fn problems(zip: &[u8], read: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let (local, central) = match raw_names(zip) {
        Ok(lists) => lists,
        Err(e) => return vec![format!("ZIP structure: {e}")],
    };
    let mut seen = std::collections::BTreeSet::new();
    for name in &central {
        if !seen.insert(name) {
            out.push(format!(
                "{name}: listed twice in the ZIP's directory (a second copy can hide a doctored file)"
            ));
        }
    }
    if local != central || central != read {
        out.push(format!(
            "ZIP structure: the files' local headers ({}) differ from its directory ({})",
            local.join(", "),
            central.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use zip::write::SimpleFileOptions;

    use super::*;

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in files {
            w.start_file(*name, SimpleFileOptions::default()).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn central(zip: &[u8]) -> Vec<String> {
        let a = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
        (0..a.len())
            .map(|i| a.name_for_index(i).unwrap().unwrap().into_owned())
            .collect()
    }

    fn replace_all(bytes: &mut [u8], from: &[u8], to: &[u8]) {
        let mut i = 0;
        while i + from.len() <= bytes.len() {
            if &bytes[i..i + from.len()] == from {
                bytes[i..i + from.len()].copy_from_slice(to);
            }
            i += 1;
        }
    }

    #[test]
    fn a_bundle_as_written_passes() {
        let z = zip_of(&[("manifest.json", b"{}"), ("evidence/a.jpg", b"genuine")]);
        assert!(problems(&z, &central(&z)).is_empty());
    }

    #[test]
    fn a_second_copy_of_a_file_is_caught() {
        // A doctored frame listed before the genuine one, under the same
        // name: one reader shows the first, another the last.
        let mut z = zip_of(&[
            ("evidence/a.jpX", b"doctored"),
            ("evidence/a.jpg", b"genuine"),
        ]);
        replace_all(&mut z, b"evidence/a.jpX", b"evidence/a.jpg");
        let p = problems(&z, &central(&z));
        assert!(p.iter().any(|m| m.contains("listed twice")), "{p:?}");
    }

    #[test]
    fn a_file_present_only_as_a_local_header_is_caught() {
        let mut z = zip_of(&[
            ("manifest.json", b"{}"),
            ("evidence/h.jpg", b"hidden"),
            ("evidence/a.jpg", b"genuine"),
        ]);
        // Cut the hidden file's record out of the central directory and
        // fix the end record's count and size: readers of the directory
        // no longer see it, its bytes stay in the file.
        let cd_start = z.windows(4).position(|w| w == CENTRAL).unwrap();
        let name = b"evidence/h.jpg";
        let rec = cd_start
            + z[cd_start..]
                .windows(name.len())
                .position(|w| w == name)
                .unwrap()
            - 46;
        let rec_len = 46
            + u16_at(&z, rec + 28).unwrap()
            + u16_at(&z, rec + 30).unwrap()
            + u16_at(&z, rec + 32).unwrap();
        z.drain(rec..rec + rec_len);
        let eocd = z.windows(4).rposition(|w| w == b"PK\x05\x06").unwrap();
        for off in [8, 10] {
            let n = u16_at(&z, eocd + off).unwrap() - 1;
            z[eocd + off..eocd + off + 2].copy_from_slice(&(n as u16).to_le_bytes());
        }
        let size = u32_at(&z, eocd + 12).unwrap() - rec_len;
        z[eocd + 12..eocd + 16].copy_from_slice(&(size as u32).to_le_bytes());
        let c = central(&z);
        assert_eq!(c.len(), 2, "the directory hides it: {c:?}");
        let p = problems(&z, &c);
        assert!(p.iter().any(|m| m.contains("local headers")), "{p:?}");
    }

    #[test]
    fn bytes_before_the_first_file_are_caught() {
        let mut z = b"junk".to_vec();
        z.extend(zip_of(&[("manifest.json", b"{}")]));
        let p = problems(&z, &["manifest.json".to_string()]);
        assert!(p.iter().any(|m| m.contains("offset 0")), "{p:?}");
    }
}
