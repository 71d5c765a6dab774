/* lbox.core: the kernel primitives lbox's Lua code is built on. */
#include <errno.h>
#include <string.h>

#include "core.h"

int lbox_fail_errno(lua_State *L, int err, const char *op, const char *arg) {
  luaL_pushfail(L);
  if (arg)
    lua_pushfstring(L, "%s '%s': %s", op, arg, strerror(err));
  else
    lua_pushfstring(L, "%s: %s", op, strerror(err));
  lua_pushinteger(L, err);
  return 3;
}

int lbox_fail(lua_State *L, const char *op, const char *arg) {
  return lbox_fail_errno(L, errno, op, arg);
}

int lbox_check_fd(lua_State *L, int arg) {
  lua_Integer fd = luaL_checkinteger(L, arg);
  luaL_argcheck(L, fd >= 0 && fd <= 0x7fffffff, arg, "not a file descriptor");
  return (int)fd;
}

void lbox_set_constants(lua_State *L, const struct lbox_constant *list) {
  for (; list->name; list++) {
    lua_pushinteger(L, list->value);
    lua_setfield(L, -2, list->name);
  }
}

void lbox_new_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods) {
  luaL_newmetatable(L, name);
  luaL_setfuncs(L, meta, 0);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

/* The errno values lbox's Lua code branches on. */
static const struct lbox_constant errno_constants[] = {
  {"EACCES", EACCES}, {"EAGAIN", EAGAIN}, {"EBADF", EBADF},
  {"EBUSY", EBUSY}, {"ECHILD", ECHILD}, {"EDOM", EDOM}, {"EEXIST", EEXIST},
  {"EINTR", EINTR}, {"EINVAL", EINVAL}, {"EIO", EIO},
  {"ENODEV", ENODEV}, {"ENOENT", ENOENT}, {"ENOEXEC", ENOEXEC}, {"ENOSPC", ENOSPC}, {"ENOSYS", ENOSYS},
  {"ENOTDIR", ENOTDIR}, {"ENOTTY", ENOTTY}, {"EPERM", EPERM},
  {"ESRCH", ESRCH},
  {NULL, 0}
};

int luaopen_lbox_core(lua_State *L) {
  lua_newtable(L);
  lbox_set_constants(L, errno_constants);
  lbox_open_ns(L);
  lbox_open_mount(L);
  lbox_open_proc(L);
  lbox_open_signal(L);
  lbox_open_fd(L);
  lbox_open_tty(L);
  lbox_open_cgroup(L);
  lbox_open_net(L);
  lbox_open_seccomp(L);
  lbox_open_bpf(L);
  lbox_open_nft(L);
  return 1;
}
