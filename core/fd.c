/* File descriptors as plain integers: pipe(2), open(2), read(2), write(2),
 * dup2(2), close(2), poll(2), fchown(2), fchmod(2). Every descriptor lbox opens is close-on-exec,
 * and cloexec_from makes the ones it inherited so too. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <dirent.h>
#include <linux/close_range.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core.h"

#define READ_MAX (1 << 20)

/* pipe() -> read_fd, write_fd | fail, msg, errno. See pipe2(2). */
static int fd_pipe(lua_State *L) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0)
    return lbox_fail(L, "pipe", NULL);
  lua_pushinteger(L, fds[0]);
  lua_pushinteger(L, fds[1]);
  return 2;
}

/* open(path [, "r"|"w"|"rw"|"create"|"append"|"directory"|"path"|"nonblock"]) -> fd | fail, msg, errno
 * "create" opens for writing, creating the file (mode 0600); "append" as
 * well, every write going to the end; "directory" opens a directory, say a
 * cgroup for clone; "path" names a file without opening it (O_PATH: a
 * fifo opened again later through /proc/self/fd); "nonblock" reads without
 * waiting (a fifo's reader opens at once). See open(2). */
static int fd_open(lua_State *L) {
  static const char *const modes[] = {"r", "w", "rw", "create", "append", "directory", "path", "nonblock", NULL};
  static const int mode_flags[] = {O_RDONLY, O_WRONLY, O_RDWR, O_WRONLY | O_CREAT,
                                   O_WRONLY | O_CREAT | O_APPEND, O_RDONLY | O_DIRECTORY,
                                   O_PATH, O_RDONLY | O_NONBLOCK};
  const char *path = luaL_checkstring(L, 1);
  int flags = mode_flags[luaL_checkoption(L, 2, "r", modes)];
  int fd;
  do
    fd = open(path, flags | O_CLOEXEC | O_NOCTTY, 0600);
  while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return lbox_fail(L, "open", path);
  lua_pushinteger(L, fd);
  return 1;
}

/* read(fd, max) -> string ("" at end of file) | fail, msg, errno. See read(2). */
static int fd_read(lua_State *L) {
  int fd = lbox_check_fd(L, 1);
  lua_Integer max = luaL_checkinteger(L, 2);
  luaL_argcheck(L, max > 0 && max <= READ_MAX, 2, "size out of range");
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, (size_t)max);
  ssize_t n;
  do
    n = read(fd, p, (size_t)max);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return lbox_fail(L, "read", NULL);
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

/* write(fd, data) -> bytes written (all of data) | fail, msg, errno
 * Retries short writes and EINTR. See write(2). */
