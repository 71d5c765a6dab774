/* Control groups through libcgroup. A group is a userdata owning a
 * struct cgroup; values are written in the order they were set, when the
 * group is created. Which controllers, files and values: Lua decides. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libcgroup.h>

#include "core.h"

#define CGROUP_MT "lbox.cgroup"

typedef struct {
  struct cgroup *cg;
} lbox_cgroup;

/* libcgroup's default logger writes to stdout, which belongs to the
 * container's output. Keep the last error message to add to our own. */
static char last_log[256];

static void capture_log(void *userdata, int level, const char *fmt, va_list ap) {
  (void)userdata;
  (void)level;
  vsnprintf(last_log, sizeof last_log, fmt, ap);
  last_log[strcspn(last_log, "\n")] = '\0';
}

/* cgroup_strerror indexes a table without bounds: codes from ECGNONEMPTY on
 * read past it and crash (measured on 2.0.2). Name those ourselves. */
static int push_cgroup_fail(lua_State *L, int code, const char *op, const char *name) {
  int err = code;
  const char *msg;
  if (code == ECGOTHER) {
    err = cgroup_get_last_errno();
    msg = strerror(err);
  } else if (code == ECGNONEMPTY) {
    msg = "cgroup is not empty";
  } else if (code >= ECGROUPNOTCOMPILED && code < ECGNONEMPTY) {
    msg = cgroup_strerror(code);
  } else {
    msg = "unknown libcgroup error";
  }
  luaL_pushfail(L);
  if (last_log[0])
    lua_pushfstring(L, "%s '%s': %s (%s)", op, name, msg, last_log);
  else
    lua_pushfstring(L, "%s '%s': %s", op, name, msg);
  lua_pushinteger(L, err);
  last_log[0] = '\0';
  return 3;
}

static int push_cgroup_result(lua_State *L, int code, const char *op, const char *name) {
  if (code != 0)
    return push_cgroup_fail(L, code, op, name);
  last_log[0] = '\0';
  lua_pushboolean(L, 1);
  return 1;
}

/* cgroup_init() -> true | fail, msg, code: read the host's cgroup mounts.
 * Needed once before anything else here. See cgroup_init in libcgroup. */
static int cg_init(lua_State *L) {
  cgroup_set_logger(capture_log, CGROUP_LOG_ERROR, NULL);
  return push_cgroup_result(L, cgroup_init(), "cgroup_init", "libcgroup");
}

/* cgroup_mount_point(controller) -> path | fail, msg, code */
static int cg_mount_point(lua_State *L) {
  const char *controller = luaL_checkstring(L, 1);
  char *path = NULL;
  int code = cgroup_get_subsys_mount_point(controller, &path);
  if (code != 0)
    return push_cgroup_fail(L, code, "cgroup_mount_point", controller);
  lua_pushstring(L, path);
  free(path);
  return 1;
}

/* libcgroup takes any name, "../.." included, and joins it to mount points. */
static int valid_group_name(const char *name) {
  if (name[0] == '\0' || name[0] == '/')
    return 0;
  for (const char *p = name; *p; p++) {
    if (*p == '/' && (p[1] == '/' || p[1] == '\0'))
      return 0;
    if ((p == name || p[-1] == '/') && p[0] == '.' &&
        (p[1] == '\0' || p[1] == '/' || (p[1] == '.' && (p[2] == '\0' || p[2] == '/'))))
      return 0;
  }
  return 1;
}

static lbox_cgroup *check_cgroup(lua_State *L) {
  lbox_cgroup *g = luaL_checkudata(L, 1, CGROUP_MT);
  if (g->cg == NULL)
    luaL_error(L, "attempt to use a closed cgroup");
  return g;
}

static const char *group_name(lua_State *L) {
  lua_getiuservalue(L, 1, 1);
  const char *name = lua_tostring(L, -1);
  lua_pop(L, 1); /* still anchored by the uservalue */
  return name;
}

/* cgroup_new(name) -> group | fail, msg, code: a group relative to each
 * controller's mount point ("lbox/abc"); nothing happens in the kernel yet. */
