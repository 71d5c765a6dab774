/* Signals: the blocked mask, signalfd(2) and dispositions. lbox blocks the
 * signals it forwards and reads them from a signalfd, so no handler ever runs
 * inside the Lua state; the one handler here only takes note of a signal,
 * for code blocked in a library's read (readline) that a signal must end. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "core.h"

static void check_sigset(lua_State *L, int arg, sigset_t *set) {
  luaL_checktype(L, arg, LUA_TTABLE);
  sigemptyset(set);
  lua_Integer n = luaL_len(L, arg);
  for (lua_Integer i = 1; i <= n; i++) {
    int isnum;
    lua_geti(L, arg, i);
    lua_Integer sig = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    if (!isnum || sig <= 0 || sig >= NSIG)
      luaL_argerror(L, arg, "list of signal numbers expected");
    sigaddset(set, (int)sig);
  }
}

/* sigmask("block"|"unblock"|"set", signals) -> true | fail, msg, errno
 * See sigprocmask(2). */
static int signal_sigmask(lua_State *L) {
  static const char *const hows[] = {"block", "unblock", "set", NULL};
  static const int how_values[] = {SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK};
  int how = how_values[luaL_checkoption(L, 1, NULL, hows)];
  sigset_t set;
  check_sigset(L, 2, &set);
  if (sigprocmask(how, &set, NULL) < 0)
    return lbox_fail(L, "sigprocmask", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* signalfd(signals) -> fd | fail, msg, errno: a non-blocking, close-on-exec
 * descriptor that reads the given (blocked) signals. See signalfd(2). */
static int signal_signalfd(lua_State *L) {
  sigset_t set;
  check_sigset(L, 1, &set);
  int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0)
    return lbox_fail(L, "signalfd", NULL);
  lua_pushinteger(L, fd);
  return 1;
}

/* read_signal(fd) -> signal number | nil when none is pending | fail, msg, errno */
static int signal_read_signal(lua_State *L) {
  int fd = lbox_check_fd(L, 1);
  struct signalfd_siginfo info;
  ssize_t n;
  do
    n = read(fd, &info, sizeof info);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) {
    lua_pushnil(L);
    return 1;
  }
  if (n < 0)
    return lbox_fail(L, "read", "signalfd");
  if (n != (ssize_t)sizeof info)
    return lbox_fail_errno(L, EIO, "read", "signalfd");
  lua_pushinteger(L, info.ssi_signo);
  return 1;
}

static volatile sig_atomic_t caught[NSIG];

static void take_note(int sig) {
  caught[sig] = 1;
}

/* The Lua state that "interrupt" stops, as lua.c's SIGINT handler does:
 * lua_sethook is the one Lua call safe in a signal handler, and the hook
 * raises at the next function call, return or instruction. */
static lua_State *interrupted_state;

static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted");
}

static void interrupt(int sig) {
  caught[sig] = 1;
  if (interrupted_state)
    lua_sethook(interrupted_state, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* signal(signals, "default"|"ignore"|"catch"|"interrupt") -> true | fail,
 * msg, errno: set the disposition of each signal. "catch" only notes that the
 * signal came (see caught), and does not restart system calls: a blocking
 * read it interrupts fails with EINTR. "interrupt" does the same and also
 * raises the error "interrupted" in the Lua code of this thread that runs
 * next (the caller's thread; one thread at a time). See sigaction(2). */
static int signal_signal(lua_State *L) {
  static const char *const actions[] = {"default", "ignore", "catch", "interrupt", NULL};
  static void (*const handlers[])(int) = {SIG_DFL, SIG_IGN, take_note, interrupt};
  sigset_t set;
  check_sigset(L, 1, &set);
  int choice = luaL_checkoption(L, 2, NULL, actions);
  if (handlers[choice] == interrupt)
    interrupted_state = L;
  struct sigaction action = {0};
  action.sa_handler = handlers[choice];
  sigemptyset(&action.sa_mask);
  for (int sig = 1; sig < NSIG; sig++)
    if (sigismember(&set, sig) == 1 && sigaction(sig, &action, NULL) < 0)
      return lbox_fail(L, "sigaction", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* caught() -> { signal... }: the signals caught (see signal) since the last
 * call, in increasing order. */
static int signal_caught(lua_State *L) {
  lua_newtable(L);
  for (int sig = 1; sig < NSIG; sig++)
    if (caught[sig]) {
      caught[sig] = 0;
      lua_pushinteger(L, sig);
      lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
    }
  return 1;
}

static const luaL_Reg signal_funcs[] = {
  {"caught", signal_caught},
  {"read_signal", signal_read_signal},
  {"signal", signal_signal},
  {"signalfd", signal_signalfd},
  {"sigmask", signal_sigmask},
  {NULL, NULL}
};

static const struct lbox_constant signal_constants[] = {
  {"SIGABRT", SIGABRT}, {"SIGALRM", SIGALRM}, {"SIGCHLD", SIGCHLD},
  {"SIGCONT", SIGCONT}, {"SIGHUP", SIGHUP}, {"SIGINT", SIGINT},
  {"SIGKILL", SIGKILL}, {"SIGPIPE", SIGPIPE}, {"SIGQUIT", SIGQUIT},
  {"SIGSTOP", SIGSTOP}, {"SIGTERM", SIGTERM}, {"SIGTSTP", SIGTSTP},
  {"SIGTTIN", SIGTTIN}, {"SIGTTOU", SIGTTOU}, {"SIGUSR1", SIGUSR1},
  {"SIGUSR2", SIGUSR2}, {"SIGWINCH", SIGWINCH},
  {NULL, 0}
};

void lbox_open_signal(lua_State *L) {
  luaL_setfuncs(L, signal_funcs, 0);
  lbox_set_constants(L, signal_constants);
}