static int fd_write(lua_State *L) {
  int fd = lbox_check_fd(L, 1);
  size_t len, done = 0;
  const char *data = luaL_checklstring(L, 2, &len);
  while (done < len) {
    ssize_t n = write(fd, data + done, len - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return lbox_fail(L, "write", NULL);
    done += (size_t)n;
  }
  lua_pushinteger(L, (lua_Integer)done);
  return 1;
}

/* close(fd) -> true | fail, msg, errno. See close(2). */
static int fd_close(lua_State *L) {
  if (close(lbox_check_fd(L, 1)) < 0)
    return lbox_fail(L, "close", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* Close, or make close-on-exec, each open descriptor from first to last,
 * listed in /proc/self/fd: for kernels before close_range(2) (Linux 5.11). */
static int each_listed_fd(unsigned first, unsigned last, int cloexec) {
  DIR *dir = opendir("/proc/self/fd");
  if (dir == NULL)
    return -1;
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL) {
    char *end;
    unsigned long fd = strtoul(entry->d_name, &end, 10);
    if (*end != '\0' || end == entry->d_name || fd < first || fd > last || (int)fd == dirfd(dir))
      continue;
    if (!cloexec)
      close((int)fd);
    else {
      int flags = fcntl((int)fd, F_GETFD);
      if (flags >= 0)
        fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC);
    }
  }
  closedir(dir);
  return 0;
}

static int close_fds(lua_State *L, unsigned first, unsigned last, int cloexec) {
  if (syscall(SYS_close_range, first, last, cloexec ? CLOSE_RANGE_CLOEXEC : 0) < 0) {
    if (errno != ENOSYS && errno != EINVAL)
      return lbox_fail(L, "close_range", NULL);
    if (each_listed_fd(first, last, cloexec) < 0)
      return lbox_fail(L, "opendir", "/proc/self/fd");
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* close_range(first [, last]) -> true | fail, msg, errno: close every open
 * descriptor from `first` to `last` (default: all above), whoever opened
 * it. See close_range(2). */
static int fd_close_range(lua_State *L) {
  int first = lbox_check_fd(L, 1);
  int last = luaL_opt(L, lbox_check_fd, 2, 0x7fffffff);
  luaL_argcheck(L, last >= first, 2, "below the first descriptor");
  return close_fds(L, (unsigned)first, (unsigned)last, 0);
}

/* cloexec_from(first) -> true | fail, msg, errno: make every descriptor from
 * `first` up close-on-exec, whoever opened it, so that exec passes on only
 * those below. */
static int fd_cloexec_from(lua_State *L) {
  return close_fds(L, (unsigned)lbox_check_fd(L, 1), ~0U, 1);
}

/* dup2(old, new) -> new | fail, msg, errno. The copy is not close-on-exec.
 * See dup2(2). */
static int fd_dup2(lua_State *L) {
  int oldfd = lbox_check_fd(L, 1), newfd = lbox_check_fd(L, 2);
  if (oldfd == newfd) {
    /* dup2 would keep close-on-exec; the caller wants the fd to survive exec */
    int flags = fcntl(oldfd, F_GETFD);
    if (flags < 0 || fcntl(oldfd, F_SETFD, flags & ~FD_CLOEXEC) < 0)
      return lbox_fail(L, "dup2", NULL);
  } else if (dup2(oldfd, newfd) < 0) {
    return lbox_fail(L, "dup2", NULL);
  }
  lua_pushinteger(L, newfd);
  return 1;
}

/* poll(fds [, timeout_ms]) -> {[fd] = true, ...} for each fd readable, hung
 * up or in error (empty on timeout) | fail, msg, errno. See poll(2). */
static int fd_poll(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int timeout = (int)luaL_optinteger(L, 2, -1);
  lua_Integer n = luaL_len(L, 1);
  luaL_argcheck(L, n >= 0 && n <= 64, 1, "between 0 and 64 descriptors expected");
  struct pollfd fds[64];
  for (lua_Integer i = 0; i < n; i++) {
    lua_geti(L, 1, i + 1);
    int isnum;
    lua_Integer fd = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    luaL_argcheck(L, isnum && fd >= 0 && fd <= 0x7fffffff, 1, "list of descriptors expected");
    fds[i].fd = (int)fd;
    fds[i].events = POLLIN;
    fds[i].revents = 0;
  }
  int r;
  do
    r = poll(fds, (nfds_t)n, timeout);
  while (r < 0 && errno == EINTR);
  if (r < 0)
    return lbox_fail(L, "poll", NULL);
  lua_createtable(L, 0, r);
  for (lua_Integer i = 0; i < n; i++) {
    if (fds[i].revents) {
      lua_pushboolean(L, 1);
      lua_rawseti(L, -2, fds[i].fd);
    }
  }
  return 1;
}

/* flock(fd, "shared"|"exclusive"|"unlock" [, "nowait"]) -> true
 *   | false when nowait and another holder has it | fail, msg, errno. See flock(2). */
static int fd_flock(lua_State *L) {
  static const char *const ops[] = {"shared", "exclusive", "unlock", NULL};
  static const int op_values[] = {LOCK_SH, LOCK_EX, LOCK_UN};
  static const char *const waits[] = {"wait", "nowait", NULL};
  int fd = lbox_check_fd(L, 1);
  int op = op_values[luaL_checkoption(L, 2, NULL, ops)];
  if (luaL_checkoption(L, 3, "wait", waits) == 1)
    op |= LOCK_NB;
  int r;
  do
    r = flock(fd, op);
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno == EWOULDBLOCK) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (r < 0)
    return lbox_fail(L, "flock", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* access(path [, "exists"|"read"|"write"|"execute"]) -> true | fail, msg, errno
 * See access(2). */
static int fd_access(lua_State *L) {
  static const char *const modes[] = {"exists", "read", "write", "execute", NULL};
  static const int mode_values[] = {F_OK, R_OK, W_OK, X_OK};
  const char *path = luaL_checkstring(L, 1);
  if (access(path, mode_values[luaL_checkoption(L, 2, "exists", modes)]) < 0)
    return lbox_fail(L, "access", path);
  lua_pushboolean(L, 1);
  return 1;
}

/* fchown(fd, uid [, gid]) -> true | fail, msg, errno: a gid of -1 (the
 * default) keeps the group. See fchown(2). */
static int fd_fchown(lua_State *L) {
  int fd = lbox_check_fd(L, 1);
  lua_Integer uid = luaL_checkinteger(L, 2), gid = luaL_optinteger(L, 3, -1);
  luaL_argcheck(L, uid >= 0 && uid <= 0xfffffffeL, 2, "uid out of range");
  luaL_argcheck(L, gid >= -1 && gid <= 0xfffffffeL, 3, "gid out of range");
  if (fchown(fd, (uid_t)uid, (gid_t)gid) < 0)
    return lbox_fail(L, "fchown", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* fchmod(fd, mode) -> true | fail, msg, errno. See fchmod(2). */
static int fd_fchmod(lua_State *L) {
  int fd = lbox_check_fd(L, 1);
  lua_Integer mode = luaL_checkinteger(L, 2);
  luaL_argcheck(L, mode >= 0 && mode <= 07777, 2, "permission bits expected");
  if (fchmod(fd, (mode_t)mode) < 0)
    return lbox_fail(L, "fchmod", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* isatty(fd) -> boolean. See isatty(3). */
static int fd_isatty(lua_State *L) {
  lua_pushboolean(L, isatty(lbox_check_fd(L, 1)));
  return 1;
}

static const luaL_Reg fd_funcs[] = {
  {"access", fd_access},
  {"cloexec_from", fd_cloexec_from},
  {"close", fd_close},
  {"close_range", fd_close_range},
  {"dup2", fd_dup2},
  {"fchmod", fd_fchmod},
  {"fchown", fd_fchown},
  {"flock", fd_flock},
  {"isatty", fd_isatty},
  {"open", fd_open},
  {"pipe", fd_pipe},
  {"poll", fd_poll},
  {"read", fd_read},
  {"write", fd_write},
  {NULL, NULL}
};

void lbox_open_fd(lua_State *L) {
  luaL_setfuncs(L, fd_funcs, 0);
}
