//! Where each kernel program attaches, and attaching them all.

use aya::{
    Btf, Ebpf,
    programs::{BtfTracePoint, Program, TracePoint},
};

use super::error::LoadError;

/// How a program attaches.
enum Hook {
    /// A tracefs tracepoint, `category:name`.
    TracePoint(&'static str, &'static str),
    /// A BTF tracepoint (`tp_btf`) on the named raw tracepoint.
    Btf(&'static str),
}

/// Every program in the object, in attach order.
///
/// Exits attach before their enters. An exit without its enter is harmless (accept's is
/// counted; a data exit finds nothing parked), while an enter attached alone would park
/// entries whose exits never run, and a later exit of the same syscall on that thread would
/// report the stale buffer. Process hooks go first so a fork during start-up is not missed,
/// then the signal and OOM hooks that explain exits.
const PROGRAMS: &[(&str, Hook)] = &[
    ("sched_process_fork", Hook::Btf("sched_process_fork")),
    (
        "sched_process_exec",
        Hook::TracePoint("sched", "sched_process_exec"),
    ),
    (
        "sched_process_exit",
        Hook::TracePoint("sched", "sched_process_exit"),
    ),
    (
        "signal_generate",
        Hook::TracePoint("signal", "signal_generate"),
    ),
    ("mark_victim", Hook::TracePoint("oom", "mark_victim")),
    // Before the accepts, so a connection accepted during start-up finds its handshake.
    (
        "inet_sock_set_state",
        Hook::TracePoint("sock", "inet_sock_set_state"),
    ),
    (
        "sys_exit_accept",
        Hook::TracePoint("syscalls", "sys_exit_accept"),
    ),
    (
        "sys_exit_accept4",
        Hook::TracePoint("syscalls", "sys_exit_accept4"),
    ),
    (
        "sys_exit_read",
        Hook::TracePoint("syscalls", "sys_exit_read"),
    ),
    (
        "sys_exit_readv",
        Hook::TracePoint("syscalls", "sys_exit_readv"),
    ),
    (
        "sys_exit_recvfrom",
        Hook::TracePoint("syscalls", "sys_exit_recvfrom"),
    ),
    (
        "sys_exit_recvmsg",
        Hook::TracePoint("syscalls", "sys_exit_recvmsg"),
    ),
    (
        "sys_exit_write",
        Hook::TracePoint("syscalls", "sys_exit_write"),
    ),
    (
        "sys_exit_writev",
        Hook::TracePoint("syscalls", "sys_exit_writev"),
    ),
    (
        "sys_exit_sendto",
        Hook::TracePoint("syscalls", "sys_exit_sendto"),
    ),
    (
        "sys_exit_sendmsg",
        Hook::TracePoint("syscalls", "sys_exit_sendmsg"),
    ),
    (
        "sys_exit_sendfile64",
        Hook::TracePoint("syscalls", "sys_exit_sendfile64"),
    ),
    (
        "sys_enter_accept",
        Hook::TracePoint("syscalls", "sys_enter_accept"),
    ),
    (
        "sys_enter_accept4",
        Hook::TracePoint("syscalls", "sys_enter_accept4"),
    ),
    (
        "sys_enter_read",
        Hook::TracePoint("syscalls", "sys_enter_read"),
    ),
    (
        "sys_enter_readv",
        Hook::TracePoint("syscalls", "sys_enter_readv"),
    ),
    (
        "sys_enter_recvfrom",
        Hook::TracePoint("syscalls", "sys_enter_recvfrom"),
    ),
    (
        "sys_enter_recvmsg",
        Hook::TracePoint("syscalls", "sys_enter_recvmsg"),
    ),
    (
        "sys_enter_write",
        Hook::TracePoint("syscalls", "sys_enter_write"),
    ),
    (
        "sys_enter_writev",
        Hook::TracePoint("syscalls", "sys_enter_writev"),
    ),
    (
        "sys_enter_sendto",
        Hook::TracePoint("syscalls", "sys_enter_sendto"),
    ),
    (
        "sys_enter_sendmsg",
        Hook::TracePoint("syscalls", "sys_enter_sendmsg"),
    ),
    (
        "sys_enter_sendfile64",
        Hook::TracePoint("syscalls", "sys_enter_sendfile64"),
    ),
    (
        "sys_enter_close",
        Hook::TracePoint("syscalls", "sys_enter_close"),
    ),
    (
        "sys_enter_shutdown",
        Hook::TracePoint("syscalls", "sys_enter_shutdown"),
    ),
    (
        "sys_enter_utimensat",
        Hook::TracePoint("syscalls", "sys_enter_utimensat"),
    ),
    (
        "sys_enter_fchmod",
        Hook::TracePoint("syscalls", "sys_enter_fchmod"),
    ),
];

/// Verifies and attaches every program; returns how many were attached.
///
/// The links live in `ebpf`: dropping it detaches everything.
pub(super) fn attach_all(ebpf: &mut Ebpf, btf: &Btf) -> Result<usize, LoadError> {
    // A program the table does not know would silently never run.
    if let Some((name, _)) = ebpf
        .programs()
        .find(|(name, _)| !PROGRAMS.iter().any(|(known, _)| known == name))
    {
        return Err(LoadError::UnknownProgram {
            program: name.to_owned(),
        });
    }

    for (program, hook) in PROGRAMS {
        let loaded = ebpf
            .program_mut(program)
            .ok_or(LoadError::MissingProgram { program })?;
        match hook {
            Hook::TracePoint(category, name) => attach_tracepoint(program, loaded, category, name)?,
            Hook::Btf(name) => attach_btf(program, loaded, name, btf)?,
        }
    }
    Ok(PROGRAMS.len())
}

fn attach_tracepoint(
    program: &'static str,
    loaded: &mut Program,
    category: &str,
    name: &str,
) -> Result<(), LoadError> {
    let tp: &mut TracePoint = loaded.try_into().map_err(|_| LoadError::ProgramType {
        program,
        expected: "tracepoint",
    })?;
    tp.load()
        .map_err(|source| LoadError::Verify { program, source })?;
    tp.attach(category, name)
        .map_err(|source| LoadError::Attach {
            program,
            tracepoint: format!("{category}:{name}"),
            source,
        })?;
    Ok(())
}

fn attach_btf(
    program: &'static str,
    loaded: &mut Program,
    name: &str,
    btf: &Btf,
) -> Result<(), LoadError> {
    let tp: &mut BtfTracePoint = loaded.try_into().map_err(|_| LoadError::ProgramType {
        program,
        expected: "BTF tracepoint",
    })?;
    tp.load(name, btf)
        .map_err(|source| LoadError::Verify { program, source })?;
    tp.attach().map_err(|source| LoadError::Attach {
        program,
        tracepoint: format!("tp_btf/{name}"),
        source,
    })?;
    Ok(())
}
