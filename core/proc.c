/* Processes: execve(2), waitpid(2), kill(2), _exit(2) and process
 * attributes, resource limits (setrlimit(2)) among them. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <linux/capability.h>
#include <linux/keyctl.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <grp.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/stat.h>
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

/* fexecve(fd, argv, env) -> only returns on failure: fail, msg, errno. As
 * execve, of the program open at fd: one of the host's, run where its path
 * would not resolve (after chroot). See execveat(2), AT_EMPTY_PATH. */
static int proc_fexecve(lua_State *L) {
  int fd = lbox_check_fd(L, 1);
  char **argv = check_string_list(L, 2);
  char **envp = check_string_list(L, 3);
  luaL_argcheck(L, argv[0] != NULL, 2, "argv is empty");
  syscall(SYS_execveat, fd, "", argv, envp, AT_EMPTY_PATH);
  return lbox_fail(L, "exec", argv[0]);
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

/* Resource limits by the names docker's --ulimit gives them. */
static const char *const rlimit_names[] = {
  "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
  "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack", NULL};
static const int rlimit_resources[] = {
  RLIMIT_AS, RLIMIT_CORE, RLIMIT_CPU, RLIMIT_DATA, RLIMIT_FSIZE, RLIMIT_LOCKS,
  RLIMIT_MEMLOCK, RLIMIT_MSGQUEUE, RLIMIT_NICE, RLIMIT_NOFILE, RLIMIT_NPROC,
  RLIMIT_RSS, RLIMIT_RTPRIO, RLIMIT_RTTIME, RLIMIT_SIGPENDING, RLIMIT_STACK};

static rlim_t check_rlim(lua_State *L, int arg) {
  lua_Integer value = luaL_checkinteger(L, arg);
  luaL_argcheck(L, value >= -1, arg, "a limit or -1 (unlimited) expected");
  return value == -1 ? RLIM_INFINITY : (rlim_t)value;
}

static void push_rlim(lua_State *L, rlim_t value) {
  if (value == RLIM_INFINITY || value > (rlim_t)LUA_MAXINTEGER)
    lua_pushinteger(L, -1);
  else
    lua_pushinteger(L, (lua_Integer)value);
}

/* getrlimit(name) -> soft, hard (-1: unlimited) | fail, msg, errno. name is
 * one of docker's --ulimit names: "nofile", "nproc", "core"... See getrlimit(2). */
static int proc_getrlimit(lua_State *L) {
  int which = luaL_checkoption(L, 1, NULL, rlimit_names);
  struct rlimit limit;
  if (getrlimit(rlimit_resources[which], &limit) < 0)
    return lbox_fail(L, "getrlimit", rlimit_names[which]);
  push_rlim(L, limit.rlim_cur);
  push_rlim(L, limit.rlim_max);
  return 2;
}

/* setrlimit(name, soft, hard) -> true | fail, msg, errno; -1 is unlimited.
 * See setrlimit(2). */
static int proc_setrlimit(lua_State *L) {
  int which = luaL_checkoption(L, 1, NULL, rlimit_names);
  struct rlimit limit = {.rlim_cur = check_rlim(L, 2), .rlim_max = check_rlim(L, 3)};
  if (setrlimit(rlimit_resources[which], &limit) < 0)
    return lbox_fail(L, "setrlimit", rlimit_names[which]);
  lua_pushboolean(L, 1);
  return 1;
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

/* pidfd_open(pid) -> fd | fail, msg, errno
 * A descriptor that names process pid for as long as it is open, even
 * after the number is reused (close-on-exec). See pidfd_open(2). */
static int proc_pidfd_open(lua_State *L) {
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  long fd;
  luaL_argcheck(L, pid > 0, 1, "not a process id");
  fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0)
    return lbox_fail(L, "pidfd_open", NULL);
  lua_pushinteger(L, fd);
  return 1;
}

/* pidfd_send_signal(fd, signal) -> true | fail, msg, errno
 * Signal 0 only asks whether the process still runs. See pidfd_send_signal(2). */
static int proc_pidfd_send_signal(lua_State *L) {
  int fd = lbox_check_fd(L, 1);
  int sig = (int)luaL_checkinteger(L, 2);
  luaL_argcheck(L, sig >= 0 && sig < NSIG, 2, "not a signal number");
  if (syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0) < 0)
    return lbox_fail(L, "pidfd_send_signal", NULL);
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

/* chroot(path) -> true | fail, msg, errno: `path` is this process's root
 * from now on, and its working directory. See chroot(2). */
static int proc_chroot(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (chroot(path) < 0)
    return lbox_fail(L, "chroot", path);
  if (chdir("/") < 0)
    return lbox_fail(L, "chdir", "/");
  lua_pushboolean(L, 1);
  return 1;
}

/* umask(mask) -> the previous mask: the permission bits files created from
 * now on will not have. See umask(2). */
static int proc_umask(lua_State *L) {
  lua_Integer mask = luaL_checkinteger(L, 1);
  luaL_argcheck(L, mask >= 0 && mask <= 0777, 1, "a mask from 0 to 0777 expected");
  lua_pushinteger(L, umask((mode_t)mask));
  return 1;
}

/* new_session_keyring() -> serial | fail, msg, errno: join a new anonymous
 * session keyring, so that the keys of the session lbox runs in are not
 * this process's. See KEYCTL_JOIN_SESSION_KEYRING in keyctl(2). */
static int proc_new_session_keyring(lua_State *L) {
  long serial = syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL);
  if (serial < 0)
    return lbox_fail(L, "keyctl", "KEYCTL_JOIN_SESSION_KEYRING");
  lua_pushinteger(L, serial);
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

/* The list of capability numbers at `arg` as a bit mask. */
static unsigned long long check_cap_list(lua_State *L, int arg) {
  luaL_checktype(L, arg, LUA_TTABLE);
  unsigned long long mask = 0;
  lua_Integer n = luaL_len(L, arg);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, arg, i);
    int isnum;
    lua_Integer cap = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    luaL_argcheck(L, isnum && cap >= 0 && cap < 64, arg, "list of capability numbers expected");
    mask |= 1ULL << cap;
  }
  return mask;
}

