//! tracefs: locating (and if needed mounting) it, and reading tracepoint
//! `format` files to learn where each field of a tracepoint record lives.

use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::Mutex,
};

/// Where tracefs is looked for, in order of preference.
pub const TRACEFS_CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Why a tracefs operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error(
        "tracefs is not mounted (looked in {tried}) and only root can mount it; \
         run `mount -t tracefs tracefs /sys/kernel/tracing` as root"
    )]
    NotMounted { tried: String },
    #[error("tracefs is not mounted and mounting it at {} failed: {source}", target.display())]
    Mount {
        target: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("tracepoint {category}:{event} does not exist on this kernel ({} not found)", path.display())]
    NoSuchEvent {
        category: String,
        event: String,
        path: PathBuf,
    },
    #[error("tracepoint {category}:{event} has no field `{field}` (its fields: {fields})")]
    NoSuchField {
        category: String,
        event: String,
        field: String,
        fields: String,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot parse {}: {source}", path.display())]
    Format {
        path: PathBuf,
        #[source]
        source: FormatError,
    },
}

/// Why a tracepoint `format` file could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("line {line}: {reason}: `{text}`")]
    BadField {
        line: usize,
        reason: &'static str,
        text: String,
    },
    #[error("no `format:` section")]
    NoFormatSection,
}

/// How a field's value is stored in the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldLoc {
    /// The value is stored at `offset` itself.
    Inline,
    /// `__data_loc`: `offset` holds a u32 whose low 16 bits are the offset of
    /// the data from the start of the record and high 16 bits its length.
    DataLoc,
    /// `__rel_loc`: like [`FieldLoc::DataLoc`], but the offset is relative to
    /// the end of the u32 itself.
    RelLoc,
}

/// One `field:` line of a format file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// C declaration without the name, e.g. `struct user_msghdr *` or
    /// `__data_loc char[]`.
    pub c_type: String,
    /// Offset from the start of the record. For dynamic fields this is the
    /// offset of the `__data_loc`/`__rel_loc` u32, not of the data.
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
    pub loc: FieldLoc,
}

impl Field {
    /// Whether this is a `__data_loc` field (the data lives elsewhere in the
    /// record; `offset` is that of the locator word).
    #[cfg(test)]
    pub fn is_data_loc(&self) -> bool {
        self.loc == FieldLoc::DataLoc
    }
}

/// A parsed tracepoint `format` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFormat {
    pub name: String,
    pub id: Option<u32>,
    /// Common fields first, then the event's own fields, in file order.
    pub fields: Vec<Field>,
}

impl EventFormat {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// Parses the text of an `events/<category>/<event>/format` file.
pub fn parse_format(text: &str) -> Result<EventFormat, FormatError> {
    let mut name = String::new();
    let mut id = None;
    let mut fields = Vec::new();
    let mut saw_format = false;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("name:") {
            name = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("ID:") {
            id = v.trim().parse().ok();
        } else if line == "format:" {
            saw_format = true;
        } else if line.starts_with("field:") {
            fields.push(parse_field(line).map_err(|reason| FormatError::BadField {
                line: index + 1,
                reason,
                text: line.to_string(),
            })?);
        }
    }
    if !saw_format {
        return Err(FormatError::NoFormatSection);
    }
    Ok(EventFormat { name, id, fields })
}

/// Parses `field:<decl>;\toffset:N;\tsize:N;\tsigned:N;`.
fn parse_field(line: &str) -> Result<Field, &'static str> {
    let (mut decl, mut offset, mut size, mut signed) = (None, None, None, false);
    for part in line.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once(':').ok_or("attribute without `:`")?;
        match key.trim() {
            "field" => decl = Some(value.trim()),
            "offset" => offset = Some(value.trim().parse().map_err(|_| "bad offset")?),
            "size" => size = Some(value.trim().parse().map_err(|_| "bad size")?),
            "signed" => signed = value.trim() == "1",
            _ => {} // attributes added by future kernels
        }
    }
    let decl = decl.ok_or("no declaration")?;
    let (c_type, name) = split_declaration(decl).ok_or("no field name in declaration")?;
    let loc = if c_type.starts_with("__data_loc") {
        FieldLoc::DataLoc
    } else if c_type.starts_with("__rel_loc") {
        FieldLoc::RelLoc
    } else {
        FieldLoc::Inline
    };
    Ok(Field {
        name,
        c_type,
        offset: offset.ok_or("no offset")?,
        size: size.ok_or("no size")?,
        signed,
        loc,
    })
}

