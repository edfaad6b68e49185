//! A small reader of the kernel's BTF blob, for the `task_struct` offsets the kernel programs
//! need.
//!
//! aya 0.14 gives Rust programs no CO-RE field relocations and keeps its own BTF accessors
//! private, so the loader finds the offsets here and patches them into the object as a
//! global. The format is documented in the kernel's Documentation/bpf/btf.rst: a header, a
//! type section of variable-length records (ids start at 1), and a string section.

use std::{io, path::Path};

use observer_ebpf::tracked::TaskOffsets;
use thiserror::Error;

/// Where the running kernel exposes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;
const HEADER_LEN: usize = 24;

const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;
const KIND_MAX: u32 = 19;

/// Anonymous members nest a few levels in practice; the limit only guards against a blob
/// whose types refer to each other in a loop.
const MAX_NESTING: usize = 16;

#[derive(Debug, Error)]
pub enum BtfError {
    #[error("reading {path}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("BTF blob of {len} bytes is shorter than its header")]
    Truncated { len: usize },
    #[error("bad BTF magic {magic:#06x} (expected 0xeb9f in native byte order)")]
    BadMagic { magic: u16 },
    #[error("BTF {section} section ({offset}+{len}) runs past the blob of {blob_len} bytes")]
    SectionOutOfBounds {
        section: &'static str,
        offset: usize,
        len: usize,
        blob_len: usize,
    },
    #[error("BTF type {id} has unknown kind {kind}")]
    UnknownKind { id: u32, kind: u32 },
    #[error("BTF type {id} runs past the end of the type section")]
    TypeOutOfBounds { id: u32 },
    #[error("BTF refers to type {id}, which does not exist")]
    NoSuchType { id: u32 },
    #[error("struct {name} not found in BTF")]
    StructNotFound { name: String },
    #[error("member {member} not found in struct {name}")]
    MemberNotFound { name: String, member: String },
    #[error("member {member} of struct {name} is not a whole byte-aligned field (bit {bits})")]
    NotByteAligned {
        name: String,
        member: String,
        bits: u32,
    },
    #[error("member {member} of struct {name} is not a 4-byte integer")]
    NotInt32 { name: String, member: String },
}

/// Reads `task_struct`'s `pid`, `tgid` and `exit_code` offsets from a BTF file (normally
/// [`VMLINUX_BTF`]).
pub fn task_offsets_from(path: impl AsRef<Path>) -> Result<TaskOffsets, BtfError> {
    let path = path.as_ref();
    let blob = std::fs::read(path).map_err(|source| BtfError::Read {
        path: path.display().to_string(),
        source,
    })?;
    task_offsets(&blob)
}

/// Reads `task_struct`'s `pid`, `tgid` and `exit_code` offsets from a BTF blob.
pub fn task_offsets(blob: &[u8]) -> Result<TaskOffsets, BtfError> {
    let btf = Btf::parse(blob)?;
    let task = btf.find_struct("task_struct")?;
    Ok(TaskOffsets {
        pid: btf.int32_member_offset(task, "pid")?,
        tgid: btf.int32_member_offset(task, "tgid")?,
        exit_code: btf.int32_member_offset(task, "exit_code")?,
        valid: 1,
    })
}

/// One type record: the fixed 12-byte `struct btf_type` and what follows it.
#[derive(Clone, Copy)]
struct Type<'a> {
    name_off: u32,
    kind: u32,
    kind_flag: bool,
    vlen: usize,
    /// `size` for structs, unions and ints; the referenced type for typedefs and modifiers.
    size_or_type: u32,
    extra: &'a [u8],
}

struct Btf<'a> {
    types: Vec<Type<'a>>,
    strings: &'a [u8],
}

