//! Allocator settings, applied first thing in `main`, before any other thread exists.
//!
//! glibc gives a thread its own arena when it meets another in the shared one, up to eight
//! per core, and memory freed into an arena is reused only by allocations served from it.
//! Records are built and freed on a receiver's thread (`centimane_core::recycle`) while
//! request buffers come from the runtime's threads, so with several arenas each keeps its
//! own free memory: peak RSS of the ingest benchmarks was 5–10 MB (10–20%) higher for no
//! measurable CPU (`benches/README.md`). So the agent uses one arena.
//!
//! A batch's records and its request buffer are megabytes, allocated and freed every
//! batch. glibc serves such blocks with `mmap` below a threshold it raises as they are
//! freed (up to 32 MiB), and gives the heap's top back to the system past twice that; until
//! it has settled, each batch maps, unmaps and trims again, and every page comes back as a
//! page fault (5,000 to 46,000 per million json-ingest lines, varying run to run; 5,500 to
//! 6,700 with the thresholds set). So the agent starts at the values glibc would settle
//! on: blocks up to 32 MiB from the heap, trimmed past 64 MiB free.
//!
//! A receiver builds the entries of up to 256 lines, runs the operators on them, encodes
//! them and frees them, all on its thread, then builds the next batch: a thousand small
//! blocks freed and allocated again, a few hundred of each size. glibc's per-thread cache
//! keeps 7 blocks of a size; the rest go through the arena's bins, a fifth of a json
//! line's CPU time. With room for [`TCACHE_COUNT`] a size, a batch's blocks stay in the
//! cache: json-ingest −16% CPU, regex-ingest −10% (`benches/README.md`, sixth and seventh
//! rounds).
//! That setting exists only as a tunable, read from `GLIBC_TUNABLES` when a program
//! starts; so `centimane run` starts itself again, once, with the settings in that variable
//! (`execv`: the same process id; the binary at the path it was started from, or through
//! `/proc/self/exe` if that path is gone, replaced during an upgrade). The new run applies the other settings with `mallopt` too,
//! in case its glibc ignored the variable. If the restart fails, or the process runs in
//! glibc's secure mode (set-user-id or file capabilities, where glibc ignores tunables),
//! the agent goes on with the settings `mallopt` can make.
//!
//! A thread keeps at most [`TCACHE_COUNT`] freed blocks of each of glibc's 64 cached sizes
//! (up to 1 KiB): in the worst case, a thread that freed that many blocks of every size and
//! allocated none again, about 8 MB. Cached blocks are not merged with their neighbours, so
//! the heap fragments as the cache fills: with room for 4,096 a size (and batches of a
//! thousand lines) the agent's anonymous memory grew from 17 to 58 MB over three million
//! json-ingest lines, still rising; with 256 (and batches of 256 lines), from 14 to 28 MB;
//! with glibc's 7, it stays at 19–21 MB, for about a fifth more CPU.
//!
//! Whoever runs the agent can choose otherwise through glibc's own variables: a setting
//! is left alone when its variable (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`,
//! `MALLOC_TRIM_THRESHOLD_`) is set or its tunable is in `GLIBC_TUNABLES`; the agent adds
//! its own tunables after the ones given there.

/// glibc's ceiling for its dynamic mmap threshold on 64-bit systems.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;

/// Twice [`MMAP_THRESHOLD`], as glibc sets it when it raises that threshold.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
const TRIM_THRESHOLD: libc::c_int = 64 << 20;

/// Blocks of one size glibc's per-thread cache keeps (its default is 7, its maximum 65,535).
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
const TCACHE_COUNT: u32 = 256;

/// The settings: each one's `MALLOC_*` variable, `mallopt` parameter, tunable and value.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
const SETTINGS: [(&str, libc::c_int, &str, libc::c_int); 3] = [
    (
        "MALLOC_ARENA_MAX",
        libc::M_ARENA_MAX,
        "glibc.malloc.arena_max",
        1,
    ),
    (
        "MALLOC_MMAP_THRESHOLD_",
        libc::M_MMAP_THRESHOLD,
        "glibc.malloc.mmap_threshold",
        MMAP_THRESHOLD,
    ),
    (
        "MALLOC_TRIM_THRESHOLD_",
        libc::M_TRIM_THRESHOLD,
        "glibc.malloc.trim_threshold",
        TRIM_THRESHOLD,
    ),
];

/// Set in the environment of the restarted run: the tunables it was restarted with.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
const RESTARTED: &str = "CENTIMANE_ALLOCATOR_TUNABLES";

