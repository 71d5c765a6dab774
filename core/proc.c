/* Processes: execve(2), waitpid(2), kill(2), _exit(2) and process attributes. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core.h"

/* Build a NULL-terminated char* array from the list at `arg`, in a userdata
 * so that nothing leaks if a later check raises. The strings stay anchored by
 * the list itself. */
static char **check_string_list(lua_State *L, int arg) {
  luaL_checktype(L, arg, LUA_TTABLE);
  lua_Integer n = luaL_len(L, arg);
  char **list = lua_newuserdatauv(L, ((size_t)n + 1) * sizeof(char *), 0);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_geti(L, arg, i) != LUA_TSTRING)
      luaL_argerror(L, arg, lua_pushfstring(L, "item %d is not a string", (int)i));
    list[i - 1] = (char *)lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  list[n] = NULL;
  return list;
}

/* execve(path, argv, env) -> only returns on failure: fail, msg, errno.
 * argv and env are lists of strings ("NAME=value" for env). See execve(2). */
static int proc_execve(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char **argv = check_string_list(L, 2);
  char **envp = check_string_list(L, 3);
  luaL_argcheck(L, argv[0] != NULL, 2, "argv is empty");
  execve(path, argv, envp);
  return lbox_fail(L, "exec", path);
}

/* waitpid(pid [, "nohang"]) -> pid, "exited"|"killed"|"stopped", code
 *                            | 0 (nohang, still running) | fail, msg, errno
 * code is the exit status or the signal number. See waitpid(2). */
static int proc_waitpid(lua_State *L) {
  static const char *const options[] = {"block", "nohang", NULL};
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  int nohang = luaL_checkoption(L, 2, "block", options);
  int status;
  pid_t r;
  do
    r = waitpid(pid, &status, nohang ? WNOHANG : 0);
  while (r < 0 && errno == EINTR);
  if (r < 0)
    return lbox_fail(L, "waitpid", NULL);
  lua_pushinteger(L, r);
  if (r == 0)
    return 1;
  if (WIFEXITED(status)) {
    lua_pushliteral(L, "exited");
    lua_pushinteger(L, WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    lua_pushliteral(L, "killed");
    lua_pushinteger(L, WTERMSIG(status));
  } else {
    lua_pushliteral(L, "stopped");
    lua_pushinteger(L, WSTOPSIG(status));
  }
  return 3;
}

/* kill(pid, signal) -> true | fail, msg, errno. See kill(2). */
static int proc_kill(lua_State *L) {
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  int sig = (int)luaL_checkinteger(L, 2);
  luaL_argcheck(L, sig >= 0 && sig < NSIG, 2, "not a signal number");
  if (kill(pid, sig) < 0)
    return lbox_fail(L, "kill", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* _exit(status): end the process now, without running Lua finalizers or
 * flushing stdio: the one way out of a cloned child. See _exit(2). */
static int proc_exit(lua_State *L) {
  _exit((int)luaL_optinteger(L, 1, 0));
  return 0;
}

/* chdir(path) -> true | fail, msg, errno. See chdir(2). */
static int proc_chdir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (chdir(path) < 0)
    return lbox_fail(L, "chdir", path);
  lua_pushboolean(L, 1);
  return 1;
}

/* set_pdeathsig(signal) -> true | fail, msg, errno: the signal this process
 * gets when its parent dies. See PR_SET_PDEATHSIG in prctl(2). */
static int proc_set_pdeathsig(lua_State *L) {
  int sig = (int)luaL_checkinteger(L, 1);
  luaL_argcheck(L, sig >= 0 && sig < NSIG, 1, "not a signal number");
  if (prctl(PR_SET_PDEATHSIG, sig) < 0)
    return lbox_fail(L, "prctl", "PR_SET_PDEATHSIG");
  lua_pushboolean(L, 1);
  return 1;
}

static int proc_getpid(lua_State *L) {
  lua_pushinteger(L, getpid());
  return 1;
}

static int proc_geteuid(lua_State *L) {
  lua_pushinteger(L, geteuid());
  return 1;
}

static const luaL_Reg proc_funcs[] = {
  {"_exit", proc_exit},
  {"chdir", proc_chdir},
  {"execve", proc_execve},
  {"geteuid", proc_geteuid},
  {"getpid", proc_getpid},
  {"kill", proc_kill},
  {"set_pdeathsig", proc_set_pdeathsig},
  {"waitpid", proc_waitpid},
  {NULL, NULL}
};

void lbox_open_proc(lua_State *L) {
  luaL_setfuncs(L, proc_funcs, 0);
}
