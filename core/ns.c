/* Namespaces: clone(2) with fork semantics, unshare(2), setns(2), sethostname(2). */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/sched.h>

#include "core.h"

#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | \
                  CLONE_NEWNET | CLONE_NEWUSER | CLONE_NEWCGROUP)

static int check_ns_flags(lua_State *L, int arg) {
  lua_Integer flags = luaL_checkinteger(L, arg);
  luaL_argcheck(L, (flags & ~(lua_Integer)NS_FLAGS) == 0, arg,
                "only CLONE_NEW* namespace flags are allowed");
  return (int)flags;
}

/* clone(flags [, cgroup_fd]) -> pid in the parent, 0 in the child | fail, msg, errno
 * Fork semantics: the child goes on in its own copy of the Lua state and must
 * end in exec or _exit. With cgroup_fd (an open cgroup v2 directory) the
 * child is born in that cgroup: clone3 with CLONE_INTO_CGROUP, Linux 5.7.
 * See clone(2). */
static int ns_clone(lua_State *L) {
  int flags = check_ns_flags(L, 1);
  int cgroup_fd = lua_isnoneornil(L, 2) ? -1 : lbox_check_fd(L, 2);
  long pid;
  fflush(NULL);
  if (cgroup_fd >= 0) {
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = (unsigned long long)flags | CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = (unsigned long long)cgroup_fd;
    pid = syscall(SYS_clone3, &args, sizeof args);
  } else {
    pid = syscall(SYS_clone, (unsigned long)flags | SIGCHLD, NULL, NULL, NULL, NULL);
  }
  if (pid < 0)
    return lbox_fail(L, cgroup_fd >= 0 ? "clone3" : "clone", NULL);
  lua_pushinteger(L, pid);
  return 1;
}

/* unshare(flags) -> true | fail, msg, errno. See unshare(2). */
static int ns_unshare(lua_State *L) {
  int flags = check_ns_flags(L, 1);
  if (unshare(flags) < 0)
    return lbox_fail(L, "unshare", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* setns(fd [, nstype]) -> true | fail, msg, errno. See setns(2). */
static int ns_setns(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  int nstype = (int)luaL_optinteger(L, 2, 0);
  luaL_argcheck(L, (nstype & ~NS_FLAGS) == 0, 2, "not a namespace type");
  if (setns(fd, nstype) < 0)
    return lbox_fail(L, "setns", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* sethostname(name) -> true | fail, msg, errno. See sethostname(2). */
static int ns_sethostname(lua_State *L) {
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  if (sethostname(name, len) < 0)
    return lbox_fail(L, "sethostname", name);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg ns_funcs[] = {
  {"clone", ns_clone},
  {"sethostname", ns_sethostname},
  {"setns", ns_setns},
  {"unshare", ns_unshare},
  {NULL, NULL}
};

static const struct lbox_constant ns_constants[] = {
  {"CLONE_NEWCGROUP", CLONE_NEWCGROUP},
  {"CLONE_NEWIPC", CLONE_NEWIPC},
  {"CLONE_NEWNET", CLONE_NEWNET},
  {"CLONE_NEWNS", CLONE_NEWNS},
  {"CLONE_NEWPID", CLONE_NEWPID},
  {"CLONE_NEWUSER", CLONE_NEWUSER},
  {"CLONE_NEWUTS", CLONE_NEWUTS},
  {NULL, 0}
};

void lbox_open_ns(lua_State *L) {
  luaL_setfuncs(L, ns_funcs, 0);
  lbox_set_constants(L, ns_constants);
}