/// Applies the settings above; must run before other threads start. With `restart`
/// (long-running commands), the process first starts itself again with the tunables.
pub fn configure(restart: bool) {
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
    {
        let given = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        let restarted = std::env::var_os(RESTARTED).is_some();
        let chosen = |variable: &str, tunable: &str| {
            std::env::var_os(variable).is_some()
                || (!restarted && names(&given).any(|name| name == tunable))
        };
        if restarted {
            // SAFETY: no other thread exists yet (`main` calls this first), so nothing
            // reads the environment concurrently.
            unsafe { std::env::remove_var(RESTARTED) };
        } else if restart
            && !secure_mode()
            && !names(&given).any(|name| name == "glibc.malloc.tcache_count")
        {
            // Returns only if the process could not start again.
            restart_with(&given, &tunables(&chosen));
        }
        for (variable, param, tunable, value) in SETTINGS {
            if !chosen(variable, tunable) {
                // SAFETY: mallopt sets an allocator parameter and touches no Rust-visible
                // memory; no other thread is allocating yet. A refusal (0) leaves glibc's
                // default. In a restarted run it repeats what the tunables set.
                unsafe {
                    libc::mallopt(param, value);
                }
            }
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc"))))]
    let _ = restart;
}

/// The names of the tunables in a `GLIBC_TUNABLES` value (`name=value:name=value`).
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
fn names(tunables: &str) -> impl Iterator<Item = &str> {
    tunables
        .split(':')
        .filter_map(|setting| setting.split_once('=').map(|(name, _)| name.trim()))
}

/// Whether glibc runs this process in secure mode, where it ignores `GLIBC_TUNABLES`.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
fn secure_mode() -> bool {
    // SAFETY: getauxval reads the process's auxiliary vector; it has no preconditions.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// The agent's tunables for the settings not `chosen` (by variable or tunable name).
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
fn tunables(chosen: &dyn Fn(&str, &str) -> bool) -> String {
    let mut out = format!("glibc.malloc.tcache_count={TCACHE_COUNT}");
    for (variable, _, tunable, value) in SETTINGS {
        if !chosen(variable, tunable) {
            out.push_str(&format!(":{tunable}={value}"));
        }
    }
    out
}

/// Replaces the process with a new run of its program, same arguments, with `added` after
/// the `given` tunables. Calls `execv` itself: on failure nothing else about the process
/// (signal dispositions, mask) has changed. The program's path comes first (valgrind, which
/// runs the agent as its client, knows it by that path, not by `/proc/self/exe`).
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
fn restart_with(given: &str, added: &str) {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStringExt;
    let Ok(args) = std::env::args_os()
        .map(|a| CString::new(a.into_vec()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return;
    };
    let program = std::env::current_exe()
        .ok()
        .and_then(|p| CString::new(p.into_os_string().into_vec()).ok());
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let all = if given.is_empty() {
        added.to_owned()
    } else {
        format!("{given}:{added}")
    };
    // SAFETY: no other thread exists yet, so nothing reads the environment concurrently;
    // `argv` is a null-terminated array of pointers into `args`, alive across the calls.
    let error = unsafe {
        std::env::set_var("GLIBC_TUNABLES", &all);
        std::env::set_var(RESTARTED, added);
        if let Some(path) = program.as_ref() {
            libc::execv(path.as_ptr(), argv.as_ptr());
        }
        libc::execv(c"/proc/self/exe".as_ptr(), argv.as_ptr());
        let error = std::io::Error::last_os_error();
        if given.is_empty() {
            std::env::remove_var("GLIBC_TUNABLES");
        } else {
            std::env::set_var("GLIBC_TUNABLES", given);
        }
        std::env::remove_var(RESTARTED);
        error
    };
    eprintln!(
        "centimane: could not restart with allocator settings ({error}); going on without them"
    );
}

#[cfg(all(
    test,
    target_os = "linux",
    target_env = "gnu",
    not(feature = "mimalloc")
))]
mod tests {
    use super::*;

    #[test]
    fn tunables_leave_out_what_the_user_chose() {
        assert_eq!(
            tunables(&|_, _| false),
            "glibc.malloc.tcache_count=256:glibc.malloc.arena_max=1:\
             glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864"
        );
        assert_eq!(
            tunables(&|v, _| v == "MALLOC_ARENA_MAX"),
            "glibc.malloc.tcache_count=256:\
             glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864"
        );
        assert_eq!(
            tunables(&|_, t| t != "glibc.malloc.arena_max"),
            "glibc.malloc.tcache_count=256:glibc.malloc.arena_max=1"
        );
    }

    #[test]
    fn tunable_names_are_read_from_the_variable() {
        let found: Vec<_> = names("glibc.pthread.rseq=0:glibc.malloc.arena_max=2:junk").collect();
        assert_eq!(found, ["glibc.pthread.rseq", "glibc.malloc.arena_max"]);
        assert_eq!(names("").count(), 0);
    }
}