static int cg_new(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  luaL_argcheck(L, valid_group_name(name), 1, "relative path without '.', '..' or empty parts expected");
  lbox_cgroup *g = lua_newuserdatauv(L, sizeof *g, 1);
  g->cg = NULL;
  luaL_setmetatable(L, CGROUP_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  g->cg = cgroup_new_cgroup(name);
  if (g->cg == NULL)
    return lbox_fail_errno(L, ENOMEM, "cgroup_new", name);
  return 1;
}

static struct cgroup_controller *controller_of(struct cgroup *cg, const char *controller) {
  struct cgroup_controller *c = cgroup_get_controller(cg, controller);
  return c ? c : cgroup_add_controller(cg, controller);
}

/* group:add_controller(name) -> true | fail, msg, code */
static int cg_add_controller(lua_State *L) {
  lbox_cgroup *g = check_cgroup(L);
  const char *controller = luaL_checkstring(L, 2);
  if (controller_of(g->cg, controller) == NULL)
    return push_cgroup_fail(L, ECGINVAL, "cgroup_add_controller", controller);
  lua_pushboolean(L, 1);
  return 1;
}

/* group:set(controller, file, value) -> true | fail, msg, code
 * Queues a value; create() writes the queue in order. */
static int cg_set(lua_State *L) {
  lbox_cgroup *g = check_cgroup(L);
  const char *controller = luaL_checkstring(L, 2);
  const char *file = luaL_checkstring(L, 3);
  const char *value = luaL_checkstring(L, 4);
  struct cgroup_controller *c = controller_of(g->cg, controller);
  if (c == NULL)
    return push_cgroup_fail(L, ECGINVAL, "cgroup_add_controller", controller);
  return push_cgroup_result(L, cgroup_add_value_string(c, file, value), "cgroup_set", file);
}

/* group:create() -> true | fail, msg, code: make the group in each of its
 * controllers and write its values. See cgroup_create_cgroup. */
static int cg_create(lua_State *L) {
  lbox_cgroup *g = check_cgroup(L);
  return push_cgroup_result(L, cgroup_create_cgroup(g->cg, 0), "cgroup_create", group_name(L));
}

/* group:attach(pid) -> true | fail, msg, code. See cgroup_attach_task_pid. */
static int cg_attach(lua_State *L) {
  lbox_cgroup *g = check_cgroup(L);
  lua_Integer pid = luaL_checkinteger(L, 2);
  luaL_argcheck(L, pid > 0, 2, "process id expected");
  return push_cgroup_result(L, cgroup_attach_task_pid(g->cg, (pid_t)pid), "cgroup_attach", group_name(L));
}

/* group:delete() -> true | fail, msg, code: remove the group, only if it is
 * empty. libcgroup 2.0.2 reports success on a busy group: callers check. */
static int cg_delete(lua_State *L) {
  lbox_cgroup *g = check_cgroup(L);
  int code = cgroup_delete_cgroup_ext(g->cg, CGFLAG_DELETE_EMPTY_ONLY);
  return push_cgroup_result(L, code, "cgroup_delete", group_name(L));
}

/* group:close(): free the libcgroup structure (the kernel's group stays).
 * Also __gc and __close. */
static int cg_close(lua_State *L) {
  lbox_cgroup *g = luaL_checkudata(L, 1, CGROUP_MT);
  if (g->cg != NULL)
    cgroup_free(&g->cg);
  g->cg = NULL;
  return 0;
}

static int cg_tostring(lua_State *L) {
  lbox_cgroup *g = luaL_checkudata(L, 1, CGROUP_MT);
  lua_pushfstring(L, "cgroup (%s%s)", group_name(L), g->cg ? "" : ", closed");
  return 1;
}

static const luaL_Reg cg_methods[] = {
  {"add_controller", cg_add_controller},
  {"attach", cg_attach},
  {"close", cg_close},
  {"create", cg_create},
  {"delete", cg_delete},
  {"set", cg_set},
  {NULL, NULL}
};

static const luaL_Reg cg_meta[] = {
  {"__close", cg_close},
  {"__gc", cg_close},
  {"__index", NULL},
  {"__tostring", cg_tostring},
  {NULL, NULL}
};

static const luaL_Reg cg_funcs[] = {
  {"cgroup_init", cg_init},
  {"cgroup_mount_point", cg_mount_point},
  {"cgroup_new", cg_new},
  {NULL, NULL}
};

void lbox_open_cgroup(lua_State *L) {
  lbox_new_class(L, CGROUP_MT, cg_meta, cg_methods);
  luaL_setfuncs(L, cg_funcs, 0);
}
