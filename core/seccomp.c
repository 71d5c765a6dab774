/* seccomp filters through libseccomp. A filter is a userdata owning a
 * scmp_filter_ctx: architectures and rules are added to it, then it is
 * loaded into the calling process. Which system calls, with which actions
 * and argument checks: Lua decides. See seccomp_init(3), seccomp(2). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include <seccomp.h>

#include "core.h"

#define FILTER_MT "lbox.seccomp_filter"

typedef struct {
  scmp_filter_ctx ctx;
} lbox_filter;

static const char *const action_names[] = {
  "allow", "errno", "kill_process", "kill_thread", "log", "trace", "trap", NULL
};

/* The action named at argument `arg`; "errno" and "trace" take the number
 * at `arg` + 1 (default EPERM, 0). */
static uint32_t check_action(lua_State *L, int arg) {
  int which = luaL_checkoption(L, arg, NULL, action_names);
  lua_Integer data = luaL_optinteger(L, arg + 1, which == 1 ? EPERM : 0);
  luaL_argcheck(L, data >= 0 && data <= 0xffff, arg + 1, "errno or trace value from 0 to 65535 expected");
  switch (which) {
  case 0: return SCMP_ACT_ALLOW;
  case 1: return SCMP_ACT_ERRNO((uint16_t)data);
  case 2: return SCMP_ACT_KILL_PROCESS;
  case 3: return SCMP_ACT_KILL_THREAD;
  case 4: return SCMP_ACT_LOG;
  case 5: return SCMP_ACT_TRACE((uint16_t)data);
  default: return SCMP_ACT_TRAP;
  }
}

/* Architectures by the names libseccomp's tools use, for arch_native. */
static const struct { uint32_t token; const char *name; } arch_names[] = {
  {SCMP_ARCH_X86, "x86"}, {SCMP_ARCH_X86_64, "x86_64"}, {SCMP_ARCH_X32, "x32"},
  {SCMP_ARCH_ARM, "arm"}, {SCMP_ARCH_AARCH64, "aarch64"},
  {SCMP_ARCH_MIPS, "mips"}, {SCMP_ARCH_MIPS64, "mips64"}, {SCMP_ARCH_MIPS64N32, "mips64n32"},
  {SCMP_ARCH_MIPSEL, "mipsel"}, {SCMP_ARCH_MIPSEL64, "mipsel64"}, {SCMP_ARCH_MIPSEL64N32, "mipsel64n32"},
  {SCMP_ARCH_PPC, "ppc"}, {SCMP_ARCH_PPC64, "ppc64"}, {SCMP_ARCH_PPC64LE, "ppc64le"},
  {SCMP_ARCH_S390, "s390"}, {SCMP_ARCH_S390X, "s390x"}, {SCMP_ARCH_RISCV64, "riscv64"},
  {0, NULL}
};

static lbox_filter *check_filter(lua_State *L) {
  lbox_filter *f = luaL_checkudata(L, 1, FILTER_MT);
  if (f->ctx == NULL)
    luaL_error(L, "attempt to use a closed seccomp filter");
  return f;
}

/* seccomp_filter(action [, errno]) -> filter | fail, msg, errno: an empty
 * filter for the native architecture whose calls not matched by a rule get
 * `action`. Loading it will not set no_new_privs (the caller decides, with
 * prctl): it then needs CAP_SYS_ADMIN. See seccomp_init(3). */
static int filter_new(lua_State *L) {
  uint32_t action = check_action(L, 1);
  lbox_filter *f = lua_newuserdatauv(L, sizeof *f, 0);
  f->ctx = NULL;
  luaL_setmetatable(L, FILTER_MT);
  f->ctx = seccomp_init(action);
  if (f->ctx == NULL)
    return lbox_fail_errno(L, ENOMEM, "seccomp_init", NULL);
  int rc = seccomp_attr_set(f->ctx, SCMP_FLTATR_CTL_NNP, 0);
  if (rc == 0)
    rc = seccomp_attr_set(f->ctx, SCMP_FLTATR_API_SYSRAWRC, 1);
  if (rc < 0)
    return lbox_fail_errno(L, -rc, "seccomp_attr_set", NULL);
  return 1;
}

/* filter:add_arch(name) -> true | fail, msg, errno: also match calls made
 * with architecture `name` ("x86", "x32"...; the native one is there from
 * the start, and adding it again is no error). See seccomp_arch_add(3). */
