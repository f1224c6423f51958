//! Struct layouts and function signatures read from the kernel's BTF.
//!
//! [`Btf::member_offset`] resolves dotted member paths such as `"ns.inum"`
//! the way C does: members of anonymous structs and unions are found as if
//! they were members of the enclosing struct, and typedefs and qualifiers are
//! looked through when descending into a member.

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

use btf_rs::{Member, Struct, Type};

/// Where the running kernel exposes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Where to get a BTF file for a kernel that has no [`VMLINUX_BTF`]: said
/// by doctor and by the error when the kernel's BTF cannot be read.
pub const BTF_HOWTO: &str = "pass --btf FILE with a BTF file for this exact kernel: \
     from BTFHub (https://github.com/aquasecurity/btfhub-archive, by distribution, \
     release and `uname -r`) or made from its vmlinux debug info with \
     `pahole --btf_encode_detached FILE vmlinux`";

/// The BTF file given with `--btf`, set once at start-up.
static BTF_FILE: OnceLock<PathBuf> = OnceLock::new();

/// Use `path` (`--btf`) instead of [`VMLINUX_BTF`] for offsets, function
/// signatures and the loader. Errors in one line, naming the file, if it
/// cannot be read.
pub fn use_file(path: &Path) -> Result<(), String> {
    std::fs::File::open(path).map_err(|e| format!("--btf {}: {e}", path.display()))?;
    BTF_FILE
        .set(path.to_path_buf())
        .map_err(|_| "--btf given twice".to_string())
}

/// The BTF in use: the `--btf` file, else the kernel's own.
pub fn source() -> &'static Path {
    BTF_FILE
        .get()
        .map_or(Path::new(VMLINUX_BTF), PathBuf::as_path)
}

/// Whether a `--btf` file stands in for the kernel's own BTF.
pub fn from_btf_flag() -> bool {
    BTF_FILE.get().is_some()
}

/// The BTF in use ([`source`]) as aya parses it, for loading (CO-RE
/// relocations) and for the BTF ids of fexit and BTF tracepoint targets.
pub fn parse_for_aya() -> anyhow::Result<aya::Btf> {
    use anyhow::Context as _;
    let path = source();
    aya::Btf::parse_file(path, aya::Endianness::default())
        .with_context(|| format!("parsing {}", path.display()))
}

/// Why a BTF query failed. Every message names the struct/function and the
/// member path or parameter that was asked for.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot load kernel BTF from {}: {source}", path.display())]
    Load {
        path: PathBuf,
        #[source]
        source: btf_rs::Error,
    },
    #[error("kernel BTF has no struct or union named `{name}`")]
    NoSuchStruct { name: String },
    #[error("cannot resolve `{struct_name}.{path}`: no member `{missing}`")]
    NoSuchMember {
        struct_name: String,
        path: String,
        missing: String,
    },
    #[error(
        "cannot resolve `{struct_name}.{path}`: member `{member}` is a bitfield \
         (bit offset {bit_offset}), it has no byte offset"
    )]
    Bitfield {
        struct_name: String,
        path: String,
        member: String,
        bit_offset: u32,
    },
    #[error(
        "cannot resolve `{struct_name}.{path}`: member `{member}` is a {kind}, \
         not a struct or union, so it has no members"
    )]
    NotAggregate {
        struct_name: String,
        path: String,
        member: String,
        kind: &'static str,
    },
    #[error("cannot resolve `{struct_name}`: no member of type `struct {type_name}`")]
    NoMemberOfType {
        struct_name: String,
        type_name: String,
    },
    #[error("kernel BTF has no function named `{name}`")]
    NoSuchFunction { name: String },
    #[error("kernel function `{func}` has no parameter `{param}` (its parameters: {params})")]
    NoSuchParam {
        func: String,
        param: String,
        params: String,
    },
    #[error("malformed kernel BTF while resolving {what}: {source}")]
    Malformed {
        what: String,
        #[source]
        source: btf_rs::Error,
    },
}

/// Parsed kernel BTF.
pub struct Btf {
    inner: btf_rs::Btf,
    path: PathBuf,
}

impl std::fmt::Debug for Btf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Btf").field("path", &self.path).finish()
    }
}

/// Shorthand for wrapping a raw `btf_rs` error with what was being resolved.
fn malformed(what: impl Into<String>) -> impl FnOnce(btf_rs::Error) -> BtfError {
    let what = what.into();
    move |source| BtfError::Malformed { what, source }
}

