//! A writer for the `newc` cpio format, the one format the kernel unpacks as an initramfs.
//!
//! The initramfs holds a handful of files (busybox, `/init`, a few modules), so building it
//! in memory is simpler than depending on the `cpio` package being installed.

/// One archive member.
pub enum Entry<'a> {
    Dir {
        path: &'a str,
    },
    File {
        path: &'a str,
        mode: u32,
        data: &'a [u8],
    },
    CharDevice {
        path: &'a str,
        major: u32,
        minor: u32,
    },
}

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;

/// The archive of `entries`, in order, with the trailer the kernel stops at.
pub fn archive(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        // Inode numbers only need to differ; 0 is avoided because some readers skip it.
        let ino = index as u32 + 1;
        match entry {
            Entry::Dir { path } => member(&mut out, ino, path, S_IFDIR | 0o755, 2, (0, 0), &[]),
            Entry::File { path, mode, data } => {
                member(&mut out, ino, path, S_IFREG | mode, 1, (0, 0), data)
            }
            Entry::CharDevice { path, major, minor } => member(
                &mut out,
                ino,
                path,
                S_IFCHR | 0o600,
                1,
                (*major, *minor),
                &[],
            ),
        }
    }
    member(&mut out, 0, "TRAILER!!!", 0, 1, (0, 0), &[]);
    out
}

/// Header, NUL-terminated name and data, each padded to 4 bytes as newc requires.
fn member(
    out: &mut Vec<u8>,
    ino: u32,
    path: &str,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    data: &[u8],
) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime: fixed, so the same inputs give the same bytes
        u32::try_from(data.len()).expect("initramfs members are far below 4 GiB"),
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        u32::try_from(path.len() + 1).expect("short paths"),
        0, // check: unused by newc without CRC
    ];
    out.extend_from_slice(b"070701");
    for field in fields {
        out.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    out.extend_from_slice(path.as_bytes());
    out.push(0);
    pad(out);
    out.extend_from_slice(data);
    pad(out);
}

fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lays_out_headers_names_and_data_on_four_byte_boundaries() {
        let bytes = archive(&[
            Entry::Dir { path: "bin" },
            Entry::File {
                path: "init",
                mode: 0o755,
                data: b"hi\n",
            },
        ]);

        // 110-byte header + "bin\0" = 114, padded to 116.
        assert_eq!(&bytes[..6], b"070701");
        assert_eq!(&bytes[6..14], b"00000001");
        assert_eq!(&bytes[14..22], b"000041ed");
        assert_eq!(&bytes[110..116], b"bin\0\0\0");

        // The file: header at 116, "init\0" ends at 231, padded to 232, then 3 data bytes.
        let file = &bytes[116..];
        assert_eq!(&file[14..22], b"000081ed");
        assert_eq!(&file[54..62], b"00000003");
        assert_eq!(&file[94..102], b"00000005");
        assert_eq!(&file[110..116], b"init\0\0");
        assert_eq!(&file[116..120], b"hi\n\0");

        // The trailer closes the archive, and the whole is 4-byte aligned.
        let trailer = &bytes[236..];
        assert_eq!(&trailer[110..121], b"TRAILER!!!\0");
        assert!(bytes.len().is_multiple_of(4));
        assert_eq!(bytes.len(), 236 + 124);
    }

    #[test]
    fn device_nodes_carry_their_numbers_in_rdev() {
        let bytes = archive(&[Entry::CharDevice {
            path: "dev/console",
            major: 5,
            minor: 1,
        }]);
        assert_eq!(&bytes[14..22], b"00002180");
        assert_eq!(&bytes[78..86], b"00000005");
        assert_eq!(&bytes[86..94], b"00000001");
    }
}