/// Splits a C declaration into (type, name): `char comm[16]` gives
/// (`char[16]`, `comm`), `struct msghdr * msg` gives (`struct msghdr *`, `msg`).
fn split_declaration(decl: &str) -> Option<(String, String)> {
    let (decl, array) = match decl.find('[') {
        // `char comm[16]`: the brackets follow the name. `char[] filename`
        // (data_loc) has them on the type instead and is handled below.
        Some(open) if decl.ends_with(']') && !decl[..open].ends_with(char::is_whitespace) => {
            (&decl[..open], &decl[open..])
        }
        _ => (decl, ""),
    };
    let start = decl
        .rfind(|c: char| c.is_whitespace() || c == '*')
        .map_or(0, |i| i + 1);
    let name = &decl[start..];
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    Some((
        format!("{}{array}", decl[..start].trim_end()),
        name.to_string(),
    ))
}

/// A located tracefs mount.
#[derive(Clone, Debug)]
pub struct Tracefs {
    root: PathBuf,
}

impl Tracefs {
    /// Finds tracefs at [`TRACEFS_CANDIDATES`]. If it is mounted nowhere and
    /// we are root, mounts it at `/sys/kernel/tracing`.
    pub fn locate() -> Result<Self, TracefsError> {
        // Serialise concurrent callers so that tracefs is mounted only once.
        static MOUNT_LOCK: Mutex<()> = Mutex::new(());
        let _guard = MOUNT_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(found) = TRACEFS_CANDIDATES
            .iter()
            .map(Path::new)
            .find(|p| is_tracefs(p))
        {
            return Ok(Self::at(found));
        }
        let target = Path::new(TRACEFS_CANDIDATES[0]);
        if !nix::unistd::geteuid().is_root() {
            return Err(TracefsError::NotMounted {
                tried: TRACEFS_CANDIDATES.join(", "),
            });
        }
        mount_pseudo_fs("tracefs", target).map_err(|source| TracefsError::Mount {
            target: target.to_path_buf(),
            source,
        })?;
        Ok(Self::at(target))
    }

    /// Uses `root` as the tracefs directory without checking it (for tests
    /// over a fake tree).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the tracepoint `category:event` exists.
    #[cfg(test)]
    pub fn exists(&self, category: &str, event: &str) -> bool {
        self.format_path(category, event).is_file()
    }

    /// Whether `category` (e.g. `syscalls`) has any events.
    pub fn has_category(&self, category: &str) -> bool {
        self.root.join("events").join(category).is_dir()
    }

    /// Whether a top-level tracefs file (e.g. `kprobe_events`) exists.
    pub fn has_file(&self, name: &str) -> bool {
        self.root.join(name).exists()
    }

    /// Reads a top-level tracefs file such as `available_filter_functions`.
    pub fn read_file(&self, name: &str) -> Result<String, TracefsError> {
        let path = self.root.join(name);
        fs::read_to_string(&path).map_err(|source| TracefsError::Read { path, source })
    }