impl Btf {
    /// Parses a standalone BTF file (such as [`VMLINUX_BTF`]).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, BtfError> {
        let path = path.as_ref().to_path_buf();
        let inner = btf_rs::Btf::from_file(&path).map_err(|source| BtfError::Load {
            path: path.clone(),
            source,
        })?;
        Ok(Self { inner, path })
    }

    /// Parses the running kernel's BTF: the `--btf` file if one was
    /// given ([`use_file`]), else [`VMLINUX_BTF`].
    pub fn vmlinux() -> Result<Self, BtfError> {
        Self::from_path(source())
    }

    /// The file this BTF was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Byte offset of the dotted member `path` inside `struct struct_name`
    /// (or union), e.g. `("net", "ns.inum")` or `("fib6_info", "fib6_dst.addr")`.
    ///
    /// Members of anonymous structs/unions are found transparently. If the
    /// BTF holds several types with that name, the first one where the whole
    /// path resolves wins.
    pub fn member_offset(&self, struct_name: &str, path: &str) -> Result<u32, BtfError> {
        let mut first_err = None;
        for candidate in self.aggregates_named(struct_name)? {
            match self.walk_path(&candidate, struct_name, path) {
                Ok(off) => return Ok(off),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or_else(|| BtfError::NoSuchStruct {
            name: struct_name.to_string(),
        }))
    }

    /// Byte offset inside `struct struct_name` of its first member (anonymous
    /// structs/unions included) whose type is `struct type_name`, whatever the
    /// member is called. Used as a layout-agnostic fallback when a member was
    /// renamed or moved.
    pub fn member_offset_by_type(
        &self,
        struct_name: &str,
        type_name: &str,
    ) -> Result<u32, BtfError> {
        for candidate in self.aggregates_named(struct_name)? {
            if let Some(bits) = self.find_member_of_type(&candidate, type_name)?
                && bits % 8 == 0
            {
                return Ok(bits / 8);
            }
        }
        Err(BtfError::NoMemberOfType {
            struct_name: struct_name.to_string(),
            type_name: type_name.to_string(),
        })
    }

    /// Size in bytes of `struct name` (or union).
    pub fn struct_size(&self, name: &str) -> Result<u32, BtfError> {
        let first = self.aggregates_named(name)?.into_iter().next();
        first
            .map(|s| s.size() as u32)
            .ok_or_else(|| BtfError::NoSuchStruct {
                name: name.to_string(),
            })
    }

    /// Whether the BTF describes a function called `name` (i.e. the kernel has
    /// an out-of-line copy of it with its original signature).
    pub fn has_func(&self, name: &str) -> bool {
        self.func_id(name).is_ok()
    }

    /// BTF type id of the FUNC `name`, as needed for a fentry program's
    /// `attach_btf_id`.
    pub fn func_id(&self, name: &str) -> Result<u32, BtfError> {
        let ids = self
            .inner
            .resolve_ids_by_name(name)
            .map_err(malformed(format!("function `{name}`")))?;
        for id in ids {
            let ty = self
                .inner
                .resolve_type_by_id(id)
                .map_err(malformed(format!("function `{name}`")))?;
            if matches!(ty, Type::Func(_)) {
                return Ok(id);
            }
        }
        Err(BtfError::NoSuchFunction {
            name: name.to_string(),
        })
    }

    /// Names of the parameters of kernel function `func`, in order.
    pub fn func_params(&self, func: &str) -> Result<Vec<String>, BtfError> {
        let what = || format!("parameters of `{func}`");
        let id = self.func_id(func)?;
        let Type::Func(f) = self
            .inner
            .resolve_type_by_id(id)
            .map_err(malformed(what()))?
        else {
            unreachable!("func_id only returns FUNC ids");
        };
        let Type::FuncProto(proto) = self
            .inner
            .resolve_chained_type(&f)
            .map_err(malformed(what()))?
        else {
            return Err(BtfError::NoSuchFunction {
                name: func.to_string(),
            });
        };
        proto
            .parameters
            .iter()
            .map(|p| self.inner.resolve_name(p).map_err(malformed(what())))
            .collect()
    }

    /// 0-based index of parameter `param` of kernel function `func`,
    /// e.g. `("fib_delrule", "nlh")`.
    pub fn func_param_index(&self, func: &str, param: &str) -> Result<u32, BtfError> {
        let params = self.func_params(func)?;
        params
            .iter()
            .position(|p| p == param)
            .map(|i| i as u32)
            .ok_or_else(|| BtfError::NoSuchParam {
                func: func.to_string(),
                param: param.to_string(),
                params: params.join(", "),
            })
    }

    /// All complete struct/union definitions called `name` (forward
    /// declarations are skipped). Errors if there is none.
    fn aggregates_named(&self, name: &str) -> Result<Vec<Struct>, BtfError> {
        let types = self
            .inner
            .resolve_types_by_name(name)
            .map_err(malformed(format!("struct `{name}`")))?;
        let found: Vec<Struct> = types
            .into_iter()
            .filter_map(|t| match t {
                Type::Struct(s) | Type::Union(s) => Some(s),
                _ => None,
            })
            .collect();
        if found.is_empty() {
            return Err(BtfError::NoSuchStruct {
                name: name.to_string(),
            });
        }
        Ok(found)
    }

    /// Resolves `path` inside one definition of `struct_name`.
    fn walk_path(&self, root: &Struct, struct_name: &str, path: &str) -> Result<u32, BtfError> {
        let what = || format!("`{struct_name}.{path}`");
        let segments: Vec<&str> = path.split('.').collect();
        let mut current = root.clone();
        let mut bits = 0u32;
        for (i, segment) in segments.iter().enumerate() {
            let Some((member_bits, member)) = self.find_member(&current, segment)? else {
                return Err(BtfError::NoSuchMember {
                    struct_name: struct_name.to_string(),
                    path: path.to_string(),
                    missing: segment.to_string(),
                });
            };
            let is_bitfield = member.bitfield_size().is_some_and(|size| size != 0);
            if is_bitfield || member_bits % 8 != 0 {
                return Err(BtfError::Bitfield {
                    struct_name: struct_name.to_string(),
                    path: path.to_string(),
                    member: segment.to_string(),
                    bit_offset: bits + member_bits,
                });
            }
            bits += member_bits;
            if i + 1 == segments.len() {
                break;
            }
            match self.member_type(&member).map_err(malformed(what()))? {
                Type::Struct(s) | Type::Union(s) => current = s,
                other => {
                    return Err(BtfError::NotAggregate {
                        struct_name: struct_name.to_string(),
                        path: path.to_string(),
                        member: segment.to_string(),
                        kind: other.name(),
                    });
                }
            }
        }
        Ok(bits / 8)
    }

    /// Finds member `name` in `agg`, looking inside anonymous struct/union
    /// members. Returns its bit offset relative to the start of `agg`.
    fn find_member(&self, agg: &Struct, name: &str) -> Result<Option<(u32, Member)>, BtfError> {
        let what = || format!("member `{name}`");
        for member in &agg.members {
            let member_name = self.inner.resolve_name(member).map_err(malformed(what()))?;
            if member_name == name {
                return Ok(Some((member.bit_offset(), member.clone())));
            }
            if member_name.is_empty()
                && let Type::Struct(inner) | Type::Union(inner) =
                    self.member_type(member).map_err(malformed(what()))?
                && let Some((off, found)) = self.find_member(&inner, name)?
            {
                return Ok(Some((member.bit_offset() + off, found)));
            }
        }
        Ok(None)
    }

    /// Bit offset of the first member of `agg` (descending into anonymous
    /// members) whose type is `struct type_name`.
    fn find_member_of_type(&self, agg: &Struct, type_name: &str) -> Result<Option<u32>, BtfError> {
        let what = || format!("a member of type `struct {type_name}`");
        for member in &agg.members {
            let ty = self.member_type(member).map_err(malformed(what()))?;
            let (Type::Struct(inner) | Type::Union(inner)) = ty else {
                continue;
            };
            if self.inner.resolve_name(&inner).map_err(malformed(what()))? == type_name {
                return Ok(Some(member.bit_offset()));
            }
            let anonymous = self
                .inner
                .resolve_name(member)
                .map_err(malformed(what()))?
                .is_empty();
            if anonymous && let Some(off) = self.find_member_of_type(&inner, type_name)? {
                return Ok(Some(member.bit_offset() + off));
            }
        }
        Ok(None)
    }

    /// The type of `member`, with typedefs and qualifiers looked through.
    fn member_type(&self, member: &Member) -> Result<Type, btf_rs::Error> {
        let mut ty = self.inner.resolve_chained_type(member)?;
        loop {
            ty = match &ty {
                Type::Typedef(t) => self.inner.resolve_chained_type(t)?,
                Type::Const(t) | Type::Volatile(t) | Type::Restrict(t) => {
                    self.inner.resolve_chained_type(t)?
                }
                Type::TypeTag(t) => self.inner.resolve_chained_type(t)?,
                _ => return Ok(ty),
            };
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// The running kernel's BTF, parsed once for all tests. Panics (fails the
    /// test) if it is absent: every supported machine has BTF.
    pub(crate) fn vmlinux() -> &'static Btf {
        static BTF: OnceLock<Btf> = OnceLock::new();
        BTF.get_or_init(|| Btf::vmlinux().expect("kernel BTF must be readable"))
    }

    #[test]
    fn nested_path_through_named_struct() {
        let btf = vmlinux();
        let ns = btf.member_offset("net", "ns").unwrap();
        let inum_in_ns = btf.member_offset("ns_common", "inum").unwrap();
        assert_eq!(
            btf.member_offset("net", "ns.inum").unwrap(),
            ns + inum_in_ns
        );
    }

    #[test]
    fn anonymous_union_members_are_transparent() {
        let btf = vmlinux();
        // fc_gw4 and fc_gw6 share an anonymous union.
        let gw4 = btf.member_offset("fib_config", "fc_gw4").unwrap();
        let gw6 = btf.member_offset("fib_config", "fc_gw6").unwrap();
        assert_eq!(gw4, gw6);
        assert!(gw4 > btf.member_offset("fib_config", "fc_dst").unwrap());
    }

    #[test]
    fn descends_into_named_union_and_typedef() {
        let btf = vmlinux();
        let gw = btf.member_offset("fib_nh_common", "nhc_gw").unwrap();
        assert_eq!(
            btf.member_offset("fib_nh_common", "nhc_gw.ipv6").unwrap(),
            gw
        );
        // refcount_t is a typedef of a struct: descend through it.
        btf.member_offset("net", "passive.refs").unwrap();
    }

    #[test]
    fn errors_name_struct_and_path() {
        let btf = vmlinux();
        let err = btf.member_offset("fib_config", "fc_nope").unwrap_err();
        assert!(matches!(err, BtfError::NoSuchMember { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("fib_config") && msg.contains("fc_nope"),
            "{msg}"
        );

        let err = btf.member_offset("no_such_struct_xyz", "a").unwrap_err();
        assert!(matches!(err, BtfError::NoSuchStruct { .. }), "{err}");

        let err = btf.member_offset("fib_config", "fc_table.x").unwrap_err();
        assert!(matches!(err, BtfError::NotAggregate { .. }), "{err}");
    }

    #[test]
    fn bitfields_are_rejected() {
        let btf = vmlinux();
        // nl_info.skip_notify is a 1-bit bitfield.
        let err = btf.member_offset("nl_info", "skip_notify").unwrap_err();
        assert!(matches!(err, BtfError::Bitfield { .. }), "{err}");
    }

    #[test]
    fn struct_sizes() {
        let btf = vmlinux();
        let nlh = btf.struct_size("nlmsghdr").unwrap();
        assert_eq!(nlh, 16, "struct nlmsghdr is uapi");
        assert!(btf.struct_size("task_struct").unwrap() > 1000);
    }

    #[test]
    fn function_parameters() {
        let btf = vmlinux();
        assert!(btf.has_func("fib_table_delete"));
        assert!(!btf.has_func("no_such_function_xyz"));
        assert!(!btf.has_func("task_struct"), "a struct is not a function");
        let cfg = btf.func_param_index("fib_table_delete", "cfg").unwrap();
        let params = btf.func_params("fib_table_delete").unwrap();
        assert_eq!(params[cfg as usize], "cfg");
        let err = btf
            .func_param_index("fib_table_delete", "nope")
            .unwrap_err();
        assert!(err.to_string().contains("fib_table_delete"), "{err}");
    }

    #[test]
    fn member_by_type() {
        let btf = vmlinux();
        assert_eq!(
            btf.member_offset_by_type("net", "ns_common").unwrap(),
            btf.member_offset("net", "ns").unwrap()
        );
    }

    #[test]
    fn a_btf_file_stands_in_for_the_kernels() {
        let dir = std::env::temp_dir().join(format!("tracer-btf-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let copy = dir.join("vmlinux.btf");
        std::fs::copy(VMLINUX_BTF, &copy).unwrap();
        let file = Btf::from_path(&copy).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(file.path(), copy);
        assert_eq!(
            file.member_offset("net", "ns.inum").unwrap(),
            vmlinux().member_offset("net", "ns.inum").unwrap()
        );
        assert_eq!(
            file.func_params("fib_table_delete").unwrap(),
            vmlinux().func_params("fib_table_delete").unwrap()
        );
    }

    #[test]
    fn a_missing_btf_file_is_named_and_how_to_get_one_is_said() {
        // Refused before it is recorded: the kernel's own BTF stays in use.
        let err = use_file(Path::new("/nonexistent-btf-file")).unwrap_err();
        assert!(err.starts_with("--btf /nonexistent-btf-file: "), "{err}");
        assert!(!err.contains('\n'));
        assert_eq!(source(), Path::new(VMLINUX_BTF));
        for needed in [
            "--btf FILE",
            "https://github.com/aquasecurity/btfhub-archive",
            "pahole --btf_encode_detached",
        ] {
            assert!(BTF_HOWTO.contains(needed), "{needed}: {BTF_HOWTO}");
        }
    }
}