impl<'a> Btf<'a> {
    fn parse(blob: &'a [u8]) -> Result<Self, BtfError> {
        if blob.len() < HEADER_LEN {
            return Err(BtfError::Truncated { len: blob.len() });
        }
        let magic = u16::from_ne_bytes([blob[0], blob[1]]);
        if magic != MAGIC {
            return Err(BtfError::BadMagic { magic });
        }
        // Section offsets count from the end of the header, whose length the header gives.
        let hdr_len = u32_at(blob, 4) as usize;
        let type_section = section(blob, "type", hdr_len, u32_at(blob, 8), u32_at(blob, 12))?;
        let strings = section(blob, "string", hdr_len, u32_at(blob, 16), u32_at(blob, 20))?;

        let mut types = Vec::new();
        let mut pos = 0;
        while pos < type_section.len() {
            let id = types.len() as u32 + 1;
            let fixed = type_section
                .get(pos..pos + 12)
                .ok_or(BtfError::TypeOutOfBounds { id })?;
            let info = u32_at(fixed, 4);
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let extra_len = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
                k if k <= KIND_MAX => 0,
                _ => return Err(BtfError::UnknownKind { id, kind }),
            };
            let extra = type_section
                .get(pos + 12..pos + 12 + extra_len)
                .ok_or(BtfError::TypeOutOfBounds { id })?;
            types.push(Type {
                name_off: u32_at(fixed, 0),
                kind,
                kind_flag: info >> 31 == 1,
                vlen,
                size_or_type: u32_at(fixed, 8),
                extra,
            });
            pos += 12 + extra_len;
        }
        Ok(Self { types, strings })
    }

    fn ty(&self, id: u32) -> Result<Type<'a>, BtfError> {
        let index = (id as usize).checked_sub(1);
        index
            .and_then(|index| self.types.get(index))
            .copied()
            .ok_or(BtfError::NoSuchType { id })
    }

    /// A NUL-terminated name from the string section; an offset outside it reads as "".
    fn name(&self, offset: u32) -> &'a [u8] {
        let rest = self.strings.get(offset as usize..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        &rest[..end]
    }

    /// The id of the struct with this name and members (a forward declaration has none).
    fn find_struct(&self, name: &str) -> Result<u32, BtfError> {
        self.types
            .iter()
            .position(|t| {
                t.kind == KIND_STRUCT && t.vlen > 0 && self.name(t.name_off) == name.as_bytes()
            })
            .map(|index| index as u32 + 1)
            .ok_or_else(|| BtfError::StructNotFound {
                name: name.to_owned(),
            })
    }

    /// Follows typedefs and qualifiers to the type they name.
    fn resolve(&self, mut id: u32) -> Result<Type<'a>, BtfError> {
        for _ in 0..MAX_NESTING {
            let ty = self.ty(id)?;
            match ty.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = ty.size_or_type;
                }
                _ => return Ok(ty),
            }
        }
        Err(BtfError::NoSuchType { id })
    }

    /// Byte offset of a named `int`-sized member, looking inside anonymous structs and unions.
    fn int32_member_offset(&self, struct_id: u32, member: &str) -> Result<u32, BtfError> {
        let owner = self.ty(struct_id)?;
        let owner_name = String::from_utf8_lossy(self.name(owner.name_off)).into_owned();
        let (bits, bitfield_size, type_id) = self
            .find_member(struct_id, member.as_bytes(), 0, 0)?
            .ok_or_else(|| BtfError::MemberNotFound {
                name: owner_name.clone(),
                member: member.to_owned(),
            })?;
        if bits % 8 != 0 || bitfield_size != 0 {
            return Err(BtfError::NotByteAligned {
                name: owner_name,
                member: member.to_owned(),
                bits,
            });
        }
        let ty = self.resolve(type_id)?;
        if ty.kind != KIND_INT || ty.size_or_type != 4 {
            return Err(BtfError::NotInt32 {
                name: owner_name,
                member: member.to_owned(),
            });
        }
        Ok(bits / 8)
    }

    /// (bit offset from the outermost struct, bitfield size, member type) of a named member.
    fn find_member(
        &self,
        struct_id: u32,
        member: &[u8],
        base_bits: u32,
        depth: usize,
    ) -> Result<Option<(u32, u32, u32)>, BtfError> {
        let owner = self.resolve(struct_id)?;
        if depth > MAX_NESTING || !matches!(owner.kind, KIND_STRUCT | KIND_UNION) {
            return Ok(None);
        }
        for record in owner.extra.chunks_exact(12) {
            let (name_off, type_id, offset) =
                (u32_at(record, 0), u32_at(record, 4), u32_at(record, 8));
            // With kind_flag set, the top 8 bits hold a bitfield's size and the rest its
            // bit offset; without it the whole word is the bit offset.
            let (bits, bitfield_size) = if owner.kind_flag {
                (offset & 0x00ff_ffff, offset >> 24)
            } else {
                (offset, 0)
            };
            let name = self.name(name_off);
            if name == member {
                return Ok(Some((base_bits + bits, bitfield_size, type_id)));
            }
            if name.is_empty()
                && let Some(found) =
                    self.find_member(type_id, member, base_bits + bits, depth + 1)?
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_ne_bytes(word)
}

fn section<'a>(
    blob: &'a [u8],
    section: &'static str,
    hdr_len: usize,
    offset: u32,
    len: u32,
) -> Result<&'a [u8], BtfError> {
    let start = hdr_len + offset as usize;
    blob.get(start..start + len as usize)
        .ok_or(BtfError::SectionOutOfBounds {
            section,
            offset: start,
            len: len as usize,
            blob_len: blob.len(),
        })
}

#[cfg(test)]
mod tests;
