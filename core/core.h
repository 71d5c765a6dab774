/* Shared declarations of the lbox.core module: one opener per concern. */
#ifndef LBOX_CORE_H
#define LBOX_CORE_H

#include <lua.h>
#include <lauxlib.h>

/* Push the io-library failure triple: nil, "op 'arg': strerror", errno.
 * errno is read first, so call it right after the failed system call. */
int lbox_fail(lua_State *L, const char *op, const char *arg);
int lbox_fail_errno(lua_State *L, int err, const char *op, const char *arg);

/* Check that argument `arg` is a file descriptor number. */
int lbox_check_fd(lua_State *L, int arg);

/* Set each {name, value} of a NULL-terminated list as a field of the table on top. */
struct lbox_constant { const char *name; lua_Integer value; };
void lbox_set_constants(lua_State *L, const struct lbox_constant *list);

/* Register the metatable `name` of a kind of userdata: the metamethods
 * `meta`, and `methods` as its __index. */
void lbox_new_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods);

/* Each adds its functions and constants to the module table on top of the stack. */
void lbox_open_ns(lua_State *L);
void lbox_open_mount(lua_State *L);
void lbox_open_proc(lua_State *L);
void lbox_open_signal(lua_State *L);
void lbox_open_fd(lua_State *L);
void lbox_open_tty(lua_State *L);
void lbox_open_cgroup(lua_State *L);
void lbox_open_net(lua_State *L);
void lbox_open_seccomp(lua_State *L);
void lbox_open_bpf(lua_State *L);
void lbox_open_nft(lua_State *L);

int luaopen_lbox_core(lua_State *L);

#endif
