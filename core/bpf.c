/* eBPF device programs for cgroup v2, through bpf(2) directly: load a
 * BPF_PROG_TYPE_CGROUP_DEVICE program and attach it to a cgroup. The
 * program's instructions (which devices, which access) come from Lua. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>

#include "core.h"

static long sys_bpf(int cmd, union bpf_attr *attr) {
  return syscall(SYS_bpf, cmd, attr, sizeof *attr);
}

/* bpf_device_program(instructions) -> fd | fail, msg, errno: load a
 * cgroup device program (struct bpf_insn, 8 bytes each, as a string); the
 * message carries the verifier's first complaint. The fd is close-on-exec.
 * See BPF_PROG_LOAD in bpf(2), BPF_PROG_TYPE_CGROUP_DEVICE. */
static int bpf_device_program(lua_State *L) {
  size_t len;
  const char *insns = luaL_checklstring(L, 1, &len);
  luaL_argcheck(L, len > 0 && len % sizeof(struct bpf_insn) == 0, 1, "a string of BPF instructions expected");
  static char log[1024];
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.insns = (unsigned long)insns;
  attr.insn_cnt = (unsigned)(len / sizeof(struct bpf_insn));
  attr.license = (unsigned long)"GPL";
  attr.log_buf = (unsigned long)log;
  attr.log_size = sizeof log;
  attr.log_level = 1;
  log[0] = '\0';
  long fd = sys_bpf(BPF_PROG_LOAD, &attr);
  if (fd < 0 && errno == ENOSPC) { /* the log was too small: load without it */
    attr.log_buf = 0;
    attr.log_size = 0;
    attr.log_level = 0;
    fd = sys_bpf(BPF_PROG_LOAD, &attr);
  }
  if (fd < 0) {
    int err = errno;
    log[strcspn(log, "\n")] = '\0';
    return lbox_fail_errno(L, err, "bpf BPF_PROG_LOAD", log[0] ? log : "cgroup device program");
  }
  lua_pushinteger(L, fd);
  return 1;
}

/* bpf_attach_device(program_fd, cgroup_fd) -> true | fail, msg, errno:
 * the program decides every device access of the processes in the cgroup
 * (a directory fd on cgroup v2) and its descendants, alongside any other
 * program attached there (BPF_F_ALLOW_MULTI). It stays attached while the
 * cgroup exists. See BPF_PROG_ATTACH in bpf(2). */
static int bpf_attach_device(lua_State *L) {
  int prog = lbox_check_fd(L, 1);
  int cgroup = lbox_check_fd(L, 2);
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.target_fd = (unsigned)cgroup;
  attr.attach_bpf_fd = (unsigned)prog;
  attr.attach_type = BPF_CGROUP_DEVICE;
  attr.attach_flags = BPF_F_ALLOW_MULTI;
  if (sys_bpf(BPF_PROG_ATTACH, &attr) < 0)
    return lbox_fail(L, "bpf", "BPF_PROG_ATTACH");
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg bpf_funcs[] = {
  {"bpf_attach_device", bpf_attach_device},
  {"bpf_device_program", bpf_device_program},
  {NULL, NULL}
};

void lbox_open_bpf(lua_State *L) {
  luaL_setfuncs(L, bpf_funcs, 0);
}