static int filter_add_arch(lua_State *L) {
  lbox_filter *f = check_filter(L);
  const char *name = luaL_checkstring(L, 2);
  uint32_t token = seccomp_arch_resolve_name(name);
  if (token == 0)
    return lbox_fail_errno(L, EINVAL, "seccomp_arch_add", name);
  int rc = seccomp_arch_add(f->ctx, token);
  if (rc < 0 && rc != -EEXIST)
    return lbox_fail_errno(L, -rc, "seccomp_arch_add", name);
  lua_pushboolean(L, 1);
  return 1;
}

static const char *const op_names[] = {"ne", "lt", "le", "eq", "ge", "gt", "masked_eq", NULL};
static const enum scmp_compare op_values[] = {
  SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ
};

#define MAX_CONDITIONS 6

/* Read condition `i` of the list at `arg`: { index, op, value [, value2] }
 * (numbers as unsigned 64 bits; masked_eq: value is the mask, value2 what
 * the masked argument must equal). */
static void check_condition(lua_State *L, int arg, lua_Integer i, struct scmp_arg_cmp *c) {
  if (lua_geti(L, arg, i) != LUA_TTABLE)
    luaL_argerror(L, arg, lua_pushfstring(L, "condition %d is not a table", (int)i));
  int t = lua_gettop(L);
  int isnum;
  lua_geti(L, t, 1);
  lua_Integer index = lua_tointegerx(L, -1, &isnum);
  if (!isnum || index < 0 || index >= MAX_CONDITIONS)
    luaL_argerror(L, arg, lua_pushfstring(L, "condition %d: argument index 0 to 5 expected", (int)i));
  lua_geti(L, t, 2);
  const char *op = lua_tostring(L, -1);
  int which = -1;
  for (int k = 0; op && op_names[k]; k++)
    if (op[0] == op_names[k][0] && strcmp(op, op_names[k]) == 0)
      which = k;
  if (which < 0)
    luaL_argerror(L, arg, lua_pushfstring(L, "condition %d: unknown comparison", (int)i));
  lua_geti(L, t, 3);
  lua_Integer value = lua_tointegerx(L, -1, &isnum);
  if (!isnum)
    luaL_argerror(L, arg, lua_pushfstring(L, "condition %d: integer value expected", (int)i));
  lua_geti(L, t, 4);
  lua_Integer value2 = lua_isnil(L, -1) ? 0 : lua_tointegerx(L, -1, &isnum);
  if (!isnum)
    luaL_argerror(L, arg, lua_pushfstring(L, "condition %d: integer value2 expected", (int)i));
  c->arg = (unsigned)index;
  c->op = op_values[which];
  c->datum_a = (scmp_datum_t)value;
  c->datum_b = (scmp_datum_t)value2;
  lua_settop(L, t - 1);
}

/* filter:add_rule(syscall, conditions, action [, errno]) -> true
 *   | fail, msg, errno (EDOM: libseccomp does not know the call)
 * Calls to `syscall` (a name) whose arguments meet every condition of the
 * list (see check_condition; at most one per argument) get `action`.
 * See seccomp_rule_add(3). */
static int filter_add_rule(lua_State *L) {
  lbox_filter *f = check_filter(L);
  const char *name = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  uint32_t action = check_action(L, 4);
  struct scmp_arg_cmp conditions[MAX_CONDITIONS];
  lua_Integer n = luaL_len(L, 3);
  luaL_argcheck(L, n <= MAX_CONDITIONS, 3, "at most 6 conditions");
  for (lua_Integer i = 1; i <= n; i++)
    check_condition(L, 3, i, &conditions[i - 1]);
  int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR)
    return lbox_fail_errno(L, EDOM, "seccomp_rule_add", name);
  int rc = seccomp_rule_add_array(f->ctx, action, nr, (unsigned)n, conditions);
  if (rc < 0)
    return lbox_fail_errno(L, -rc, "seccomp_rule_add", name);
  lua_pushboolean(L, 1);
  return 1;
}

/* filter:load() -> true | fail, msg, errno: confine the calling process
 * (and what it execs) from now on. See seccomp_load(3). */
