/* Terminals: pseudo-terminal pairs, termios modes, window sizes and the
 * controlling terminal. A termios state travels through Lua as an opaque
 * string, so saving and restoring a terminal needs no C resource. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "core.h"

static void check_termios(lua_State *L, int arg, struct termios *t) {
  size_t len;
  const char *s = luaL_checklstring(L, arg, &len);
  luaL_argcheck(L, len == sizeof *t, arg, "not a terminal state from tcgetattr");
  memcpy(t, s, sizeof *t);
}

/* openpty() -> master_fd, slave_fd, slave_path | fail, msg, errno
 * Both ends are close-on-exec. See posix_openpt(3), ptsname(3). */
static int tty_openpty(lua_State *L) {
  char name[128];
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0)
    return lbox_fail(L, "posix_openpt", NULL);
  if (grantpt(master) < 0 || unlockpt(master) < 0 || ptsname_r(master, name, sizeof name) != 0) {
    int err = errno;
    close(master);
    return lbox_fail_errno(L, err, "openpty", NULL);
  }
  int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) {
    int err = errno;
    close(master);
    return lbox_fail_errno(L, err, "open", name);
  }
  lua_pushinteger(L, master);
  lua_pushinteger(L, slave);
  lua_pushstring(L, name);
  return 3;
}

/* tcgetattr(fd) -> state | fail, msg, errno. See tcgetattr(3). */
static int tty_tcgetattr(lua_State *L) {
  struct termios t;
  memset(&t, 0, sizeof t); /* padding too: equal states give equal strings */
  if (tcgetattr(lbox_check_fd(L, 1), &t) < 0)
    return lbox_fail(L, "tcgetattr", NULL);
  lua_pushlstring(L, (const char *)&t, sizeof t);
  return 1;
}

/* tcsetattr(fd, state) -> true | fail, msg, errno (applied after output drains).
 * See tcsetattr(3). */
static int tty_tcsetattr(lua_State *L) {
  int fd = lbox_check_fd(L, 1);
  struct termios t;
  check_termios(L, 2, &t);
  int r;
  do
    r = tcsetattr(fd, TCSADRAIN, &t);
  while (r < 0 && errno == EINTR);
  if (r < 0)
    return lbox_fail(L, "tcsetattr", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* cfmakeraw(state) -> the raw-mode state derived from it. See cfmakeraw(3). */
static int tty_cfmakeraw(lua_State *L) {
  struct termios t;
  check_termios(L, 1, &t);
  cfmakeraw(&t);
  lua_pushlstring(L, (const char *)&t, sizeof t);
  return 1;
}

/* get_winsize(fd) -> rows, cols | fail, msg, errno. See TIOCGWINSZ in ioctl_tty(2). */
static int tty_get_winsize(lua_State *L) {
  struct winsize ws;
  if (ioctl(lbox_check_fd(L, 1), TIOCGWINSZ, &ws) < 0)
    return lbox_fail(L, "ioctl", "TIOCGWINSZ");
  lua_pushinteger(L, ws.ws_row);
  lua_pushinteger(L, ws.ws_col);
  return 2;
}

/* set_winsize(fd, rows, cols) -> true | fail, msg, errno. See TIOCSWINSZ. */
static int tty_set_winsize(lua_State *L) {
  int fd = lbox_check_fd(L, 1);
  lua_Integer rows = luaL_checkinteger(L, 2), cols = luaL_checkinteger(L, 3);
  luaL_argcheck(L, rows >= 0 && rows <= 0xffff, 2, "rows out of range");
  luaL_argcheck(L, cols >= 0 && cols <= 0xffff, 3, "columns out of range");
  struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
  if (ioctl(fd, TIOCSWINSZ, &ws) < 0)
    return lbox_fail(L, "ioctl", "TIOCSWINSZ");
  lua_pushboolean(L, 1);
  return 1;
}

/* setsid() -> session id | fail, msg, errno. See setsid(2). */
static int tty_setsid(lua_State *L) {
  pid_t sid = setsid();
  if (sid < 0)
    return lbox_fail(L, "setsid", NULL);
  lua_pushinteger(L, sid);
  return 1;
}

/* set_controlling_tty(fd) -> true | fail, msg, errno: make the terminal open
 * on fd the controlling terminal of this session. See TIOCSCTTY. */
static int tty_set_controlling_tty(lua_State *L) {
  if (ioctl(lbox_check_fd(L, 1), TIOCSCTTY, 0) < 0)
    return lbox_fail(L, "ioctl", "TIOCSCTTY");
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg tty_funcs[] = {
  {"cfmakeraw", tty_cfmakeraw},
  {"get_winsize", tty_get_winsize},
  {"openpty", tty_openpty},
  {"set_controlling_tty", tty_set_controlling_tty},
  {"set_winsize", tty_set_winsize},
  {"setsid", tty_setsid},
  {"tcgetattr", tty_tcgetattr},
  {"tcsetattr", tty_tcsetattr},
  {NULL, NULL}
};

void lbox_open_tty(lua_State *L) {
  luaL_setfuncs(L, tty_funcs, 0);
}