    /// The parsed format of tracepoint `category:event`.
    pub fn format(&self, category: &str, event: &str) -> Result<EventFormat, TracefsError> {
        let path = self.format_path(category, event);
        let text = fs::read_to_string(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                TracefsError::NoSuchEvent {
                    category: category.to_string(),
                    event: event.to_string(),
                    path: path.clone(),
                }
            } else {
                TracefsError::Read {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        parse_format(&text).map_err(|source| TracefsError::Format { path, source })
    }

    /// Field `field` of tracepoint `category:event`.
    pub fn field(&self, category: &str, event: &str, field: &str) -> Result<Field, TracefsError> {
        let format = self.format(category, event)?;
        format
            .field(field)
            .cloned()
            .ok_or_else(|| TracefsError::NoSuchField {
                category: category.to_string(),
                event: event.to_string(),
                field: field.to_string(),
                fields: format
                    .fields
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Record offset of `field` in tracepoint `category:event`. For a
    /// `__data_loc` field this is the offset of the locator u32.
    pub fn field_offset(
        &self,
        category: &str,
        event: &str,
        field: &str,
    ) -> Result<u32, TracefsError> {
        self.field(category, event, field).map(|f| f.offset)
    }

    fn format_path(&self, category: &str, event: &str) -> PathBuf {
        self.root
            .join("events")
            .join(category)
            .join(event)
            .join("format")
    }
}

/// A mounted tracefs has an `events` directory; an empty mount point does not.
fn is_tracefs(dir: &Path) -> bool {
    dir.join("events").is_dir()
}

/// Mounts the pseudo filesystem `fstype` (tracefs, securityfs) at `target`.
pub(crate) fn mount_pseudo_fs(fstype: &str, target: &Path) -> Result<(), nix::errno::Errno> {
    use nix::mount::{MsFlags, mount};
    mount(
        Some(fstype),
        target,
        Some(fstype),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From /sys/kernel/tracing/events/syscalls/sys_enter_sendmsg/format
    /// (Linux 6.18, x86_64).
    const SENDMSG: &str = "name: sys_enter_sendmsg
ID: 2214
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int fd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:struct user_msghdr * msg;\toffset:24;\tsize:8;\tsigned:0;
\tfield:unsigned int flags;\toffset:32;\tsize:8;\tsigned:0;

print fmt: \"fd: 0x%08lx, msg: 0x%08lx, flags: 0x%08lx\", ((unsigned long)(REC->fd)), ((unsigned long)(REC->msg)), ((unsigned long)(REC->flags))
";

    /// From /sys/kernel/tracing/events/sched/sched_process_exec/format.
    const EXEC: &str = "name: sched_process_exec
ID: 365
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;

print fmt: \"filename=%s pid=%d old_pid=%d\", __get_str(filename), REC->pid, REC->old_pid
";

    #[test]
    fn parses_syscall_format() {
        let f = parse_format(SENDMSG).unwrap();
        assert_eq!(f.name, "sys_enter_sendmsg");
        assert_eq!(f.id, Some(2214));
        assert_eq!(f.fields.len(), 8);
        let msg = f.field("msg").unwrap();
        assert_eq!((msg.offset, msg.size, msg.signed), (24, 8, false));
        assert_eq!(msg.c_type, "struct user_msghdr *");
        assert_eq!(msg.loc, FieldLoc::Inline);
        assert_eq!(f.field("fd").unwrap().offset, 16);
        assert_eq!(f.field("__syscall_nr").unwrap().offset, 8);
        assert!(f.field("common_pid").unwrap().signed);
    }

    #[test]
    fn parses_data_loc_field() {
        let f = parse_format(EXEC).unwrap();
        let filename = f.field("filename").unwrap();
        assert!(filename.is_data_loc());
        assert_eq!((filename.offset, filename.size), (8, 4));
        assert_eq!(filename.c_type, "__data_loc char[]");
        assert_eq!(f.field("old_pid").unwrap().offset, 16);
    }

    #[test]
    fn declarations() {
        let split = |d| split_declaration(d).unwrap();
        assert_eq!(split("char comm[16]"), ("char[16]".into(), "comm".into()));
        assert_eq!(
            split("const char *name"),
            ("const char *".into(), "name".into())
        );
        assert_eq!(
            split("__rel_loc u8[] buf"),
            ("__rel_loc u8[]".into(), "buf".into())
        );
        assert!(split_declaration("int").is_some(), "a lone word is a name");
        assert!(split_declaration("").is_none());
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            parse_format("hello"),
            Err(FormatError::NoFormatSection)
        ));
        let bad = "format:\n\tfield:int x;\toffset:abc;\tsize:4;\n";
        assert!(matches!(
            parse_format(bad),
            Err(FormatError::BadField { line: 2, .. })
        ));
    }

    #[test]
    fn fake_tree() {
        let dir = std::env::temp_dir().join(format!("tracer-tracefs-test-{}", std::process::id()));
        let event = dir.join("events/sched/sched_process_exec");
        fs::create_dir_all(&event).unwrap();
        fs::write(event.join("format"), EXEC).unwrap();
        let t = Tracefs::at(&dir);
        assert!(t.exists("sched", "sched_process_exec"));
        assert!(!t.exists("sched", "nope"));
        assert_eq!(
            t.field_offset("sched", "sched_process_exec", "filename")
                .unwrap(),
            8
        );
        let err = t
            .field_offset("sched", "sched_process_exec", "nope")
            .unwrap_err();
        assert!(err.to_string().contains("old_pid"), "{err}");
        let err = t.format("sched", "nope").unwrap_err();
        assert!(matches!(err, TracefsError::NoSuchEvent { .. }), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The real tracefs (mounted by `locate` if needed, as these tests run as
    /// root) agrees with the embedded sample on field names.
    #[test]
    fn real_tracefs() {
        let t = Tracefs::locate().expect("tracefs must be available");
        let f = t.format("syscalls", "sys_enter_sendmsg").unwrap();
        assert!(f.field("msg").is_some() && f.field("fd").is_some());
        assert!(
            t.field("sched", "sched_process_exec", "filename")
                .unwrap()
                .is_data_loc()
        );
    }
}
