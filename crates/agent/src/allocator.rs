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
//! A receiver builds the entries of up to a thousand lines, runs the operators on them,
//! encodes them and frees them, all on its thread, then builds the next thousand: four
//! thousand small blocks freed and allocated again. glibc's per-thread cache keeps 7
//! blocks of a size; the rest go through the arena's bins, a fifth of a json line's CPU
//! time. With room for [`TCACHE_COUNT`] a size, they stay in the cache: json-ingest
//! −16% CPU, regex-ingest −10%, at the same peak RSS (`benches/README.md`, sixth round).
//! That setting exists only as a tunable, read from `GLIBC_TUNABLES` when a program
//! starts; so `centimane run` starts itself again, once, with its settings in that
//! variable (the same process: `exec` keeps its id). If that fails, it goes on with the
//! settings `mallopt` can make.
//!
//! Whoever runs the agent can choose otherwise through glibc's own variables: a setting
//! is left alone when its variable (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`,
//! `MALLOC_TRIM_THRESHOLD_`) is set, and all of them when `GLIBC_TUNABLES` is (even empty).

/// glibc's ceiling for its dynamic mmap threshold on 64-bit systems.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;

/// Twice [`MMAP_THRESHOLD`], as glibc sets it when it raises that threshold.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
const TRIM_THRESHOLD: libc::c_int = 64 << 20;

/// Blocks of one size glibc's per-thread cache keeps (its default is 7, its maximum 65,535).
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
const TCACHE_COUNT: u32 = 4096;

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

/// Applies the settings above; must run before other threads start. With `restart`
/// (long-running commands), the process first starts itself again with the tunables.
pub fn configure(restart: bool) {
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
    {
        let chosen = |name: &str| std::env::var_os(name).is_some();
        if chosen("GLIBC_TUNABLES") {
            return;
        }
        if restart {
            // Returns only if the process could not start again.
            restart_with(&tunables(&chosen));
        }
        for (variable, param, _, value) in SETTINGS {
            if !chosen(variable) {
                // SAFETY: mallopt sets an allocator parameter and touches no Rust-visible
                // memory; no other thread is allocating yet. A refusal (0) leaves glibc's
                // default.
                unsafe {
                    libc::mallopt(param, value);
                }
            }
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc"))))]
    let _ = restart;
}

/// The `GLIBC_TUNABLES` value for the settings whose variables are not `chosen`.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
fn tunables(chosen: &dyn Fn(&str) -> bool) -> String {
    let mut out = format!("glibc.malloc.tcache_count={TCACHE_COUNT}");
    for (variable, _, tunable, value) in SETTINGS {
        if !chosen(variable) {
            out.push_str(&format!(":{tunable}={value}"));
        }
    }
    out
}

/// Replaces the process with a new run of its program, same arguments, with `tunables`.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
fn restart_with(tunables: &str) {
    use std::os::unix::process::CommandExt;
    let Ok(program) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| program.clone().into());
    let error = std::process::Command::new(&program)
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", tunables)
        .exec();
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
            tunables(&|_| false),
            "glibc.malloc.tcache_count=4096:glibc.malloc.arena_max=1:\
             glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864"
        );
        assert_eq!(
            tunables(&|v| v == "MALLOC_ARENA_MAX"),
            "glibc.malloc.tcache_count=4096:\
             glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864"
        );
    }
}
