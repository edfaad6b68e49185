//! The reader against a hand-built blob and against the running kernel.

use super::*;

/// Builds a blob type by type, the way the kernel lays it out.
#[derive(Default)]
struct Builder {
    types: Vec<u8>,
    strings: Vec<u8>,
}

impl Builder {
    fn new() -> Self {
        // Offset 0 of the string section is the empty name.
        Self {
            types: Vec::new(),
            strings: vec![0],
        }
    }

    fn name(&mut self, name: &str) -> u32 {
        if name.is_empty() {
            return 0;
        }
        let offset = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        offset
    }

    fn words(&mut self, words: &[u32]) {
        for word in words {
            self.types.extend_from_slice(&word.to_ne_bytes());
        }
    }

    fn ty(&mut self, name: &str, kind: u32, kind_flag: bool, vlen: u32, size_or_type: u32) {
        let name = self.name(name);
        let info = (u32::from(kind_flag) << 31) | (kind << 24) | vlen;
        self.words(&[name, info, size_or_type]);
    }

    fn member(&mut self, name: &str, type_id: u32, offset: u32) {
        let name = self.name(name);
        self.words(&[name, type_id, offset]);
    }

    fn finish(self) -> Vec<u8> {
        let mut blob = Vec::new();
        blob.extend_from_slice(&MAGIC.to_ne_bytes());
        blob.extend_from_slice(&[1, 0]);
        for word in [
            HEADER_LEN as u32,
            0,
            self.types.len() as u32,
            self.types.len() as u32,
            self.strings.len() as u32,
        ] {
            blob.extend_from_slice(&word.to_ne_bytes());
        }
        blob.extend_from_slice(&self.types);
        blob.extend_from_slice(&self.strings);
        blob
    }
}

/// A task_struct with a 3-bit bitfield, pid/tgid behind a typedef, and exit_code inside
/// an anonymous union, preceded by types of every record size the walker must skip.
fn tiny_blob() -> Vec<u8> {
    let mut b = Builder::new();
    // 1: a forward declaration with the same name, which must not be picked.
    b.ty("task_struct", 7, false, 0, 0);
    // 2: int, with its 4-byte encoding word (signed, 32 bits).
    b.ty("int", KIND_INT, false, 0, 4);
    b.words(&[(1 << 24) | 32]);
    // 3: an enum with two 8-byte values.
    b.ty("state", KIND_ENUM, false, 2, 4);
    let (running, sleeping) = (b.name("RUNNING"), b.name("SLEEPING"));
    b.words(&[running, 0, sleeping, 1]);
    // 4: an array of 16 ints (12-byte record).
    b.ty("", KIND_ARRAY, false, 0, 0);
    b.words(&[2, 2, 16]);
    // 5: pid_t -> const int -> int.
    b.ty("pid_t", KIND_TYPEDEF, false, 0, 6);
    // 6: const int.
    b.ty("", KIND_CONST, false, 0, 2);
    // 7: anonymous union { int exit_code; int alias; }.
    b.ty("", KIND_UNION, false, 2, 4);
    b.member("alias", 2, 0);
    b.member("exit_code", 2, 0);
    // 8: anonymous struct { int pad; union { exit_code }; } one level deeper.
    b.ty("", KIND_STRUCT, false, 2, 8);
    b.member("pad", 2, 0);
    b.member("", 7, 32);
    // 9: the task_struct, with kind_flag set so member offsets carry bitfield sizes.
    b.ty("task_struct", KIND_STRUCT, true, 5, 48);
    b.member("flags", 2, (3 << 24) | 5);
    b.member("ids", 4, 32);
    b.member("pid", 5, 64 * 8);
    b.member("tgid", 5, 68 * 8);
    b.member("", 8, 72 * 8);
    b.finish()
}

#[test]
fn finds_offsets_through_typedefs_and_anonymous_members() {
    let offsets = task_offsets(&tiny_blob()).unwrap();
    assert_eq!(
        offsets,
        TaskOffsets {
            pid: 64,
            tgid: 68,
            exit_code: 76,
            valid: 1
        }
    );
}

#[test]
fn rejects_bitfields_and_non_int_members() {
    let blob = tiny_blob();
    let btf = Btf::parse(&blob).unwrap();
    let task = btf.find_struct("task_struct").unwrap();
    assert_eq!(task, 9);
    let err = btf.int32_member_offset(task, "flags").unwrap_err();
    assert!(
        matches!(&err, BtfError::NotByteAligned { member, bits: 5, .. } if member == "flags"),
        "{err:?}"
    );
    let err = btf.int32_member_offset(task, "ids").unwrap_err();
    assert!(
        matches!(&err, BtfError::NotInt32 { member, .. } if member == "ids"),
        "{err:?}"
    );
    let err = btf.int32_member_offset(task, "comm").unwrap_err();
    assert!(
        matches!(&err, BtfError::MemberNotFound { member, .. } if member == "comm"),
        "{err:?}"
    );
}

#[test]
fn rejects_malformed_blobs() {
    let mut blob = tiny_blob();
    blob[0] ^= 0xff;
    assert!(matches!(
        task_offsets(&blob),
        Err(BtfError::BadMagic { .. })
    ));

    let blob = tiny_blob();
    assert!(matches!(
        task_offsets(&blob[..HEADER_LEN + 20]),
        Err(BtfError::SectionOutOfBounds {
            section: "type",
            ..
        })
    ));
    assert!(matches!(
        task_offsets(&blob[..10]),
        Err(BtfError::Truncated { len: 10 })
    ));

    let mut b = Builder::new();
    b.ty("mystery", 31, false, 0, 0);
    assert!(matches!(
        task_offsets(&b.finish()),
        Err(BtfError::UnknownKind { id: 1, kind: 31 })
    ));

    let mut b = Builder::new();
    b.ty("int", KIND_INT, false, 0, 4);
    b.words(&[32]);
    assert!(matches!(
        task_offsets(&b.finish()),
        Err(BtfError::StructNotFound { name }) if name == "task_struct"
    ));
}

/// The running kernel's offsets, checked against `bpftool btf dump` when it is installed
/// and always against the layout facts every kernel shares.
#[test]
fn reads_the_running_kernel() {
    let offsets = task_offsets_from(VMLINUX_BTF).unwrap();
    assert_eq!(offsets.valid, 1);
    // `pid_t pid; pid_t tgid;` are adjacent, and exit_code is declared before them.
    assert_eq!(offsets.tgid, offsets.pid + 4);
    assert!(offsets.exit_code < offsets.pid);

    let Ok(out) = std::process::Command::new("bpftool")
        .args(["btf", "dump", "file", VMLINUX_BTF, "format", "raw"])
        .output()
    else {
        return;
    };
    let dump = String::from_utf8(out.stdout).unwrap();
    let members: Vec<&str> = dump
        .lines()
        .skip_while(|line| !line.contains("STRUCT 'task_struct' size="))
        .skip(1)
        .take_while(|line| line.starts_with('\t'))
        .collect();
    let bits_of = |name: &str| -> u32 {
        let line = members
            .iter()
            .find(|line| line.trim_start().starts_with(&format!("'{name}' ")))
            .unwrap();
        line.rsplit("bits_offset=").next().unwrap().parse().unwrap()
    };
    assert_eq!(offsets.pid * 8, bits_of("pid"));
    assert_eq!(offsets.tgid * 8, bits_of("tgid"));
    assert_eq!(offsets.exit_code * 8, bits_of("exit_code"));
}
