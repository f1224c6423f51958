//! Facts about the running kernel: BTF member offsets, tracefs format files,
//! kallsyms, and which attach mechanisms the kernel allows.