static int filter_load(lua_State *L) {
  lbox_filter *f = check_filter(L);
  int rc = seccomp_load(f->ctx);
  if (rc < 0)
    return lbox_fail_errno(L, -rc, "seccomp_load", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* filter:export() -> string | fail, msg, errno: the filter as the BPF
 * program the kernel runs, for load_bpf (a compiled filter takes
 * milliseconds to build, microseconds to load). See seccomp_export_bpf(3). */
static int filter_export(lua_State *L) {
  lbox_filter *f = check_filter(L);
  int fd = memfd_create("lbox-seccomp", MFD_CLOEXEC);
  if (fd < 0)
    return lbox_fail(L, "memfd_create", NULL);
  int rc = seccomp_export_bpf(f->ctx, fd);
  struct stat st;
  if (rc == 0 && fstat(fd, &st) < 0)
    rc = -errno;
  luaL_Buffer b;
  char *data = rc == 0 ? luaL_buffinitsize(L, &b, (size_t)st.st_size) : NULL;
  ssize_t got = 0;
  while (rc == 0 && got < st.st_size) {
    ssize_t n = pread(fd, data + got, (size_t)(st.st_size - got), got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      rc = n < 0 ? -errno : -EIO;
    else
      got += n;
  }
  close(fd);
  if (rc < 0)
    return lbox_fail_errno(L, -rc, "seccomp_export_bpf", NULL);
  luaL_pushresultsize(&b, (size_t)got);
  return 1;
}

/* filter:close(): free the filter (a loaded one stays in force). Also
 * __gc and __close. */
static int filter_close(lua_State *L) {
  lbox_filter *f = luaL_checkudata(L, 1, FILTER_MT);
  if (f->ctx != NULL)
    seccomp_release(f->ctx);
  f->ctx = NULL;
  return 0;
}

static int filter_tostring(lua_State *L) {
  lbox_filter *f = luaL_checkudata(L, 1, FILTER_MT);
  lua_pushstring(L, f->ctx ? "seccomp filter" : "seccomp filter (closed)");
  return 1;
}

/* seccomp_load_bpf(program) -> true | fail, msg, errno: confine the
 * calling process with a BPF program from filter:export(). Without
 * no_new_privs this needs CAP_SYS_ADMIN. See SECCOMP_SET_MODE_FILTER in
 * seccomp(2). */
static int load_bpf(lua_State *L) {
  size_t len;
  const char *program = luaL_checklstring(L, 1, &len);
  luaL_argcheck(L, len > 0 && len % sizeof(struct sock_filter) == 0 &&
                   len / sizeof(struct sock_filter) <= BPF_MAXINSNS, 1, "not a BPF program");
  struct sock_fprog prog = {(unsigned short)(len / sizeof(struct sock_filter)), (struct sock_filter *)program};
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
    return lbox_fail(L, "prctl", "PR_SET_SECCOMP");
  lua_pushboolean(L, 1);
  return 1;
}

/* seccomp_version() -> "major.minor.micro" of the libseccomp in use. */
static int library_version(lua_State *L) {
  const struct scmp_version *v = seccomp_version();
  lua_pushfstring(L, "%d.%d.%d", (int)v->major, (int)v->minor, (int)v->micro);
  return 1;
}

/* seccomp_arch_native() -> name: the architecture lbox runs as ("x86_64"). */
static int arch_native(lua_State *L) {
  uint32_t token = seccomp_arch_native();
  for (int i = 0; arch_names[i].name; i++) {
    if (arch_names[i].token == token) {
      lua_pushstring(L, arch_names[i].name);
      return 1;
    }
  }
  lua_pushliteral(L, "unknown");
  return 1;
}

static const luaL_Reg filter_methods[] = {
  {"add_arch", filter_add_arch},
  {"add_rule", filter_add_rule},
  {"close", filter_close},
  {"export", filter_export},
  {"load", filter_load},
  {NULL, NULL}
};

static const luaL_Reg filter_meta[] = {
  {"__close", filter_close},
  {"__gc", filter_close},
  {"__index", NULL},
  {"__tostring", filter_tostring},
  {NULL, NULL}
};

static const luaL_Reg seccomp_funcs[] = {
  {"seccomp_arch_native", arch_native},
  {"seccomp_filter", filter_new},
  {"seccomp_load_bpf", load_bpf},
  {"seccomp_version", library_version},
  {NULL, NULL}
};

void lbox_open_seccomp(lua_State *L) {
  lbox_new_class(L, FILTER_MT, filter_meta, filter_methods);
  luaL_setfuncs(L, seccomp_funcs, 0);
}
