/* Mounts and the nodes a root filesystem needs: mount(2), umount2(2),
 * mount_setattr(2), pivot_root(2), mknod(2). Which mounts, in what order,
 * is decided in Lua. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
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

/* mount_setattr(path, set [, clear [, flags]]) -> true | fail, msg, errno
 * Set and clear MOUNT_ATTR_* attributes of the mount at path; with
 * AT_RECURSIVE in flags, of every mount below it too, which a bind remount
 * cannot do (it ignores MS_REC). Called through syscall(2): glibc 2.36's
 * wrapper is not in every libc lbox may meet. See mount_setattr(2). */
static int mount_mount_setattr(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer set = luaL_checkinteger(L, 2);
  lua_Integer clear = luaL_optinteger(L, 3, 0);
  lua_Integer flags = luaL_optinteger(L, 4, 0);
  struct mount_attr attr;
  luaL_argcheck(L, set >= 0 && set <= 0xffffffffL, 2, "attributes out of range");
  luaL_argcheck(L, clear >= 0 && clear <= 0xffffffffL, 3, "attributes out of range");
  luaL_argcheck(L, (flags & ~(lua_Integer)AT_RECURSIVE) == 0, 4, "only AT_RECURSIVE is allowed");
  memset(&attr, 0, sizeof attr);
  attr.attr_set = (uint64_t)set;
  attr.attr_clr = (uint64_t)clear;
  if (syscall(SYS_mount_setattr, AT_FDCWD, path, (unsigned)flags, &attr, sizeof attr) < 0)
    return lbox_fail(L, "mount_setattr", path);
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

/* mknod(path, "char"|"block"|"fifo", mode [, major, minor]) -> true | fail, msg, errno
 * See mknod(2). */
static int mount_mknod(lua_State *L) {
  static const char *const types[] = {"char", "block", "fifo", NULL};
  static const mode_t type_bits[] = {S_IFCHR, S_IFBLK, S_IFIFO};
  const char *path = luaL_checkstring(L, 1);
  mode_t type = type_bits[luaL_checkoption(L, 2, NULL, types)];
  lua_Integer mode = luaL_checkinteger(L, 3);
  lua_Integer major = luaL_optinteger(L, 4, 0), minor = luaL_optinteger(L, 5, 0);
  luaL_argcheck(L, mode >= 0 && mode <= 07777, 3, "permission bits expected");
  luaL_argcheck(L, major >= 0 && major <= 0xfff, 4, "major number out of range");
  luaL_argcheck(L, minor >= 0 && minor <= 0xfffff, 5, "minor number out of range");
  if (mknod(path, type | (mode_t)mode, makedev((unsigned)major, (unsigned)minor)) < 0)
    return lbox_fail(L, "mknod", path);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg mount_funcs[] = {
  {"mknod", mount_mknod},
  {"mount", mount_mount},
  {"mount_setattr", mount_mount_setattr},
  {"pivot_root", mount_pivot_root},
  {"umount", mount_umount},
  {NULL, NULL}
};

static const struct lbox_constant mount_constants[] = {
  {"AT_RECURSIVE", AT_RECURSIVE},
  {"MNT_DETACH", MNT_DETACH},
  {"MOUNT_ATTR_NODEV", MOUNT_ATTR_NODEV},
  {"MOUNT_ATTR_NOEXEC", MOUNT_ATTR_NOEXEC},
  {"MOUNT_ATTR_NOSUID", MOUNT_ATTR_NOSUID},
  {"MOUNT_ATTR_RDONLY", MOUNT_ATTR_RDONLY},
  {"MS_BIND", MS_BIND},
  {"MS_DIRSYNC", MS_DIRSYNC},
  {"MS_MANDLOCK", MS_MANDLOCK},
  {"MS_NOATIME", MS_NOATIME},
  {"MS_NODEV", MS_NODEV},
  {"MS_NODIRATIME", MS_NODIRATIME},
  {"MS_NOEXEC", MS_NOEXEC},
  {"MS_NOSUID", MS_NOSUID},
  {"MS_PRIVATE", MS_PRIVATE},
  {"MS_RDONLY", MS_RDONLY},
  {"MS_REC", MS_REC},
  {"MS_RELATIME", MS_RELATIME},
  {"MS_REMOUNT", MS_REMOUNT},
  {"MS_SHARED", MS_SHARED},
  {"MS_SLAVE", MS_SLAVE},
  {"MS_STRICTATIME", MS_STRICTATIME},
  {"MS_SYNCHRONOUS", MS_SYNCHRONOUS},
  {"MS_UNBINDABLE", MS_UNBINDABLE},
  {NULL, 0}
};

void lbox_open_mount(lua_State *L) {
  luaL_setfuncs(L, mount_funcs, 0);
  lbox_set_constants(L, mount_constants);
}
