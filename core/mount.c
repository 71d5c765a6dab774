/* Mounts: mount(2), umount2(2), pivot_root(2). Which mounts, in what order,
 * is decided in Lua. */
#define _GNU_SOURCE
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core.h"

/* mount(source, target [, fstype [, flags [, data]]]) -> true | fail, msg, errno
 * source, fstype and data may be nil. See mount(2). */
static int mount_mount(lua_State *L) {
  const char *source = luaL_optstring(L, 1, NULL);
  const char *target = luaL_checkstring(L, 2);
  const char *fstype = luaL_optstring(L, 3, NULL);
  lua_Integer flags = luaL_optinteger(L, 4, 0);
  const char *data = luaL_optstring(L, 5, NULL);
  luaL_argcheck(L, flags >= 0 && flags <= 0xffffffffL, 4, "flags out of range");
  if (mount(source, target, fstype, (unsigned long)flags, data) < 0)
    return lbox_fail(L, "mount", target);
  lua_pushboolean(L, 1);
  return 1;
}

/* umount(target [, flags]) -> true | fail, msg, errno. See umount2(2). */
static int mount_umount(lua_State *L) {
  const char *target = luaL_checkstring(L, 1);
  int flags = (int)luaL_optinteger(L, 2, 0);
  if (umount2(target, flags) < 0)
    return lbox_fail(L, "umount", target);
  lua_pushboolean(L, 1);
  return 1;
}

/* pivot_root(new_root, put_old) -> true | fail, msg, errno. See pivot_root(2). */
static int mount_pivot_root(lua_State *L) {
  const char *new_root = luaL_checkstring(L, 1);
  const char *put_old = luaL_checkstring(L, 2);
  if (syscall(SYS_pivot_root, new_root, put_old) < 0)
    return lbox_fail(L, "pivot_root", new_root);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg mount_funcs[] = {
  {"mount", mount_mount},
  {"pivot_root", mount_pivot_root},
  {"umount", mount_umount},
  {NULL, NULL}
};

static const struct lbox_constant mount_constants[] = {
  {"MNT_DETACH", MNT_DETACH},
  {"MS_BIND", MS_BIND},
  {"MS_NODEV", MS_NODEV},
  {"MS_NOEXEC", MS_NOEXEC},
  {"MS_NOSUID", MS_NOSUID},
  {"MS_PRIVATE", MS_PRIVATE},
  {"MS_RDONLY", MS_RDONLY},
  {"MS_REC", MS_REC},
  {"MS_REMOUNT", MS_REMOUNT},
  {"MS_SHARED", MS_SHARED},
  {"MS_SLAVE", MS_SLAVE},
  {NULL, 0}
};

void lbox_open_mount(lua_State *L) {
  luaL_setfuncs(L, mount_funcs, 0);
  lbox_set_constants(L, mount_constants);
}
