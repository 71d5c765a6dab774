/* Mounts and the nodes a root filesystem needs: mount(2), umount2(2),
 * mount_setattr(2), pivot_root(2), mknod(2), and detached mounts (the new
 * mount API: open_tree(2), fsopen(2)..fsmount(2), move_mount(2)), which a
 * process in a user namespace can attach but not make. Which mounts, in
 * what order, is decided in Lua. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <linux/mount.h>

#include "core.h"

/* Not in every libc's or kernel's headers lbox may meet. */
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif

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

/* open_tree(path) -> fd | fail, msg, errno
 * A detached copy of the mount tree at path, close-on-exec (OPEN_TREE_CLONE,
 * AT_RECURSIVE): attached by move_mount, or gone with its last descriptor.
 * See open_tree(2). */
static int mount_open_tree(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  long fd = syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (fd < 0)
    return lbox_fail(L, "open_tree", path);
  lua_pushinteger(L, fd);
  return 1;
}

/* idmap_mount(tree_fd, userns_fd) -> true | fail, msg, errno
 * Make the detached tree tree_fd (open_tree's) an idmapped mount: files
 * appear owned as the mapping of the user namespace userns_fd gives their
 * owners on disk. Linux 5.12, and filesystems that allow it. See
 * mount_setattr(2), MOUNT_ATTR_IDMAP. */
static int mount_idmap_mount(lua_State *L) {
  int tree = lbox_check_fd(L, 1);
  int userns = lbox_check_fd(L, 2);
  struct mount_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = (uint64_t)userns;
  if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
    return lbox_fail(L, "mount_setattr", "idmap");
  lua_pushboolean(L, 1);
  return 1;
}

/* fsmount(fstype, options [, attributes]) -> fd | fail, msg, errno
 * A new detached mount of a fresh fstype superblock, made with the
 * options table (name -> string, each set with fsconfig) and the mount's
 * MOUNT_ATTR_* attributes; close-on-exec. The filesystem's own words on a
 * failure (its fs_context log) end the message. See fsopen(2), fsconfig(2),
 * fsmount(2). */
static int mount_fsmount(lua_State *L) {
  const char *fstype = luaL_checkstring(L, 1);
  lua_Integer attrs = luaL_optinteger(L, 3, 0);
  int fs, err;
  long mnt;
  char log[256] = "";
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_argcheck(L, attrs >= 0 && attrs <= 0xffffffffL, 3, "attributes out of range");
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    luaL_argcheck(L, lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING, 2,
                  "option names and values must be strings");
    lua_pop(L, 1);
  }
  fs = (int)syscall(SYS_fsopen, fstype, FSOPEN_CLOEXEC);
  if (fs < 0)
    return lbox_fail(L, "fsopen", fstype);
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, lua_tostring(L, -2), lua_tostring(L, -1), 0) < 0) {
      err = errno;
      lua_pop(L, 2);
      goto fail;
    }
    lua_pop(L, 1);
  }
  if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
    err = errno;
    goto fail;
  }
  mnt = syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, (unsigned)attrs);
  if (mnt < 0) {
    err = errno;
    goto fail;
  }
  close(fs);
  lua_pushinteger(L, mnt);
  return 1;
fail:
  {
    ssize_t n = read(fs, log, sizeof log - 1);
    log[n > 0 ? n : 0] = '\0';
    if (n > 0 && log[n - 1] == '\n')
      log[n - 1] = '\0';
  }
  close(fs);
  luaL_pushfail(L);
  lua_pushfstring(L, "fsmount '%s': %s%s%s", fstype, strerror(err), log[0] ? ": " : "", log);
  lua_pushinteger(L, err);
  return 3;
}

/* move_mount(fd, target) -> true | fail, msg, errno
 * Attach the detached mount fd (open_tree's, fsmount's) at target, in
 * this process's mount namespace. See move_mount(2). */
static int mount_move_mount(lua_State *L) {
  int fd = lbox_check_fd(L, 1);
  const char *target = luaL_checkstring(L, 2);
  if (syscall(SYS_move_mount, fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
    return lbox_fail(L, "move_mount", target);
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
  {"fsmount", mount_fsmount},
  {"idmap_mount", mount_idmap_mount},
  {"mknod", mount_mknod},
  {"mount", mount_mount},
  {"mount_setattr", mount_mount_setattr},
  {"move_mount", mount_move_mount},
  {"open_tree", mount_open_tree},
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
