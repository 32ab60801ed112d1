//! The harness's raw calls: what no safe wrapper offers.

/// The Landlock ABI version of the running kernel, asked directly (`landlock_create_ruleset`
/// with `LANDLOCK_CREATE_RULESET_VERSION`), independently of the crate the supervisor uses;
/// 0 when the kernel has no Landlock or it is disabled.
pub fn landlock_abi() -> i64 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag the kernel reads and
    // writes no memory; it returns the version or -1 with errno set.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    v.max(0)
}