static void push_cap_list(lua_State *L, unsigned long long mask) {
  lua_newtable(L);
  int n = 0;
  for (int cap = 0; cap < 64; cap++) {
    if (mask & (1ULL << cap)) {
      lua_pushinteger(L, cap);
      lua_rawseti(L, -2, ++n);
    }
  }
}

/* limit_capabilities(keep) -> true | fail, msg, errno: drop every capability
 * not in the list `keep` (numbers) from the bounding set, and clear the
 * inheritable and ambient sets, so that what this process execs has at most
 * `keep`. See capabilities(7), PR_CAPBSET_DROP in prctl(2), capset(2). */
static int proc_limit_capabilities(lua_State *L) {
  unsigned long long keep = check_cap_list(L, 1);
  for (int cap = 0; cap < 64; cap++) {
    if (keep & (1ULL << cap))
      continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
      if (errno == EINVAL) /* past the kernel's last capability */
        break;
      return lbox_fail(L, "prctl", "PR_CAPBSET_DROP");
    }
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    return lbox_fail(L, "prctl", "PR_CAP_AMBIENT_CLEAR_ALL");
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  if (syscall(SYS_capget, &header, data) < 0)
    return lbox_fail(L, "capget", NULL);
  data[0].inheritable &= (unsigned)keep;
  data[1].inheritable &= (unsigned)(keep >> 32);
  if (syscall(SYS_capset, &header, data) < 0)
    return lbox_fail(L, "capset", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* capget() -> { effective = {...}, permitted = {...}, inheritable = {...} }
 *   | fail, msg, errno: this process's capability sets as lists of
 * numbers. See capget(2). */
static int proc_capget(lua_State *L) {
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  if (syscall(SYS_capget, &header, data) < 0)
    return lbox_fail(L, "capget", NULL);
  lua_createtable(L, 0, 3);
  push_cap_list(L, data[0].effective | (unsigned long long)data[1].effective << 32);
  lua_setfield(L, -2, "effective");
  push_cap_list(L, data[0].permitted | (unsigned long long)data[1].permitted << 32);
  lua_setfield(L, -2, "permitted");
  push_cap_list(L, data[0].inheritable | (unsigned long long)data[1].inheritable << 32);
  lua_setfield(L, -2, "inheritable");
  return 1;
}

/* capset(effective, permitted, inheritable) -> true | fail, msg, errno:
 * set this process's three capability sets (lists of numbers); permitted
 * can only shrink. See capset(2). */
static int proc_capset(lua_State *L) {
  unsigned long long sets[3];
  for (int i = 0; i < 3; i++)
    sets[i] = check_cap_list(L, i + 1);
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  for (int half = 0; half < 2; half++) {
    data[half].effective = (unsigned)(sets[0] >> (32 * half));
    data[half].permitted = (unsigned)(sets[1] >> (32 * half));
    data[half].inheritable = (unsigned)(sets[2] >> (32 * half));
  }
  if (syscall(SYS_capset, &header, data) < 0)
    return lbox_fail(L, "capset", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* set_no_new_privs() -> true | fail, msg, errno: from now on, execve
 * grants no privileges (setuid bits and file capabilities do nothing).
 * See PR_SET_NO_NEW_PRIVS in prctl(2). */
static int proc_set_no_new_privs(lua_State *L) {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return lbox_fail(L, "prctl", "PR_SET_NO_NEW_PRIVS");
  lua_pushboolean(L, 1);
  return 1;
}

static lua_Integer check_id(lua_State *L, int arg) {
  lua_Integer id = luaL_checkinteger(L, arg);
  luaL_argcheck(L, id >= 0 && id < 0xffffffffLL, arg, "user or group id out of range");
  return id;
}

/* setuid(uid) -> true | fail, msg, errno. See setuid(2). */
static int proc_setuid(lua_State *L) {
  if (setuid((uid_t)check_id(L, 1)) < 0)
    return lbox_fail(L, "setuid", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* setgid(gid) -> true | fail, msg, errno. See setgid(2). */
static int proc_setgid(lua_State *L) {
  if (setgid((gid_t)check_id(L, 1)) < 0)
    return lbox_fail(L, "setgid", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* setgroups(gids) -> true | fail, msg, errno: the supplementary groups,
 * at most 64. See setgroups(2). */
static int proc_setgroups(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  gid_t groups[64];
  lua_Integer n = luaL_len(L, 1);
  luaL_argcheck(L, n >= 0 && n <= 64, 1, "at most 64 groups");
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, 1, i);
    int isnum;
    lua_Integer gid = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    luaL_argcheck(L, isnum && gid >= 0 && gid < 0xffffffffLL, 1, "list of group ids expected");
    groups[i - 1] = (gid_t)gid;
  }
  if (setgroups((size_t)n, groups) < 0)
    return lbox_fail(L, "setgroups", NULL);
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
  {"capget", proc_capget},
  {"capset", proc_capset},
  {"chdir", proc_chdir},
  {"chroot", proc_chroot},
  {"execve", proc_execve},
  {"fexecve", proc_fexecve},
  {"geteuid", proc_geteuid},
  {"getpid", proc_getpid},
  {"getrlimit", proc_getrlimit},
  {"kill", proc_kill},
  {"limit_capabilities", proc_limit_capabilities},
  {"new_session_keyring", proc_new_session_keyring},
  {"pidfd_open", proc_pidfd_open},
  {"pidfd_send_signal", proc_pidfd_send_signal},
  {"set_no_new_privs", proc_set_no_new_privs},
  {"set_pdeathsig", proc_set_pdeathsig},
  {"setgid", proc_setgid},
  {"setgroups", proc_setgroups},
  {"setrlimit", proc_setrlimit},
  {"setuid", proc_setuid},
  {"umask", proc_umask},
  {"waitpid", proc_waitpid},
  {NULL, NULL}
};

void lbox_open_proc(lua_State *L) {
  luaL_setfuncs(L, proc_funcs, 0);
}
