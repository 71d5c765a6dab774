--- docker's default seccomp profile (moby's profiles/seccomp/default.json),
-- as Lua data in the same shape as a profile file, so that lbox.seccomp
-- reads both the same way: calls are refused with EPERM unless allowed
-- here; some only with the capability that makes them meaningful, clone
-- without namespace flags, personality with harmless personas only, socket
-- with any family but AF_VSOCK, and clone3 says "not implemented" (so that
-- the C library falls back to clone, whose flags can be checked).
local CLONE_NAMESPACE_FLAGS = 0x7E020000 -- NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
local AF_VSOCK = 40
local ENOSYS = 38

-- Allowed to everyone, on every architecture.
local ALLOWED = {
  "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset", "chdir", "chmod",
  "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64",
  "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range",
  "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl",
  "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2",
  "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64",
  "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown", "fchown32", "fchownat", "fcntl",
  "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat",
  "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex",
  "futex_time64", "futex_waitv", "futimesat", "getcpu", "getcwd", "getdents", "getdents64", "getegid",
  "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer",
  "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid",
  "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid",
  "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr",
  "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl",
  "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set",
  "io_setup", "io_submit", "io_uring_enter", "io_uring_register", "io_uring_setup", "ipc", "kill",
  "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32",
  "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek",
  "lsetxattr", "lstat", "lstat64", "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore",
  "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect",
  "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
  "mq_timedsend_time64", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
  "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open", "openat",
  "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free",
  "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
  "process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead",
  "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg",
  "remap_file_pages", "removexattr", "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq",
  "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
  "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
  "sched_getparam", "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
  "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr",
  "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget", "semop",
  "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto",
  "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32",
  "setitimer", "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
  "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid", "setsockopt",
  "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr", "shmat", "shmctl", "shmdt",
  "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall",
  "socketpair", "splice", "stat", "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync",
  "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
  "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
  "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times",
  "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "utime",
  "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write",
  "writev",
}

local function allow(names, extra)
  local rule = { names = names, action = "SCMP_ACT_ALLOW" }
  for k, v in pairs(extra or {}) do rule[k] = v end
  return rule
end

local function arg0_equals(value)
  return { { index = 0, value = value, op = "SCMP_CMP_EQ" } }
end

local function with_cap(cap) return { includes = { caps = { cap } } } end
local function on_arches(...) return { includes = { arches = { ... } } } end

return {
  defaultAction = "SCMP_ACT_ERRNO",
  defaultErrnoRet = 1,
  archMap = {
    { architecture = "SCMP_ARCH_X86_64", subArchitectures = { "SCMP_ARCH_X86", "SCMP_ARCH_X32" } },
    { architecture = "SCMP_ARCH_AARCH64", subArchitectures = { "SCMP_ARCH_ARM" } },
    { architecture = "SCMP_ARCH_MIPS64", subArchitectures = { "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32" } },
    { architecture = "SCMP_ARCH_MIPS64N32", subArchitectures = { "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64" } },
    { architecture = "SCMP_ARCH_MIPSEL64", subArchitectures = { "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32" } },
    { architecture = "SCMP_ARCH_MIPSEL64N32", subArchitectures = { "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64" } },
    { architecture = "SCMP_ARCH_S390X", subArchitectures = { "SCMP_ARCH_S390" } },
    { architecture = "SCMP_ARCH_RISCV64", subArchitectures = {} },
  },
  syscalls = {
    allow(ALLOWED),
    allow({ "process_vm_readv", "process_vm_writev", "ptrace" }, { includes = { minKernel = "4.8" } }),
    allow({ "socket" }, { args = { { index = 0, value = AF_VSOCK, op = "SCMP_CMP_NE" } } }),
    -- PER_LINUX, UNAME26, PER_LINUX32, UNAME26|PER_LINUX32, and the query
    allow({ "personality" }, { args = arg0_equals(0) }),
    allow({ "personality" }, { args = arg0_equals(8) }),
    allow({ "personality" }, { args = arg0_equals(131072) }),
    allow({ "personality" }, { args = arg0_equals(131080) }),
    allow({ "personality" }, { args = arg0_equals(4294967295) }),
    allow({ "sync_file_range2", "swapcontext" }, on_arches("ppc64le")),
    allow({ "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls" },
      on_arches("arm", "arm64")),
    allow({ "arch_prctl" }, on_arches("amd64", "x32")),
    allow({ "modify_ldt" }, on_arches("amd64", "x32", "x86")),
    allow({ "s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr" }, on_arches("s390", "s390x")),
    allow({ "riscv_flush_icache" }, on_arches("riscv64")),
    allow({ "open_by_handle_at" }, with_cap("CAP_DAC_READ_SEARCH")),
    allow({ "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
            "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open", "quotactl",
            "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2", "unshare" },
      with_cap("CAP_SYS_ADMIN")),
    allow({ "clone" }, {
      args = { { index = 0, value = CLONE_NAMESPACE_FLAGS, valueTwo = 0, op = "SCMP_CMP_MASKED_EQ" } },
      excludes = { caps = { "CAP_SYS_ADMIN" }, arches = { "s390", "s390x" } },
    }),
    -- s390 passes clone's flags second
    allow({ "clone" }, {
      args = { { index = 1, value = CLONE_NAMESPACE_FLAGS, valueTwo = 0, op = "SCMP_CMP_MASKED_EQ" } },
      includes = { arches = { "s390", "s390x" } },
      excludes = { caps = { "CAP_SYS_ADMIN" } },
    }),
    { names = { "clone3" }, action = "SCMP_ACT_ERRNO", errnoRet = ENOSYS, excludes = { caps = { "CAP_SYS_ADMIN" } } },
    allow({ "reboot" }, with_cap("CAP_SYS_BOOT")),
    allow({ "chroot" }, with_cap("CAP_SYS_CHROOT")),
    allow({ "delete_module", "init_module", "finit_module" }, with_cap("CAP_SYS_MODULE")),
    allow({ "acct" }, with_cap("CAP_SYS_PACCT")),
    allow({ "kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace" },
      with_cap("CAP_SYS_PTRACE")),
    allow({ "iopl", "ioperm" }, with_cap("CAP_SYS_RAWIO")),
    allow({ "settimeofday", "stime", "clock_settime", "clock_settime64" }, with_cap("CAP_SYS_TIME")),
    allow({ "vhangup" }, with_cap("CAP_SYS_TTY_CONFIG")),
    allow({ "get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node" }, with_cap("CAP_SYS_NICE")),
    allow({ "syslog" }, with_cap("CAP_SYSLOG")),
    allow({ "bpf" }, with_cap("CAP_BPF")),
    allow({ "perf_event_open" }, with_cap("CAP_PERFMON")),
  },
}
